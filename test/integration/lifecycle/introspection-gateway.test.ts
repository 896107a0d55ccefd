/**
 * Opaque access tokens (RFC 7662) through the built gateway, with oidc-provider's real
 * introspection endpoint: an opaque token is introspected once for many requests (counted
 * at the IdP) and judged by MFA and roles from the answer's claims; a token revoked at
 * the IdP before its first use is inactive (401); an introspection endpoint that is down
 * gives 503 `temporarily_unavailable`, never an allow; an opaque DPoP-bound token needs
 * its proof. `check` refuses a route that could send an opaque token to two issuers.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseConfig, runCli, startGatewayProcess, startUpstream, tempDir, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';
import { dpopKey, GATEWAY_CLIENT_ID, GATEWAY_SECRET, OPAQUE_API, OPAQUE_API_AUDIENCE, startTestOp, type TestOp } from '../op.js';
import { auditLine, call } from './helpers.js';

let op: TestOp;
let up: Upstream;
let gw: GatewayProcess;
const dir = tempDir();

const introspecting = (name: string, issuer: string, extra: Record<string, unknown> = {}) => ({
  name,
  issuer,
  jwksUri: `${op.issuer}/jwks`,
  audience: [OPAQUE_API_AUDIENCE],
  algorithms: ['ES256', 'RS256'],
  introspection: { clientId: GATEWAY_CLIENT_ID, clientSecretFile: 'gateway.secret', ...extra },
});

beforeAll(async () => {
  [op, up] = await Promise.all([startTestOp(), startUpstream()]);
  writeFileSync(join(dir, 'gateway.secret'), `${GATEWAY_SECRET}\n`);
  gw = await startGatewayProcess(
    writeConfig(
      baseConfig({
        verifier: { threads: 1 },
        issuers: [
          // The endpoint from discovery (introspection_endpoint).
          { ...introspecting('op', op.issuer), jwksUri: undefined, discovery: true },
          // Nothing listens on port 9: connection refused.
          introspecting('down', 'https://down.example', { endpoint: 'http://127.0.0.1:9/token/introspection', timeout: '500ms' }),
        ],
        upstreams: { app: { url: up.url } },
        routes: [
          { path: '/api/', upstream: 'app', auth: 'mfa', issuers: ['op'], roles: ['reader'] },
          { path: '/admin/', upstream: 'app', auth: 'mfa', issuers: ['op'], roles: ['admin'] },
          { path: '/down/', upstream: 'app', auth: 'token', issuers: ['down'] },
        ],
        audit: { bufferBytes: 0 },
      }),
      dir,
    ),
  );
});

afterAll(async () => {
  await gw?.stop();
  await Promise.all([up?.close(), op?.close()]);
});

const introspections = () => op.hits.get('/token/introspection') ?? 0;

describe('an opaque access token of oidc-provider', () => {
  it('is introspected once for many requests, and MFA and roles are read from the answer', async () => {
    const { accessToken } = await op.login({ resource: OPAQUE_API });
    expect(accessToken.split('.')).toHaveLength(1);
    const before = introspections();
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push(await call(gw.url, '/api/orders', { token: accessToken }));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
    expect(introspections()).toBe(before + 1);
    expect(await auditLine(gw, answers[0]!.requestId)).toMatchObject({ reason: 'ok', cache: 'miss', issuer: 'op', subject: 'alice', amr: ['pwd', 'otp'] });
    expect(await auditLine(gw, answers[4]!.requestId)).toMatchObject({ reason: 'ok', cache: 'hit' });
    const got = up.received.at(-1)!;
    expect(got.headers['x-auth-subject']).toBe('alice');
    expect(got.headers['x-auth-amr']).toBe('pwd,otp');
    expect(got.headers['x-auth-roles']).toBe('reader');
    // The same cached answer, judged by another route's policy.
    const admin = await call(gw.url, '/admin/users', { token: accessToken });
    expect(admin.status).toBe(403);
    expect(await auditLine(gw, admin.requestId)).toMatchObject({ reason: 'role_missing', cache: 'hit' });
    expect(introspections()).toBe(before + 1);
  });

  it('is refused 401 inactive once the IdP revoked it (RFC 7009), and the answer is remembered', async () => {
    const { accessToken } = await op.login({ resource: OPAQUE_API });
    await op.revoke(accessToken);
    const before = introspections();
    const r = await call(gw.url, '/api/orders', { token: accessToken });
    expect(r.status).toBe(401);
    expect(r.challenge).toBe('Bearer realm="mfa-gateway", error="invalid_token", error_description="token not active"');
    expect(await auditLine(gw, r.requestId)).toMatchObject({ reason: 'inactive', cache: 'miss' });
    const again = await call(gw.url, '/api/orders', { token: accessToken });
    expect(again.status).toBe(401);
    expect(await auditLine(gw, again.requestId)).toMatchObject({ reason: 'inactive', cache: 'negative' });
    expect(introspections()).toBe(before + 1);
  });

  it('bound to a DPoP key (cnf.jkt in the answer) needs the DPoP scheme and a proof', async () => {
    const key = await dpopKey('ES256');
    const { accessToken, tokenType } = await op.login({ resource: OPAQUE_API, dpop: key });
    expect(tokenType).toBe('DPoP');
    const bearer = await call(gw.url, '/api/orders', { token: accessToken });
    expect(bearer.status).toBe(401);
    expect(await auditLine(gw, bearer.requestId)).toMatchObject({ reason: 'dpop_bound_as_bearer' });
    const proof = await key.proof('GET', `${gw.url}/api/orders`, { accessToken });
    expect((await call(gw.url, '/api/orders', { token: accessToken, scheme: 'DPoP', proofs: [proof] })).status).toBe(200);
  });
});

describe('an introspection endpoint that is down', () => {
  it('answers 503 temporarily_unavailable with Retry-After, never an allow, and logs no secret', async () => {
    const { accessToken } = await op.login({ resource: OPAQUE_API });
    const before = up.received.length;
    for (let i = 0; i < 2; i++) {
      const r = await call(gw.url, '/down/x', { token: accessToken });
      expect(r.status).toBe(503);
      expect(r.headers['retry-after']).toBe('1');
      expect(r.body).toMatchObject({ error: 'temporarily_unavailable', error_description: 'Token introspection is temporarily unavailable; retry later.' });
      expect(await auditLine(gw, r.requestId)).toMatchObject({ reason: 'temporarily_unavailable', cache: 'miss' });
    }
    expect(up.received.length).toBe(before);
    expect(gw.logLines().some((l) => l['msg'] === 'token introspection failed' && l['issuer'] === 'down' && l['reason'] === 'unavailable')).toBe(true);
    expect(gw.stdout() + gw.stderr()).not.toContain(GATEWAY_SECRET);
  });
});

describe('check', () => {
  it('refuses a route that could send an opaque token to two issuers with introspection, and an inline or missing secret', async () => {
    const both = introspecting('b', 'https://b.example');
    const file = writeConfig(
      baseConfig({
        issuers: [introspecting('a', 'https://a.example'), { ...both, introspection: { clientId: 'gw', clientSecret: 'inline' } }],
        upstreams: { app: { url: 'http://127.0.0.1:9' } },
        routes: [{ path: '/', upstream: 'app' }],
      }),
    );
    const r = await runCli(['check', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('routes[0].issuers: an opaque token on this route could go to 2 issuers with introspection (a, b); list at most one of them in issuers');
    expect(r.stderr).toContain('issuers[1].introspection: needs exactly one of clientSecretFile, clientSecretEnv');
    expect(r.stderr).toContain('issuers[0].introspection.clientSecretFile: file not found');
    expect(r.stderr).toMatch(/issuers\[1\]\.introspection\.clientSecret\b.*unknown key/i);
  });
});
