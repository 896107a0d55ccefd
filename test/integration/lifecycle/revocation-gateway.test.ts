/**
 * Revocation through the built gateway. oidc-provider's RP-initiated logout makes it
 * POST a `logout_token` straight to the gateway's back-channel logout endpoint
 * (OpenID Connect Back-Channel Logout 1.0): the session's token, cached by the gateway a
 * moment before, is refused on the very next request (401 `revoked`), counted in the
 * metrics, and a token of a later login passes. The endpoint answers 400 to anything
 * that is no valid, unused logout token, and is never proxied. An operator's `POST
 * /revocations` by `jti` on the admin listener refuses one token; `GET` lists the
 * entries; `DELETE` lifts one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { baseConfig, startGatewayProcess, startUpstream, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';
import { JWT_API, JWT_API_AUDIENCE, RP_CLIENT_ID, startTestOp, type TestOp } from '../op.js';
import { auditLine, call, metric } from './helpers.js';

const LOGOUT = '/.well-known/mfa-gateway/backchannel-logout';
let op: TestOp;
let up: Upstream;
let gw: GatewayProcess;

beforeAll(async () => {
  [op, up] = await Promise.all([startTestOp(), startUpstream()]);
  gw = await startGatewayProcess(
    writeConfig(
      baseConfig({
        verifier: { threads: 1 },
        issuers: [{ name: 'op', issuer: op.issuer, discovery: true, audience: [JWT_API_AUDIENCE], algorithms: ['ES256', 'RS256'], typ: 'at+jwt', logoutAudience: [RP_CLIENT_ID] }],
        upstreams: { app: { url: up.url } },
        // A catch-all route: the logout path would match it, and must still never be proxied.
        routes: [{ path: '/', upstream: 'app', auth: 'mfa' }],
        audit: { bufferBytes: 0 },
      }),
    ),
  );
  op.setBackchannelLogoutUri(`${gw.url}${LOGOUT}`);
});

afterAll(async () => {
  await gw?.stop();
  await Promise.all([up?.close(), op?.close()]);
});

const form = (body: Record<string, string>, contentType = 'application/x-www-form-urlencoded') =>
  call(gw.url, LOGOUT, { method: 'POST', headers: { 'content-type': contentType }, body: new URLSearchParams(body).toString() });

describe('back-channel logout from oidc-provider', () => {
  it('refuses the session’s cached token on the very next request; a later login’s token passes', async () => {
    const login = await op.login({ resource: JWT_API });
    expect(decodeJwt(login.accessToken)['sid']).toEqual(expect.any(String));
    const first = await call(gw.url, '/orders/1', { token: login.accessToken });
    expect(first.status, first.text).toBe(200);
    const cached = await call(gw.url, '/orders/1', { token: login.accessToken });
    expect(await auditLine(gw, cached.requestId)).toMatchObject({ reason: 'ok', cache: 'hit' });

    const logoutsBefore = op.logoutTokens.length;
    // The OP answers the logout only once every back-channel call is done (oidc-provider awaits them).
    await op.logout(login);
    expect(op.logoutTokens.length).toBe(logoutsBefore + 1);
    expect(decodeJwt(op.logoutTokens.at(-1)!)).toMatchObject({ iss: op.issuer, aud: RP_CLIENT_ID, sid: decodeJwt(login.accessToken)['sid'] });

    const before = up.received.length;
    const refused = await call(gw.url, '/orders/1', { token: login.accessToken });
    expect(refused.status).toBe(401);
    expect(refused.challenge).toBe('Bearer realm="mfa-gateway", error="invalid_token", error_description="token revoked"');
    expect(await auditLine(gw, refused.requestId)).toMatchObject({ reason: 'revoked', decision: 'deny', cache: 'hit', subject: 'alice' });
    expect(up.received.length).toBe(before);
    expect(await metric(gw, 'mfa_gateway_revocations{kind="sid"}')).toBe(1);
    expect(await metric(gw, 'mfa_gateway_revoked_requests_total')).toBe(1);
    const line = gw.logLines().find((l) => l['msg'] === 'back-channel logout');
    expect(line).toMatchObject({ level: 'info', issuer: 'op', revoked: ['sid'] });

    // The user logs in again: a new session, tokens issued after the logout.
    const again = await op.login({ resource: JWT_API });
    expect((await call(gw.url, '/orders/1', { token: again.accessToken })).status).toBe(200);
  });

  it('answers 400 invalid_request to a replayed logout token, and never proxies the endpoint', async () => {
    const used = op.logoutTokens.at(-1)!;
    const r = await form({ logout_token: used });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: 'invalid_request', error_description: 'The logout token was already used.' });
    expect(r.headers['cache-control']).toBe('no-store');
    expect(await auditLine(gw, r.requestId)).toMatchObject({ reason: 'logout_invalid', route: null });
    expect(up.received.some((g) => g.url.startsWith('/.well-known'))).toBe(false);
  });

  it('answers 400 to what is no logout token of a configured issuer, 405 to another method', async () => {
    const idLike = (await op.login({ resource: JWT_API })).idToken;
    for (const [body, description] of [
      [{}, 'The logout request has no logout_token.'],
      [{ logout_token: 'not-a-jwt' }, 'The logout token issuer is not accepted.'],
      // An ID token is signed by the OP for this audience, but it is no logout token (§2.4: no jti, no event).
      [{ logout_token: idLike }, 'The logout token has no jti.'],
    ] as const) {
      const r = await form(body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body).toMatchObject({ error: 'invalid_request', error_description: description });
    }
    const json = await form({ logout_token: 'x' }, 'application/json');
    expect(json.status).toBe(400);
    const get = await call(gw.url, LOGOUT);
    expect(get.status).toBe(405);
    expect(get.headers['allow']).toBe('POST');
    expect(up.received.some((g) => g.url.startsWith('/.well-known'))).toBe(false);
  });
});

describe('the admin listener’s revocations', () => {
  const admin = (method: 'GET' | 'POST' | 'DELETE', body?: unknown) => call(gw.adminUrl, '/revocations', { method, headers: { 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });

  it('refuses one token by jti from the next request on (201), lists it, and lifts it again', async () => {
    const login = await op.login({ resource: JWT_API });
    const jti = decodeJwt(login.accessToken)['jti'] as string;
    expect((await call(gw.url, '/orders/1', { token: login.accessToken })).status).toBe(200);

    const added = await admin('POST', { issuer: 'op', jti });
    expect(added.status).toBe(201);
    expect(added.body).toMatchObject({ issuer: 'op', kind: 'jti', value: jti });
    const refused = await call(gw.url, '/orders/1', { token: login.accessToken });
    expect(refused.status).toBe(401);
    expect(await auditLine(gw, refused.requestId)).toMatchObject({ reason: 'revoked', cache: 'hit' });

    const listed = await admin('GET');
    expect(listed.status).toBe(200);
    expect(JSON.parse(listed.text)).toEqual(expect.arrayContaining([expect.objectContaining({ issuer: 'op', kind: 'jti', value: jti }), expect.objectContaining({ kind: 'sid' })]));
    expect(await metric(gw, 'mfa_gateway_revocations{kind="jti"}')).toBe(1);

    expect((await admin('DELETE', { issuer: 'op', jti })).status).toBe(204);
    expect((await admin('DELETE', { issuer: 'op', jti })).status).toBe(404);
    expect((await call(gw.url, '/orders/1', { token: login.accessToken })).status).toBe(200);
  });

  it('answers 400 with what is wrong to a body that names no entry', async () => {
    for (const [body, description] of [
      [{ issuer: 'nope', sub: 'alice' }, 'issuer must be the name of a configured issuer: one of op.'],
      [{ issuer: 'op' }, 'Name exactly one of sub, sid, jti.'],
      [{ issuer: 'op', sub: 'alice', sid: 's' }, 'Name exactly one of sub, sid, jti.'],
      [{ issuer: 'op', sub: '' }, 'sub must be a string of 1 to 1024 characters.'],
      [{ issuer: 'op', user: 'alice' }, 'Unknown member "user"; the members are issuer and one of sub, sid, jti.'],
      [['op'], 'The body must be a JSON object: {"issuer": "…", "sub" | "sid" | "jti": "…"}.'],
    ] as const) {
      const r = await admin('POST', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body).toEqual({ error: 'invalid_request', error_description: description });
    }
  });
});
