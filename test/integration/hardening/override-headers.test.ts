/**
 * Headers that change the request at the upstream are the gateway's, not the client's:
 * method overrides, path overrides and claims about the client address or scheme never
 * reach an upstream, on any route, unless `headers.keep` names one; `headers.remove`
 * adds names; `server.forwardedHeader` writes an RFC 7239 `Forwarded` of the gateway's own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { baseConfig, runCli, startGatewayProcess, startUpstream, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';
import { startIdp, type TestIdp } from '../auth/tokens.js';
import { recordToken } from '../leaks.js';

/** Every header of the gateway's list, with a value an attacker would send. */
const OWNED: Record<string, string> = {
  'x-http-method-override': 'DELETE',
  'x-http-method': 'DELETE',
  'x-method-override': 'DELETE',
  'x-original-url': '/admin/',
  'x-rewrite-url': '/admin/',
  'x-override-url': '/admin/',
  'x-original-uri': '/admin/',
  'x-real-ip': '10.9.9.9',
  'true-client-ip': '10.9.9.9',
  'cf-connecting-ip': '10.9.9.9',
  'x-client-ip': '10.9.9.9',
  'x-cluster-client-ip': '10.9.9.9',
  forwarded: 'for=10.9.9.9;proto=https',
  'x-forwarded-port': '443',
  'x-forwarded-prefix': '/admin',
  'x-forwarded-ssl': 'on',
  'x-forwarded-scheme': 'https',
  'front-end-https': 'on',
  'x-url-scheme': 'https',
};

let idp: TestIdp;
let up: Upstream;
let strict: GatewayProcess;
let tuned: GatewayProcess;
let viaProxy: Agent;

beforeAll(async () => {
  idp = await startIdp();
  up = await startUpstream();
  const common = {
    issuers: [{ name: 'corp', issuer: idp.issuer, jwksUri: idp.jwksUri, audience: ['orders-api'] }],
    upstreams: { app: { url: up.url } },
    routes: [
      { path: '/public/', upstream: 'app', auth: 'none' },
      { path: '/orders/', upstream: 'app', auth: 'token', methods: ['GET', 'POST'] },
    ],
  };
  [strict, tuned] = await Promise.all([
    startGatewayProcess(writeConfig(baseConfig(common))),
    startGatewayProcess(
      writeConfig(
        baseConfig({
          ...common,
          server: { forwardedHeader: true, trustedProxies: ['127.0.0.2'] },
          headers: { keep: ['X-Real-IP'], remove: ['X-Internal-Secret'] },
        }),
      ),
    ),
  ]);
  viaProxy = new Agent({ localAddress: '127.0.0.2' });
});

afterAll(async () => {
  await Promise.all([strict?.stop(), tuned?.stop()]);
  await Promise.all([up?.close(), idp?.close(), viaProxy?.close()]);
});

async function send(gw: GatewayProcess, method: string, path: string, headers: Record<string, string>, dispatcher?: Agent) {
  const before = up.received.length;
  const res = await request(`${gw.url}${path}`, { method: method as 'GET', headers, ...(dispatcher ? { dispatcher } : {}) });
  await res.body.text();
  expect(up.received.length).toBe(before + 1);
  return { status: res.statusCode, got: up.received[before]! };
}

describe('gateway-owned request headers', () => {
  it('never reach the upstream on an auth: none route', async () => {
    const { status, got } = await send(strict, 'GET', '/public/x', OWNED);
    expect(status).toBe(200);
    for (const name of Object.keys(OWNED)) expect(got.headers[name], name).toBeUndefined();
  });

  it('never reach the upstream on an authenticated route, and a method override cannot turn an allowed POST into a DELETE', async () => {
    const token = recordToken(await idp.mint({ sub: 'override-1' }));
    const { status, got } = await send(strict, 'POST', '/orders/1', { ...OWNED, authorization: `Bearer ${token}`, 'content-length': '0' });
    expect(status).toBe(200);
    expect(got.method).toBe('POST');
    for (const name of Object.keys(OWNED)) expect(got.headers[name], name).toBeUndefined();
  });

  it('headers.keep lets a named one through and headers.remove adds names; the rest stay stripped', async () => {
    const { got } = await send(tuned, 'GET', '/public/x', { ...OWNED, 'x-internal-secret': 's3cret', 'x-other': 'kept' });
    expect(got.headers['x-real-ip']).toBe('10.9.9.9');
    expect(got.headers['x-internal-secret']).toBeUndefined();
    expect(got.headers['x-other']).toBe('kept');
    expect(got.headers['x-http-method-override']).toBeUndefined();
    expect(got.headers['x-original-url']).toBeUndefined();
  });

  it('server.forwardedHeader writes the gateway’s own Forwarded (RFC 7239), replacing a client copy', async () => {
    const { got } = await send(tuned, 'GET', '/public/x', { forwarded: 'for=10.9.9.9;proto=https', host: 'api.example.com' });
    expect(got.headers['forwarded']).toBe('for=127.0.0.1;proto=http;host="api.example.com"');
  });

  it('appends to the Forwarded of a trusted proxy, as it does to X-Forwarded-For', async () => {
    const { got } = await send(tuned, 'GET', '/public/x', { forwarded: 'for=203.0.113.7;proto=https', 'x-forwarded-for': '203.0.113.7', host: 'h' }, viaProxy);
    expect(got.headers['forwarded']).toBe('for=203.0.113.7;proto=https, for=127.0.0.2;proto=http;host="h"');
    expect(got.headers['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.2');
  });

  it('check refuses to keep a header the gateway sets or an identity header', async () => {
    const file = writeConfig(
      baseConfig({
        upstreams: { app: { url: 'http://127.0.0.1:9' } },
        routes: [{ path: '/', upstream: 'app', auth: 'none' }],
        headers: { keep: ['x-forwarded-for', 'x-auth-subject', 'x-real-ip'], remove: ['bad header'] },
      }),
    );
    const r = await runCli(['check', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('headers.keep[0]: x-forwarded-for cannot be kept');
    expect(r.stderr).toContain('headers.keep[1]: x-auth-subject cannot be kept');
    expect(r.stderr).not.toContain('headers.keep[2]');
    expect(r.stderr).toContain('headers.remove[0]: must be a header name');
  });
});
