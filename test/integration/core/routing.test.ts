import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { baseConfig, rawRequest, startGatewayProcess, startUpstream, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';

// Routing, normalization, answers and header rewriting through the built gateway,
// against two real node:http upstreams.
let a: Upstream;
let b: Upstream;
let gw: GatewayProcess;

beforeAll(async () => {
  a = await startUpstream();
  b = await startUpstream();
  gw = await startGatewayProcess(
    writeConfig(
      baseConfig({
        upstreams: { a: { url: a.url }, b: { url: `${b.url}/base` } },
        routes: [
          { path: '/public/', upstream: 'a', auth: 'none' },
          { path: '/b/', upstream: 'b', auth: 'none', stripPrefix: true, methods: ['GET', 'POST'] },
          { path: '/b/deep/', upstream: 'a', auth: 'none' },
        ],
      }),
    ),
  );
});

afterAll(async () => {
  await gw?.stop();
  await a?.close();
  await b?.close();
});

async function get(path: string, headers: Record<string, string> = {}) {
  const res = await request(`${gw.url}${path}`, { headers });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) as Record<string, unknown> };
}

function nodeGet(path: string, headers: Record<string, string>): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${gw.url}${path}`, { headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('routing', () => {
  it('routes by longest prefix to two upstreams, stripping the prefix and adding the base path', async () => {
    const r1 = await get('/public/x?q=1');
    expect(r1.status).toBe(200);
    expect(a.received.at(-1)!.url).toBe('/public/x?q=1');

    const r2 = await get('/b/orders/7?a=%2F&b');
    expect(r2.status).toBe(200);
    expect(b.received.at(-1)!.url).toBe('/base/orders/7?a=%2F&b');

    const r3 = await get('/b/deep/z');
    expect(r3.status).toBe(200);
    expect(a.received.at(-1)!.url).toBe('/b/deep/z');

    // A route path ending in / also matches the path without the slash.
    expect((await get('/public')).status).toBe(200);
    expect(a.received.at(-1)!.url).toBe('/public');
  });

  it('sends the normalized path upstream and passes the query byte for byte', async () => {
    const before = a.received.length;
    const r = await get('/public/x/../%41//y/./z?x=%41&y=/../');
    expect(r.status).toBe(200);
    expect(a.received.length).toBe(before + 1);
    expect(a.received.at(-1)!.url).toBe('/public/A/y/z?x=%41&y=/../');
  });

  it('answers 404 with a JSON body when no route matches, and never matches on the query', async () => {
    const before = a.received.length + b.received.length;
    const r = await get('/private?x=/public/');
    expect(r.status).toBe(404);
    const body = r.json();
    expect(body['error']).toBe('not_found');
    expect(typeof body['error_description']).toBe('string');
    expect(body['request_id']).toBe(r.headers['x-request-id']);
    await expect(get('/publicX').then((x) => x.status)).resolves.toBe(404);
    expect(a.received.length + b.received.length).toBe(before);
  });

  it('answers 400 for paths that escape the root or hide a separator', async () => {
    // Raw bytes on the wire: WHATWG URL parsing in client libraries would resolve these first.
    const before = a.received.length;
    for (const p of ['/public/..%2F..%2Fetc', '/public/%2e%2e/%2e%2e/%2e%2e/x', '/public/a%5Cb', '/public/a%00b', '/..', '/public/../../x', '/public/a#b']) {
      const r = await rawRequest(gw.port, `GET ${p} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`);
      expect(r.text, p).toMatch(/^HTTP\/1\.1 400 /);
      expect(r.text, p).toContain('"error":"invalid_request"');
    }
    expect(a.received.length).toBe(before);
    // Resolving dot segments must not let /public/../b reach another route's policy unseen:
    // it is matched as /b, the route it really is.
    const r = await get('/public/../b/x');
    expect(r.status).toBe(200);
    expect(b.received.at(-1)!.url).toBe('/base/x');
  });

  it('answers 405 with Allow for a method outside the route', async () => {
    const res = await request(`${gw.url}/b/x`, { method: 'DELETE' });
    await res.body.text();
    expect(res.statusCode).toBe(405);
    expect(String(res.headers['allow']).split(', ').sort()).toEqual(['GET', 'HEAD', 'POST']);
  });

  it('strips hop-by-hop and spoofed gateway headers, sets X-Forwarded-* and X-Request-Id', async () => {
    // node:http, not undici: undici refuses to send hop-by-hop headers at all.
    const r = await nodeGet('/public/h', {
      connection: 'keep-alive, x-secret-hop',
      'x-secret-hop': '1',
      'keep-alive': 'timeout=5',
      te: 'trailers',
      'proxy-authorization': 'Basic abc',
      'x-forwarded-for': '6.6.6.6',
      'x-forwarded-host': 'evil',
      'x-forwarded-proto': 'https',
      forwarded: 'for=6.6.6.6',
      'x-auth-subject': 'admin',
      'x-auth-roles': 'root',
      'x-request-id': 'client-id-123',
      'x-keep-me': 'yes',
    });
    expect(r.status).toBe(200);
    const h = a.received.at(-1)!.headers;
    for (const name of ['x-secret-hop', 'keep-alive', 'te', 'proxy-authorization', 'forwarded', 'x-auth-subject', 'x-auth-roles']) {
      expect(h[name], name).toBeUndefined();
    }
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-forwarded-host']).toBe(`127.0.0.1:${gw.port}`);
    expect(h['x-request-id']).toBe('client-id-123');
    expect(h['x-keep-me']).toBe('yes');
    expect(r.headers['x-request-id']).toBe('client-id-123');
  });

  it('replaces an unsafe client X-Request-Id with a generated one and echoes it', async () => {
    const r = await get('/public/id', { 'x-request-id': 'bad id with spaces' });
    const sent = a.received.at(-1)!.headers['x-request-id'];
    expect(sent).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.headers['x-request-id']).toBe(sent);
  });

  it('removes hop-by-hop headers from the response and keeps the rest', async () => {
    const up = await startUpstream((_req, res) => {
      res.setHeader('connection', 'x-upstream-hop');
      res.setHeader('x-upstream-hop', 'secret');
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.setHeader('x-app', 'ok');
      res.end('fine');
    });
    const g = await startGatewayProcess(writeConfig(baseConfig({ upstreams: { u: { url: up.url } }, routes: [{ path: '/', upstream: 'u', auth: 'none' }] })));
    try {
      const res = await request(`${g.url}/x`);
      expect(await res.body.text()).toBe('fine');
      expect(res.headers['x-upstream-hop']).toBeUndefined();
      expect(res.headers['x-app']).toBe('ok');
      expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    } finally {
      await g.stop();
      await up.close();
    }
  });
});

describe('framing', () => {
  it('answers 400 and closes on differing Content-Length headers, without reaching the upstream', async () => {
    const before = a.received.length;
    const r = await rawRequest(gw.port, 'POST /public/x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!');
    expect(r.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(r.closed).toBe(true);
    expect(a.received.length).toBe(before);
  });

  it('answers 431 to a header block over 16 KiB', async () => {
    const r = await rawRequest(gw.port, `GET /public/x HTTP/1.1\r\nHost: t\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`);
    expect(r.text).toMatch(/^HTTP\/1\.1 431 /);
  });

  it('never lets an identity header spelled with underscores reach the upstream', async () => {
    const before = a.received.length;
    const r = await rawRequest(gw.port, 'GET /public/x HTTP/1.1\r\nHost: t\r\nX_Auth_Subject: admin\r\n\r\n', 500);
    // uWS 20.30 does not accept header names with "_" at all (no answer); the header
    // rewriter strips such spellings too (unit-tested), should a parser ever let them in.
    expect(r.text).not.toMatch(/^HTTP\/1\.1 200/);
    expect(a.received.length).toBe(before);
  });

  it('never lets an absolute-form target bypass matching', async () => {
    const before = a.received.length + b.received.length;
    const r = await rawRequest(gw.port, 'GET http://evil.example/public/x HTTP/1.1\r\nHost: t\r\n\r\n', 500);
    // uWS's parser does not route absolute-form targets at all: no answer, nothing proxied.
    expect(r.text).not.toMatch(/^HTTP\/1\.1 200/);
    expect(a.received.length + b.received.length).toBe(before);
  });
});
