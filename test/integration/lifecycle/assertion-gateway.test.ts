/**
 * Identity assertions through the built gateway: the upstream verifies the
 * `x-mfa-gateway-assertion` JWT against the gateway's key set on the admin listener
 * (`/.well-known/jwks.json`), with the code README "Identity assertions" gives; the
 * assertion names the caller as the token did, is signed once and reused, and a copy the
 * client sent never reaches the upstream. A second gateway signs with a key from a file.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { baseConfig, startGatewayProcess, startUpstream, tempDir, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';
import { startIdp, type TestIdp } from '../auth/tokens.js';
import { recordToken } from '../leaks.js';
import { call } from './helpers.js';

let idp: TestIdp;
let up: Upstream;
let gw: GatewayProcess;
let fromFile: GatewayProcess;
const dir = tempDir();
const now = () => Math.floor(Date.now() / 1000);

const config = (identityAssertion: Record<string, unknown>) =>
  baseConfig({
    verifier: { threads: 1 },
    issuers: [{ name: 'corp', issuer: idp.issuer, jwksUri: idp.jwksUri, audience: ['orders-api'], claims: { roles: 'roles' } }],
    upstreams: { orders: { url: up.url } },
    routes: [
      { path: '/public/', upstream: 'orders', auth: 'none' },
      { path: '/orders/', upstream: 'orders', auth: 'mfa', forwardAuthorization: false },
    ],
    identityAssertion,
    audit: { enabled: false },
  });

beforeAll(async () => {
  [idp, up] = await Promise.all([startIdp('/realms/corp'), startUpstream()]);
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(join(dir, 'assertion.pem'), privateKey.export({ format: 'pem', type: 'pkcs8' }));
  [gw, fromFile] = await Promise.all([
    startGatewayProcess(writeConfig(config({ enabled: true, issuer: 'https://gateway.example.com' }))),
    startGatewayProcess(writeConfig(config({ enabled: true, keyFile: 'assertion.pem', header: 'x-gateway-identity', lifetime: '30s' }), dir)),
  ]);
});

afterAll(async () => {
  await Promise.all([gw?.stop(), fromFile?.stop()]);
  await Promise.all([up?.close(), idp?.close()]);
});

// README "Identity assertions", the upstream's side, as an upstream would write it.
async function verifyAssertion(assertion: string, jwksUrl: string, issuer: string, upstreamName: string) {
  const keys = createRemoteJWKSet(new URL(jwksUrl));
  const { payload } = await jwtVerify(assertion, keys, { issuer, audience: upstreamName, algorithms: ['ES256'], requiredClaims: ['exp', 'sub'] });
  return payload;
}

const mfaToken = () => idp.mint({ amr: ['pwd', 'otp'], acr: 'urn:corp:mfa', auth_time: now() - 30, roles: ['reader', 'admin'], scope: 'openid orders:read', groups: ['ops'] });

describe('an allowed request', () => {
  it('carries an assertion the upstream verifies against the gateway’s JWKS, with the caller’s identity', async () => {
    const token = await mfaToken();
    const r = await call(gw.url, '/orders/1', { token, headers: { 'x-mfa-gateway-assertion': 'forged-by-the-client' } });
    expect(r.status, r.text).toBe(200);
    const got = up.received.at(-1)!;
    const assertion = recordToken(got.headers['x-mfa-gateway-assertion'] as string);
    // Exactly one: the client's copy was removed.
    expect(got.rawHeaders.filter((h) => h.toLowerCase() === 'x-mfa-gateway-assertion')).toHaveLength(1);
    expect(assertion).not.toBe('forged-by-the-client');
    expect(decodeProtectedHeader(assertion)).toMatchObject({ alg: 'ES256', typ: 'JWT', kid: expect.any(String) });
    const claims = await verifyAssertion(assertion, `${gw.adminUrl}/.well-known/jwks.json`, 'https://gateway.example.com', 'orders');
    expect(claims).toMatchObject({
      iss: 'https://gateway.example.com',
      aud: 'orders',
      sub: 'alice',
      amr: ['pwd', 'otp'],
      acr: 'urn:corp:mfa',
      roles: ['reader', 'admin'],
      groups: ['ops'],
      scope: 'openid orders:read',
    });
    expect(claims.exp! - claims.iat!).toBe(60);
    // Not for another upstream.
    await expect(verifyAssertion(assertion, `${gw.adminUrl}/.well-known/jwks.json`, 'https://gateway.example.com', 'billing')).rejects.toMatchObject({ code: 'ERR_JWT_CLAIM_VALIDATION_FAILED' });
  });

  it('reuses one assertion per token and upstream for its lifetime, and serves the key set as application/jwk-set+json', async () => {
    const token = await mfaToken();
    await call(gw.url, '/orders/1', { token });
    await call(gw.url, '/orders/2', { token });
    const [a, b] = up.received.slice(-2).map((g) => g.headers['x-mfa-gateway-assertion']);
    expect(a).toBe(b);
    const res = await fetch(`${gw.adminUrl}/.well-known/jwks.json`);
    expect(res.headers.get('content-type')).toBe('application/jwk-set+json');
    const jwks = (await res.json()) as { keys: Record<string, string>[] };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(jwks.keys[0]).not.toHaveProperty('d');
  });

  it('on a public route carries none, and a client copy is removed there too', async () => {
    const r = await call(gw.url, '/public/x', { headers: { 'x-mfa-gateway-assertion': 'forged-by-the-client' } });
    expect(r.status).toBe(200);
    expect(up.received.at(-1)!.headers['x-mfa-gateway-assertion']).toBeUndefined();
  });
});

describe('a key from a file, another header name', () => {
  it('signs with that key (its thumbprint as kid) in the configured header, issuer mfa-gateway by default', async () => {
    const r = await call(fromFile.url, '/orders/1', { token: await mfaToken(), headers: { 'x-gateway-identity': 'forged' } });
    expect(r.status).toBe(200);
    const got = up.received.at(-1)!;
    expect(got.headers['x-mfa-gateway-assertion']).toBeUndefined();
    const claims = await verifyAssertion(recordToken(got.headers['x-gateway-identity'] as string), `${fromFile.adminUrl}/.well-known/jwks.json`, 'mfa-gateway', 'orders');
    expect(claims.exp! - claims.iat!).toBe(30);
    // The other gateway's keys do not verify it.
    await expect(verifyAssertion(got.headers['x-gateway-identity'] as string, `${gw.adminUrl}/.well-known/jwks.json`, 'mfa-gateway', 'orders')).rejects.toBeDefined();
  });
});
