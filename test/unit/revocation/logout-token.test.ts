/**
 * Back-Channel Logout 1.0 §2.6 validation with crafted logout tokens: one that passes,
 * then one failing each rule on its own. Keys generated per run; the key selector stands
 * for the issuer's key store (its adapter over a real KeyStore is tested against a real
 * OP in test/integration/revocation/).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import {
  BACKCHANNEL_LOGOUT_EVENT,
  revocationsForLogout,
  validateLogoutToken,
  type LogoutToken,
  type LogoutTokenOptions,
} from '../../../src/revocation/logout-token.js';

const NOW = 1_800_000_000_000;
const ISS = 'https://op.example.com';

let rsPrivate: CryptoKey;
let rsJwk: JWK;
let esPrivate: CryptoKey;
let esJwk: JWK;
let strangerPrivate: CryptoKey;
beforeAll(async () => {
  const rs = await generateKeyPair('RS256', { extractable: true });
  const es = await generateKeyPair('ES256', { extractable: true });
  const stranger = await generateKeyPair('RS256');
  [rsPrivate, rsJwk, esPrivate, esJwk, strangerPrivate] = [rs.privateKey, await exportJWK(rs.publicKey), es.privateKey, await exportJWK(es.publicKey), stranger.privateKey];
});

const options = (over: Partial<LogoutTokenOptions> = {}): LogoutTokenOptions => ({
  issuerName: 'corp',
  issuer: ISS,
  audiences: ['gateway'],
  algorithms: ['RS256', 'ES256'],
  // The key set: kid rs-1 (RS256) and es-1 (ES256).
  selectKey: (alg, kid) => (kid === 'rs-1' && alg === 'RS256' ? rsJwk : kid === 'es-1' && alg === 'ES256' ? esJwk : undefined),
  nowMs: NOW,
  clockToleranceSec: 30,
  ...over,
});

/** A valid logout token; `claims` / `header` replace members (undefined removes one). */
function token(claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}, key?: CryptoKey): Promise<string> {
  const body: Record<string, unknown> = {
    iss: ISS, aud: 'gateway', iat: NOW / 1000 - 5, exp: NOW / 1000 + 115, jti: 'lt-1', sub: 'alice', sid: 'session-1',
    events: { [BACKCHANNEL_LOGOUT_EVENT]: {} }, ...claims,
  };
  const head: Record<string, unknown> = { alg: 'RS256', kid: 'rs-1', typ: 'logout+jwt', ...header };
  for (const o of [body, head]) for (const [n, v] of Object.entries(o)) if (v === undefined) delete o[n];
  return new SignJWT(body).setProtectedHeader(head as { alg: string }).sign(key ?? (head['alg'] === 'ES256' ? esPrivate : rsPrivate));
}

describe('validateLogoutToken: valid tokens', () => {
  it('returns issuer, sub, sid, iat, jti and exp', async () => {
    expect(await validateLogoutToken(await token(), options())).toEqual({
      ok: true, issuer: 'corp', iss: ISS, sub: 'alice', sid: 'session-1', iat: NOW / 1000 - 5, jti: 'lt-1', exp: NOW / 1000 + 115,
    });
  });

  it('accepts a token without typ (older OPs), with only sub or only sid, an aud array, an ES256 key, an event with members', async () => {
    const cases = [
      await token({}, { typ: undefined }),
      await token({}, { typ: 'application/logout+jwt' }),
      await token({ sid: undefined }),
      await token({ sub: undefined }),
      await token({ aud: ['other', 'gateway'] }),
      await token({}, { alg: 'ES256', kid: 'es-1' }),
      await token({ events: { [BACKCHANNEL_LOGOUT_EVENT]: { reason: 'x' }, 'urn:other': {} } }),
    ];
    for (const t of cases) expect((await validateLogoutToken(t, options())).ok).toBe(true);
  });

  it('accepts exp and iat within the clock tolerance, and an async key selector', async () => {
    expect((await validateLogoutToken(await token({ exp: NOW / 1000 - 29, iat: NOW / 1000 - 100 }), options())).ok).toBe(true);
    expect((await validateLogoutToken(await token({ iat: NOW / 1000 + 29 }), options())).ok).toBe(true);
    expect((await validateLogoutToken(await token(), options({ selectKey: async () => rsJwk }))).ok).toBe(true);
  });
});

describe('validateLogoutToken: each rule of §2.6 fails on its own', () => {
  const cases: [string, () => Promise<unknown>, Partial<LogoutTokenOptions>?][] = [
    ['too_large', async () => `${'a'.repeat(16_385)}`],
    ['malformed', async () => 'not.a.jwt'],
    ['malformed', async () => 12],
    ['malformed', async () => 'eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d'],
    ['malformed', async () => token({}, { kid: 7 })],
    ['wrong_typ', async () => token({}, { typ: 'JWT' })],
    ['alg_not_allowed', async () => token({}, { alg: 'ES256', kid: 'es-1' }), { algorithms: ['RS256'] }],
    ['alg_not_allowed', async () => `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{}').toString('base64url')}.`, { algorithms: ['none'] }],
    ['unknown_key', async () => token({}, { kid: 'rs-2' })],
    ['unknown_key', async () => token(), { selectKey: () => esJwk }],
    ['unknown_key', async () => token(), { selectKey: () => Promise.reject(new Error('key store down')) }],
    ['bad_signature', async () => token({}, {}, strangerPrivate)],
    ['wrong_issuer', async () => token({ iss: 'https://op.example.org' })],
    ['wrong_issuer', async () => token({ iss: undefined })],
    ['wrong_audience', async () => token({ aud: 'someone-else' })],
    ['wrong_audience', async () => token({ aud: undefined })],
    ['iat_missing', async () => token({ iat: undefined })],
    ['iat_missing', async () => token({ iat: 'yesterday' })],
    ['iat_in_future', async () => token({ iat: NOW / 1000 + 31 })],
    ['exp_missing', async () => token({ exp: undefined })],
    ['expired', async () => token({ exp: NOW / 1000 - 30 })],
    // A clock that is no number refuses rather than accepts.
    ['iat_in_future', async () => token(), { nowMs: Number.NaN }],
    ['jti_missing', async () => token({ jti: undefined })],
    ['jti_missing', async () => token({ jti: '' })],
    ['events_invalid', async () => token({ events: undefined })],
    ['events_invalid', async () => token({ events: {} })],
    ['events_invalid', async () => token({ events: { [BACKCHANNEL_LOGOUT_EVENT]: true } })],
    ['events_invalid', async () => token({ events: [BACKCHANNEL_LOGOUT_EVENT] })],
    ['sub_sid_missing', async () => token({ sub: undefined, sid: undefined })],
    ['claim_invalid', async () => token({ sub: 7 })],
    ['claim_invalid', async () => token({ sid: '' })],
    ['nonce_present', async () => token({ nonce: 'n-0S6_WzA2Mj' })],
  ];

  it.each(cases)('%s', async (reason, make, over) => {
    const r = await validateLogoutToken(await make(), options(over));
    expect(r).toMatchObject({ ok: false, reason });
    if (!r.ok) expect(r.description).toMatch(/^[\x20\x21\x23-\x5b\x5d-\x7e]+$/);
  });
});

describe('revocationsForLogout (§2.7)', () => {
  const lt = (over: Partial<LogoutToken>): LogoutToken => ({ ok: true, issuer: 'corp', iss: ISS, iat: 100, jti: 'j', exp: 200, ...over });

  it('revokes the session when the OP names one, the subject otherwise; cutoff at the logout', () => {
    expect(revocationsForLogout(lt({ sub: 'alice', sid: 's1' }))).toEqual([{ issuer: 'corp', kind: 'sid', value: 's1', cutoffSec: 100 }]);
    expect(revocationsForLogout(lt({ sub: 'alice' }))).toEqual([{ issuer: 'corp', kind: 'sub', value: 'alice', cutoffSec: 100 }]);
    expect(revocationsForLogout(lt({ sid: 's1' }))).toEqual([{ issuer: 'corp', kind: 'sid', value: 's1', cutoffSec: 100 }]);
  });

  it('revokes the whole subject with scope subject (the session too when there is no sub)', () => {
    expect(revocationsForLogout(lt({ sub: 'alice', sid: 's1' }), 'subject')).toEqual([{ issuer: 'corp', kind: 'sub', value: 'alice', cutoffSec: 100 }]);
    expect(revocationsForLogout(lt({ sid: 's1' }), 'subject')).toEqual([{ issuer: 'corp', kind: 'sid', value: 's1', cutoffSec: 100 }]);
  });
});
