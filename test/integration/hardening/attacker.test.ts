/**
 * One gateway, one attacker: a request of every hardened class, sent the way an attacker
 * would, against a single built gateway. Each gets the answer the README names; only
 * the requests meant to pass reach the upstream, and exactly as the gateway judged them;
 * and the process is still serving after all of it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { request } from 'undici';
import type { JWTPayload } from 'jose';
import { baseConfig, rawRequest, startGatewayProcess, startUpstream, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';
import { deepClaims, makeKey, respellings, sign, signRawRs256, startIdp, type IdpServer, type TestKey } from '../authn/idp.js';
import { recordToken } from '../leaks.js';

let rs: TestKey;
let idp: IdpServer;
let up: Upstream;
let gw: GatewayProcess;
const now = () => Math.floor(Date.now() / 1000);
const claims = (extra: JWTPayload = {}): JWTPayload => ({
  iss: idp.issuer,
  aud: 'orders-api',
  sub: 'mallory',
  iat: now(),
  exp: now() + 600,
  amr: ['pwd', 'otp'],
  auth_time: now(),
  jti: randomUUID(),
  ...extra,
});

beforeAll(async () => {
  rs = await makeKey('RS256', 'rs-1');
  idp = await startIdp([rs.jwk], '/realms/attack');
  up = await startUpstream();
  gw = await startGatewayProcess(
    writeConfig(
      baseConfig({
        server: { requestBuffering: 1024, timeouts: { requestBodyIdle: '300ms' } },
        verifier: { threads: 1, maxTokenBytes: 65536 },
        issuers: [{ name: 'corp', issuer: idp.issuer, jwksUri: idp.jwksUri, audience: ['orders-api'], algorithms: ['RS256'] }],
        upstreams: { app: { url: up.url } },
        rateLimit: { spraying: { enabled: false } },
        routes: [
          { path: '/public/', upstream: 'app', auth: 'none' },
          { path: '/orders/', upstream: 'app', auth: 'mfa', methods: ['GET', 'POST'] },
        ],
      }),
    ),
  );
});

afterAll(async () => {
  await gw?.stop();
  await Promise.all([up?.close(), idp?.close()]);
});

async function get(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<number> {
  if (headers['authorization']) recordToken(headers['authorization'].slice(7));
  const res = await request(`${gw.url}${path}`, { method: method as 'GET', headers, headersTimeout: 15_000 });
  await res.body.text();
  return res.statusCode;
}
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

describe('an attacker, one request of each class', () => {
  it('gets the answer each class has, reaches the upstream only as judged, and leaves the gateway running', async () => {
    const good = await sign(rs, claims());
    // Claims no header can carry: refused on the miss and on the (negative) hit after it.
    const surrogate = await sign(rs, claims({ sub: 'mallory\ud800' }));
    expect(await get('/orders/surrogate', bearer(surrogate))).toBe(401);
    expect(await get('/orders/surrogate', bearer(surrogate))).toBe(401);
    // Paths that mean something else to a servlet upstream, or decode to a separator.
    expect(await get('/public/..;/orders/1')).toBe(400);
    expect(await get('/public/a%2F..%2F..%2Forders')).toBe(400);
    // Headers that would change the request at the upstream are dropped (the request passes as judged).
    expect(await get('/orders/override', { ...bearer(good), 'x-http-method-override': 'DELETE', 'x-original-url': '/admin' }, 'POST')).toBe(200);
    // One token, one spelling: every other spelling is refused (401 malformed; 400 when a
    // padding `=` inside it already breaks the RFC 6750 b64token syntax).
    for (const t of respellings(good)) expect([400, 401]).toContain(await get('/orders/respelled', bearer(t)));
    // Claims RFC 9068 requires.
    const { sub: _sub, ...noSub } = claims();
    expect(await get('/orders/no-sub', bearer(await sign(rs, noSub)))).toBe(401);
    expect(await get('/orders/future-iat', bearer(await sign(rs, claims({ iat: now() + 3600 }))))).toBe(401);
    // A validly signed token nested 2,000 levels deep: refused, and cold verification still works afterwards.
    const deep = await signRawRs256(rs, { alg: 'RS256', kid: 'rs-1', typ: 'at+jwt' }, deepClaims(claims(), 2000));
    for (let i = 0; i < 3; i++) expect(await get('/orders/deep', bearer(deep))).toBe(401);
    expect(await get('/orders/after-deep', bearer(await sign(rs, claims())))).toBe(200);
    // Framing: a request smuggled behind two Content-Length values never runs.
    const smuggled = 'GET /public/smuggled HTTP/1.1\r\nHost: x\r\n\r\n';
    await rawRequest(gw.port, `POST /public/front HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`);
    expect((await rawRequest(gw.port, 'GET /public/two-hosts HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n')).text).toMatch(/^HTTP\/1\.1 400 /);
    // A body trickled and abandoned: 408, and it never held (or reached) the upstream.
    const slow = await new Promise<string>((resolve) => {
      const s = connect(gw.port, '127.0.0.1', () => s.write('POST /public/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc'));
      let text = '';
      s.setEncoding('latin1').on('data', (d: string) => (text += d));
      s.on('close', () => resolve(text));
    });
    expect(slow).toMatch(/^HTTP\/1\.1 408 /);

    // Only the requests judged allowed reached the upstream, each as the gateway judged it.
    const reached = up.received.map((r) => `${r.method} ${r.url}`);
    expect(reached).toEqual(['POST /orders/override', 'GET /orders/after-deep']);
    const override = up.received[0]!;
    for (const h of ['x-http-method-override', 'x-original-url']) expect(override.headers[h]).toBeUndefined();
    expect(override.headers['x-auth-subject']).toBe('mallory');
    // Still serving.
    expect(gw.proc.exitCode).toBeNull();
    expect(await get('/public/still-here')).toBe(200);
  });
});
