import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { baseConfig, rawRequest, startGatewayProcess, startUpstream, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';
import { recordToken } from '../leaks.js';
import { startIdp, type TestIdp } from './tokens.js';

// The whole auth pipeline through the built gateway: a real discovery + JWKS
// endpoint, tokens signed by it, a real upstream that records what it received.
let idp: TestIdp;
let other: TestIdp;
let up: Upstream;
let gw: GatewayProcess;
const now = () => Math.floor(Date.now() / 1000);
const MFA = { amr: ['pwd', 'otp'], auth_time: 0 };

beforeAll(async () => {
  idp = await startIdp('/realms/corp');
  other = await startIdp('/realms/other');
  up = await startUpstream();
  gw = await startGatewayProcess(
    writeConfig(
      baseConfig({
        verifier: { threads: 2 },
        issuers: [
          { name: 'corp', issuer: idp.issuer, discovery: true, audience: ['orders-api'], typ: 'at+jwt', claims: { roles: 'realm_access.roles' } },
          { name: 'other', issuer: other.issuer, jwksUri: other.jwksUri, audience: ['orders-api'] },
        ],
        upstreams: { orders: { url: up.url } },
        mfa: { amr: ['mfa'], maxAge: '1h' },
        routes: [
          { path: '/public/', upstream: 'orders', auth: 'none' },
          { path: '/token/', upstream: 'orders', auth: 'token', forwardAuthorization: false },
          { path: '/orders/', upstream: 'orders', issuers: ['corp'], roles: ['orders.reader'], scopes: ['orders:read'] },
          { path: '/orders/refunds/', upstream: 'orders', issuers: ['corp'], mfa: { maxAge: '5m' }, acr: ['phrh', 'phr'] },
        ],
      }),
    ),
  );
});

afterAll(async () => {
  await gw?.stop();
  await up?.close();
  await idp?.close();
  await other?.close();
});

async function call(path: string, token?: string, headers: Record<string, string> = {}) {
  recordToken(token); // forged ones too, for the whole-run leak check (test/leaks)
  const res = await request(`${gw.url}${path}`, { headers: { ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}), ...headers } });
  const text = await res.body.text();
  return { status: res.statusCode, challenge: res.headers['www-authenticate'] as string | undefined, text, body: JSON.parse(text || '{}') as Record<string, string>, headers: res.headers };
}

function reader(extra: Record<string, unknown> = {}) {
  return idp.mint({ ...MFA, auth_time: now() - 60, realm_access: { roles: ['orders.reader'] }, scope: 'openid orders:read', ...extra });
}

describe('credentials', () => {
  it('answers 401 with a bare realm challenge when there is no bearer token, and never reaches the upstream', async () => {
    const before = up.received.length;
    for (const headers of [{}, { authorization: 'Basic YWxpY2U6cHdk' }]) {
      const r = await call('/orders/1', undefined, headers);
      expect(r.status).toBe(401);
      expect(r.challenge).toBe('Bearer realm="mfa-gateway"');
      expect(r.body['error']).toBe('unauthorized');
    }
    // RFC 6750 §2.3 query tokens are never accepted.
    const q = await call(`/orders/1?access_token=${await reader()}`);
    expect(q.status).toBe(401);
    expect(up.received.length).toBe(before);
  });

  it('answers 400 invalid_request to two Authorization headers and to an empty bearer token', async () => {
    const t = await reader();
    const two = await rawRequest(gw.port, `GET /orders/1 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${t}\r\nAuthorization: Bearer ${t}\r\nConnection: close\r\n\r\n`);
    expect(two.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(two.text).toMatch(/www-authenticate: Bearer realm="mfa-gateway", error="invalid_request"/i);
    const empty = await call('/orders/1', '');
    expect(empty.status).toBe(400);
    expect(empty.challenge).toMatch(/error="invalid_request"/);
  });

  it('answers 400 invalid_request to a bearer value outside RFC 6750 b64token, on a miss, and never reaches the upstream', async () => {
    const before = up.received.length;
    // Each is a token the cache cannot hold (it never passed this check), so the check runs.
    for (const value of ['a=b', '=', 'abc def', 'a,b', `${(await reader()).slice(0, -4)}$%^&`]) {
      const r = await call('/orders/1', undefined, { authorization: `Bearer ${value}` });
      expect(r.status, value).toBe(400);
      expect(r.challenge).toBe('Bearer realm="mfa-gateway", error="invalid_request", error_description="malformed bearer token"');
      expect(r.body).toMatchObject({ error: 'invalid_request', error_description: 'malformed bearer token' });
    }
    expect(up.received.length).toBe(before);
  });

  it('matches the Bearer scheme case-insensitively', async () => {
    const r = await call('/orders/1', undefined, { authorization: `bEaReR ${await reader()}` });
    expect(r.status).toBe(200);
  });
});

describe('tokens', () => {
  it('lets a valid MFA token with the role and scope through, with identity headers, and strips client copies', async () => {
    const t = await reader({ sub: 'alice', acr: 'phr' });
    const r = await call('/orders/42?x=1', t, { 'x-auth-subject': 'mallory', 'x-auth-roles': 'admin' });
    expect(r.status).toBe(200);
    const got = up.received.at(-1)!;
    expect(got.url).toBe('/orders/42?x=1');
    expect(got.headers['x-auth-subject']).toBe('alice');
    expect(got.headers['x-auth-roles']).toBe('orders.reader');
    expect(got.headers['x-auth-amr']).toBe('pwd,otp');
    expect(got.headers['x-auth-acr']).toBe('phr');
    expect(got.headers['x-auth-issuer']).toBe(idp.issuer);
    expect(got.headers['authorization']).toBe(`Bearer ${t}`);
    // The same token again is served from the cache: same answer.
    expect((await call('/orders/43', t)).status).toBe(200);
  });

  it('answers 401 invalid_token for a bad signature, an expired token, a wrong audience and a wrong typ, never echoing the token', async () => {
    const good = await reader();
    const [h, p] = good.split('.');
    const cases: [string, string][] = [
      ['bad signature', `${h}.${p}.${'A'.repeat(342)}`],
      ['expired', await reader({ exp: now() - 3600 })],
      ['wrong audience', await reader({ aud: 'billing-api' })],
      ['id token as access token', await idp.mint({ ...MFA, auth_time: now() }, { typ: 'JWT' })],
      ['garbage', 'not.a.jwt'],
      ['unknown issuer', await reader({ iss: 'https://evil.example' })],
    ];
    const before = up.received.length;
    for (const [name, token] of cases) {
      const r = await call('/orders/1', token);
      expect(r.status, name).toBe(401);
      expect(r.challenge, name).toMatch(/^Bearer realm="mfa-gateway", error="invalid_token", error_description="[^"]+"$/);
      expect(r.body['error'], name).toBe('invalid_token');
      expect(r.text, name).not.toContain(token);
      expect(r.challenge, name).not.toContain(token.slice(0, 20));
    }
    expect(up.received.length).toBe(before);
  });

  it('refuses a valid token from an issuer the route does not allow', async () => {
    const t = await other.mint({ ...MFA, auth_time: now(), roles: ['orders.reader'], scope: 'orders:read' });
    const r = await call('/orders/1', t);
    expect(r.status).toBe(401);
    expect(r.challenge).toMatch(/error="invalid_token"/);
    // …but the other issuer is fine on a route that takes every issuer.
    expect((await call('/token/1', t)).status).toBe(200);
  });

  it('does not forward the Authorization header when the route says so', async () => {
    const r = await call('/token/x', await idp.mint({ amr: ['pwd'] }));
    expect(r.status).toBe(200);
    expect(up.received.at(-1)!.headers['authorization']).toBeUndefined();
    expect(up.received.at(-1)!.headers['x-auth-subject']).toBe('alice');
  });
});

describe('MFA and roles', () => {
  it('answers the RFC 9470 step-up challenge to a password-only token', async () => {
    const r = await call('/orders/1', await reader({ amr: ['pwd'] }));
    expect(r.status).toBe(401);
    expect(r.challenge).toMatch(/^Bearer realm="mfa-gateway", error="insufficient_user_authentication", error_description="[^"]+"/);
    expect(r.body['error']).toBe('insufficient_user_authentication');
  });

  it('asks for a fresh login with max_age when auth_time is too old for the route', async () => {
    const r = await call('/orders/refunds/1', await reader({ acr: 'phr', auth_time: now() - 600 }));
    expect(r.status).toBe(401);
    expect(r.challenge).toMatch(/error="insufficient_user_authentication"/);
    expect(r.challenge).toMatch(/max_age="300"/);
  });

  it('asks for the route acr values when the acr is insufficient', async () => {
    const r = await call('/orders/refunds/1', await reader({ acr: 'basic' }));
    expect(r.status).toBe(401);
    expect(r.challenge).toMatch(/acr_values="phrh phr"/);
    expect((await call('/orders/refunds/1', await reader({ acr: 'phrh' }))).status).toBe(200);
  });

  it('answers 403 insufficient_scope when a role or scope is missing', async () => {
    const noRole = await call('/orders/1', await reader({ realm_access: { roles: ['billing'] } }));
    expect(noRole.status).toBe(403);
    expect(noRole.challenge).toMatch(/error="insufficient_scope"/);
    const noScope = await call('/orders/1', await reader({ scope: 'openid' }));
    expect(noScope.status).toBe(403);
    expect(noScope.challenge).toMatch(/scope="orders:read"/);
    // A top-level claim literally named "realm_access.roles" is not the nested path.
    const literal = await call('/orders/1', await reader({ realm_access: undefined, 'realm_access.roles': ['orders.reader'] }));
    expect(literal.status).toBe(403);
  });

  it('lets a password-only token through an auth: token route', async () => {
    expect((await call('/token/1', await idp.mint({ amr: ['pwd'] }))).status).toBe(200);
  });

  it('fetched discovery and the key set once for all of the above', () => {
    expect(idp.hits.get('/realms/corp/.well-known/openid-configuration')).toBe(1);
    expect(idp.hits.get('/realms/corp/certs')).toBe(1);
  });
});
