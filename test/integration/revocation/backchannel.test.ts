/**
 * Back-Channel Logout 1.0 with a real OpenID provider: oidc-provider POSTs a
 * `logout_token` to the relying party's back-channel logout URI (a node:http server on
 * port 0) when the user logs out there; it is validated against the OP's keys through
 * the gateway's own key store (discovery, JWKS), turned into revocation entries, and the
 * session's access token, verified by the gateway's verifier, is refused from then on;
 * a token of a later login passes. Crafted tokens failing each rule:
 * test/unit/revocation/logout-token.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { KeyStore } from '../../../src/authn/jwks.js';
import { createVerifier } from '../../../src/authn/verifier.js';
import type { Verifier } from '../../../src/authn/types.js';
import type { CompiledConfig } from '../../../src/config/types.js';
import { MemoryReplayStore } from '../../../src/dpop/replay.js';
import { RevocationList } from '../../../src/revocation/list.js';
import { keyStoreSelector, revocationsForLogout, validateLogoutToken, type LogoutTokenOptions } from '../../../src/revocation/logout-token.js';
import { configWith } from '../authn/idp.js';
import { outputSink } from '../leaks.js';
import { JWT_API, JWT_API_AUDIENCE, RP_CLIENT_ID, startTestOp, type TestOp } from '../op.js';

const logSink = outputSink('backchannel-log');
const log = (level: string, msg: string, fields?: Record<string, unknown>) => logSink(`${JSON.stringify({ level, msg, fields })}\n`);

let op: TestOp;
let config: CompiledConfig;
let verifier: Verifier;
let keys: KeyStore;
const closing = new AbortController();

beforeAll(async () => {
  op = await startTestOp();
  config = configWith([{ name: 'op', issuer: op.issuer, discovery: true, audience: [JWT_API_AUDIENCE], algorithms: ['ES256', 'RS256'], typ: 'at+jwt' }]);
  verifier = createVerifier(config, { log });
  await verifier.start();
  // The issuer's key store, as the verifier holds one (src/authn/jwks.ts); not loaded yet:
  // the first logout token makes the selector load it.
  keys = new KeyStore(config.issuers[0]!, { now: Date.now, fetch: globalThis.fetch, log, cooldownMs: 1000, timeoutMs: 5000, signal: closing.signal });
});

afterAll(async () => {
  closing.abort();
  await verifier?.close();
  await op?.close();
});

const options = (over: Partial<LogoutTokenOptions> = {}): LogoutTokenOptions => ({
  issuerName: 'op',
  issuer: op.issuer,
  audiences: [RP_CLIENT_ID],
  algorithms: ['RS256', 'ES256'],
  selectKey: keyStoreSelector(keys),
  nowMs: Date.now(),
  clockToleranceSec: 30,
  ...over,
});

async function principalOf(token: string) {
  const r = await verifier.verify(token);
  if (!r.ok) throw new Error(`the OP's access token did not verify: ${r.reason}`);
  return r.principal;
}

describe('a logout at the OP', () => {
  it('sends a logout token that validates, revokes the session, and spares a later login', async () => {
    const session = await op.login({ resource: JWT_API });
    const before = await principalOf(session.accessToken);
    expect(before.sid).toBe(decodeJwt(session.idToken)['sid']);
    const list = new RevocationList({ now: Date.now, maxTokenLifetimeMs: 600_000 });
    expect(list.check(before)).toBeNull();

    const received = op.nextLogoutToken();
    await op.logout(session);
    const logoutToken = await received;
    expect(decodeProtectedHeader(logoutToken)).toMatchObject({ typ: 'logout+jwt', alg: 'RS256' });
    expect(keys.fetches).toBe(0);

    const lt = await validateLogoutToken(logoutToken, options());
    expect(lt).toEqual({
      ok: true,
      issuer: 'op',
      iss: op.issuer,
      sub: 'alice',
      sid: before.sid,
      iat: decodeJwt(logoutToken)['iat'],
      jti: decodeJwt(logoutToken)['jti'],
      exp: decodeJwt(logoutToken)['exp'],
    });
    // The key set was loaded on demand, once.
    expect(keys.fetches).toBe(1);
    if (!lt.ok) return;

    for (const entry of revocationsForLogout(lt)) list.add(entry);
    expect(list.list()).toEqual([{ issuer: 'op', kind: 'sid', value: before.sid, cutoffSec: lt.iat, expiresAtMs: lt.iat * 1000 + 600_000 }]);
    // The session's access token still verifies (signature, exp) but is revoked.
    expect(list.check(await principalOf(session.accessToken))).toMatchObject({ kind: 'sid', value: before.sid });

    // A new login is a new session (another sid, a later or equal iat): it passes.
    const later = await principalOf((await op.login({ resource: JWT_API })).accessToken);
    expect(later.sid).not.toBe(before.sid);
    expect(list.check(later)).toBeNull();

    // With scope "subject" the same logout revokes every token of alice up to the logout.
    const bySubject = new RevocationList({ now: Date.now, maxTokenLifetimeMs: 600_000 });
    for (const entry of revocationsForLogout(lt, 'subject')) bySubject.add(entry);
    expect(bySubject.check(before)).toMatchObject({ kind: 'sub', value: 'alice' });
  });

  it('is refused when replayed (its jti), when meant for another client, or past its exp', async () => {
    const session = await op.login({ resource: JWT_API });
    const received = op.nextLogoutToken();
    await op.logout(session);
    const logoutToken = await received;
    const lt = await validateLogoutToken(logoutToken, options());
    expect(lt.ok).toBe(true);
    if (!lt.ok) return;
    // §2.6 step 8 (the caller's check): remembered until exp.
    const seen = new MemoryReplayStore({ now: Date.now });
    expect(seen.remember(`op:${lt.jti}`, lt.exp * 1000)).toBe(true);
    expect(seen.remember(`op:${lt.jti}`, lt.exp * 1000)).toBe(false);

    expect(await validateLogoutToken(logoutToken, options({ audiences: ['gateway'] }))).toMatchObject({ ok: false, reason: 'wrong_audience' });
    expect(await validateLogoutToken(logoutToken, options({ issuer: `${op.issuer}/other` }))).toMatchObject({ ok: false, reason: 'wrong_issuer' });
    // oidc-provider's logout tokens live 120 s.
    expect(await validateLogoutToken(logoutToken, options({ nowMs: (lt.exp + 31) * 1000 }))).toMatchObject({ ok: false, reason: 'expired' });
    expect(await validateLogoutToken(logoutToken, options({ algorithms: ['ES256'] }))).toMatchObject({ ok: false, reason: 'alg_not_allowed' });
    // One signature character changed (in the middle: no base64url pad bits there).
    const at = logoutToken.lastIndexOf('.') + 10;
    const forged = `${logoutToken.slice(0, at)}${logoutToken[at] === 'A' ? 'B' : 'A'}${logoutToken.slice(at + 1)}`;
    expect(await validateLogoutToken(forged, options())).toMatchObject({ ok: false, reason: 'bad_signature' });
  });
});
