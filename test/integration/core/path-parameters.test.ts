import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { baseConfig, rawRequest, startGatewayProcess, startUpstream, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';
import { recordToken } from '../leaks.js';
import { startIdp, type TestIdp } from '../auth/tokens.js';

// `;` path parameters through the built gateway. Servlet containers drop `;…` from every
// segment before resolving `..`, so `/public/..;/orders/1` is `/orders/1` to them; the gateway
// refuses such paths by default and, where a route opts in, reads them the same way.
// Every upstream records what it received, one upstream per route, so the upstream that got
// a request names the route that matched it.

let idp: TestIdp;
const ups: Record<string, Upstream> = {};
const UPSTREAMS = ['pub', 'orders', 'catalog', 'api', 'admin', 'legacy', 'strip'] as const;
let refusing: GatewayProcess; // no pathParameters key anywhere: the default
let allowing: GatewayProcess; // server.pathParameters: allow, one route refusing
let perRoute: GatewayProcess; // server default (reject), two routes allowing
let allowingDir: string;

const now = () => Math.floor(Date.now() / 1000);

function config(server: Record<string, unknown>, routeExtras: Record<string, Record<string, unknown>> = {}, extra: Record<string, unknown> = {}) {
  const route = (path: string, name: string, fields: Record<string, unknown>) => ({ path, name, upstream: name, ...fields, ...routeExtras[name] });
  return baseConfig({
    server: { drainTimeout: '10s', ...server },
    // Verification on the main thread: these tests verify a handful of tokens.
    verifier: { threads: 0 },
    issuers: [{ name: 'corp', issuer: idp.issuer, jwksUri: idp.jwksUri, audience: ['orders-api'] }],
    upstreams: Object.fromEntries(UPSTREAMS.map((n) => [n, { url: ups[n]!.url }])),
    mfa: { amr: ['mfa'], maxAge: '1h' },
    routes: [
      route('/public/', 'pub', { auth: 'none' }),
      route('/orders/', 'orders', { auth: 'mfa' }),
      route('/catalog/', 'catalog', { auth: 'none' }),
      route('/api/', 'api', { auth: 'none' }),
      route('/api/admin/', 'admin', { auth: 'none' }),
      route('/legacy/', 'legacy', { auth: 'none' }),
      route('/strip/', 'strip', { auth: 'none', stripPrefix: true }),
    ],
    ...extra,
  });
}

beforeAll(async () => {
  idp = await startIdp('/realms/corp');
  for (const n of UPSTREAMS) ups[n] = await startUpstream();
  const allowingFile = writeConfig(
    config({ pathParameters: 'allow' }, { legacy: { pathParameters: 'reject' } }, { audit: { destination: 'audit.log', flushInterval: '50ms' } }),
  );
  allowingDir = dirname(allowingFile);
  [refusing, allowing, perRoute] = await Promise.all([
    startGatewayProcess(writeConfig(config({}))),
    startGatewayProcess(allowingFile),
    startGatewayProcess(writeConfig(config({}, { catalog: { pathParameters: 'allow' }, api: { pathParameters: 'allow' } }))),
  ]);
});

afterAll(async () => {
  await Promise.all([refusing?.stop(), allowing?.stop(), perRoute?.stop()]);
  for (const u of Object.values(ups)) await u.close();
  await idp?.close();
});

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Sends `path` byte for byte: client libraries would resolve or re-encode it first (the
 * WHATWG URL parser treats `..;` differently from servlets and from RFC 3986).
 */
async function send(gw: GatewayProcess, path: string, token?: string): Promise<Answer> {
  recordToken(token);
  const auth = token === undefined ? '' : `Authorization: Bearer ${token}\r\n`;
  const { text } = await rawRequest(gw.port, `GET ${path} HTTP/1.1\r\nHost: t\r\n${auth}Connection: close\r\n\r\n`);
  const [head = '', body = ''] = text.split('\r\n\r\n', 2);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const at = l.indexOf(':');
    headers[l.slice(0, at).toLowerCase()] = l.slice(at + 1).trim();
  }
  return { status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1]), headers, body };
}

/** Requests each upstream received so far, by name. */
const counts = () => Object.fromEntries(UPSTREAMS.map((n) => [n, ups[n]!.received.length]));

/** Sends `path`, expects exactly `upstream` to receive exactly one request, and returns its url. */
async function forwarded(gw: GatewayProcess, path: string, upstream: (typeof UPSTREAMS)[number], token?: string): Promise<string> {
  const before = counts();
  const r = await send(gw, path, token);
  expect(r.status, `${path}: ${r.body}`).toBe(200);
  expect(counts(), path).toEqual({ ...before, [upstream]: before[upstream]! + 1 });
  return ups[upstream]!.received.at(-1)!.url;
}

/** Sends `path`, expects `status` with the JSON error body, and that no upstream received anything. */
async function refused(gw: GatewayProcess, path: string, status: number, error: string, token?: string): Promise<Answer> {
  const before = counts();
  const r = await send(gw, path, token);
  expect(r.status, `${path}: ${r.body}`).toBe(status);
  expect(r.headers['content-type']).toBe('application/json');
  const body = JSON.parse(r.body) as Record<string, unknown>;
  expect(body['error']).toBe(error);
  expect(typeof body['error_description']).toBe('string');
  expect(body['request_id']).toBe(r.headers['x-request-id']);
  expect(counts(), path).toEqual(before);
  return r;
}

const PATH_REFUSED = { error: 'invalid_request', error_description: 'The request path is not acceptable.' };

function mfaToken(): Promise<string> {
  return idp.mint({ amr: ['pwd', 'mfa'], auth_time: now() - 60 });
}

describe('path parameters refused (the default)', () => {
  it('answers 400 bad_path to a `;` anywhere in the path, and nothing reaches an upstream', async () => {
    for (const p of ['/public/..;/orders/1', '/public/..;x=1/catalog/1', '/api/admin;x=1/users', '/public/a;b', '/public/;x/b', '/public;/x', '/orders/1;jsessionid=A1']) {
      const r = await refused(refusing, p, 400, 'invalid_request');
      expect(JSON.parse(r.body)).toEqual({ ...PATH_REFUSED, request_id: r.headers['x-request-id'] });
    }
    // With a valid token too: the path is refused before credentials are looked at.
    await refused(refusing, '/public/..;/orders/1', 400, 'invalid_request', await mfaToken());
  });

  it('keeps `%3B` (data, not a delimiter) and forwards it as `%3B`', async () => {
    expect(await forwarded(refusing, '/public/a%3bb', 'pub')).toBe('/public/a%3Bb');
    // `..%3B` is a segment name, to the gateway and to a servlet (which decodes it after
    // dropping parameters): it climbs nowhere.
    expect(await forwarded(refusing, '/public/..%3B/orders/1', 'pub')).toBe('/public/..%3B/orders/1');
    expect(await forwarded(refusing, '/api/admin%3Bx=1/users', 'api')).toBe('/api/admin%3Bx=1/users');
  });

  it('still routes a path without `;` as before', async () => {
    expect(await forwarded(refusing, '/public/../api/admin/users', 'admin')).toBe('/api/admin/users');
  });
});

describe('server.pathParameters: allow', () => {
  it('reads `/public/..;/orders/1` as `/orders/1`: the /orders/ route and its MFA requirement', async () => {
    const r = await refused(allowing, '/public/..;/orders/1', 401, 'unauthorized');
    expect(r.headers['www-authenticate']).toBe('Bearer realm="mfa-gateway"');
    await refused(allowing, '/public/..;x=1/orders/1', 401, 'unauthorized');
    // With an MFA token it gets through, and the upstream of /orders/ receives /orders/1.
    expect(await forwarded(allowing, '/public/..;/orders/1', 'orders', await mfaToken())).toBe('/orders/1');
  });

  it('forwards `/public/..;/catalog/1` to an auth: none route as `/catalog/1`', async () => {
    expect(await forwarded(allowing, '/public/..;/catalog/1', 'catalog')).toBe('/catalog/1');
    expect(await forwarded(allowing, '/public/%2e%2e;x/catalog/1?q=1', 'catalog')).toBe('/catalog/1?q=1');
  });

  it('matches `/api/admin;x=1/users` under /api/admin/ and forwards the parameters of the segments that stay', async () => {
    expect(await forwarded(allowing, '/api/admin;x=1/users', 'admin')).toBe('/api/admin;x=1/users');
    expect(await forwarded(allowing, '/api;v=2/admin/users;page=3', 'admin')).toBe('/api;v=2/admin/users;page=3');
    expect(await forwarded(allowing, '/api/adminx;y/users', 'api')).toBe('/api/adminx;y/users');
  });

  it('merges a segment that is only parameters, as a servlet merges the empty segment it leaves', async () => {
    expect(await forwarded(allowing, '/api/;x/admin/users', 'admin')).toBe('/api/admin/users');
    expect(await forwarded(allowing, '/catalog/;x', 'catalog')).toBe('/catalog/');
  });

  it('strips a prefix as whole segments, parameters included', async () => {
    expect(await forwarded(allowing, '/strip;s=1/x;y=2', 'strip')).toBe('/x;y=2');
  });

  it('answers 400 when the route the path matches sets pathParameters: reject', async () => {
    await refused(allowing, '/legacy;x/1', 400, 'invalid_request');
    await refused(allowing, '/public/..;/legacy/1', 400, 'invalid_request');
    expect(await forwarded(allowing, '/legacy/1', 'legacy')).toBe('/legacy/1');
  });

  it('still answers 400 to a climb above the root and to encoded separators in parameters', async () => {
    await refused(allowing, '/..;/catalog/1', 400, 'invalid_request');
    await refused(allowing, '/catalog;x%2Fy/1', 400, 'invalid_request');
    await refused(allowing, '/catalog;x%5C/1', 400, 'invalid_request');
  });

  it('writes the path without parameters in the audit line: a jsessionid never reaches the log', async () => {
    const r = await send(allowing, '/api/admin;jsessionid=SECRET42/users');
    expect(r.status).toBe(200);
    const id = r.headers['x-request-id']!;
    let line: Record<string, unknown> | undefined;
    for (let i = 0; i < 200 && line === undefined; i++) {
      let text = '';
      try {
        text = readFileSync(join(allowingDir, 'audit.log'), 'utf8');
      } catch {
        /* the file appears with the first flush */
      }
      // Only complete lines: the last one may still be half written.
      line = text.split('\n').slice(0, -1).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['request_id'] === id);
      if (line === undefined) await sleep(25);
    }
    expect(line).toMatchObject({ path: '/api/admin/users', route: 'admin', upstream: 'admin', status: 200, reason: 'ok' });
    expect(readFileSync(join(allowingDir, 'audit.log'), 'utf8')).not.toContain('SECRET42');
  });
});

describe('routes[].pathParameters: allow, server default', () => {
  it('takes a path with parameters only where its route allows them', async () => {
    expect(await forwarded(perRoute, '/public/..;/catalog/1', 'catalog')).toBe('/catalog/1');
    expect(await forwarded(perRoute, '/api/v;x=1/users', 'api')).toBe('/api/v;x=1/users');
    // /api/admin/ does not allow them: the stripped view matches it, so 400.
    await refused(perRoute, '/api/admin;x=1/users', 400, 'invalid_request');
    // /orders/ does not allow them: no 401, no MFA question, just 400.
    await refused(perRoute, '/public/..;/orders/1', 400, 'invalid_request');
    await refused(perRoute, '/public;x/1', 400, 'invalid_request');
    // No route at all for the stripped view: 404, as for any path.
    await refused(perRoute, '/nowhere;x/1', 404, 'not_found');
  });
});
