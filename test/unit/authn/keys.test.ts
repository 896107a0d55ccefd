import { describe, expect, it } from 'vitest';
import { keyFits, type StoredKey } from '../../../src/authn/jwks.js';
import { tokenFailure } from '../../../src/authn/failures.js';

const key = (kty: StoredKey['kty'], crv?: string, alg?: string): StoredKey => ({ jwk: { kty }, kid: 'k', kty, crv, alg, id: 'x' });
const rsa = key('RSA');
const p256 = key('EC', 'P-256');
const p384 = key('EC', 'P-384');
const p521 = key('EC', 'P-521');
const ed = key('OKP', 'Ed25519');

describe('keyFits: the key type must match the algorithm (RFC 8725 §3.1)', () => {
  const cases: ReadonlyArray<readonly [string, StoredKey, string, boolean]> = [
    ['RSA / RS256', rsa, 'RS256', true],
    ['RSA / RS512', rsa, 'RS512', true],
    ['RSA / PS256', rsa, 'PS256', true],
    ['RSA / PS384', rsa, 'PS384', true],
    ['RSA / ES256', rsa, 'ES256', false],
    ['RSA / HS256', rsa, 'HS256', false],
    ['RSA / none', rsa, 'none', false],
    ['RSA / EdDSA', rsa, 'EdDSA', false],
    ['P-256 / ES256', p256, 'ES256', true],
    ['P-256 / ES384 (wrong curve)', p256, 'ES384', false],
    ['P-384 / ES384', p384, 'ES384', true],
    ['P-521 / ES512', p521, 'ES512', true],
    ['P-256 / RS256', p256, 'RS256', false],
    ['P-256 / HS256', p256, 'HS256', false],
    ['Ed25519 / EdDSA', ed, 'EdDSA', true],
    ['Ed25519 / Ed25519', ed, 'Ed25519', true],
    ['Ed25519 / ES256', ed, 'ES256', false],
    ['X25519 / EdDSA', key('OKP', 'X25519'), 'EdDSA', false],
    // RFC 7517 §4.4: a JWK that names its alg is used for that alg only.
    ['RSA alg=PS256 / RS256', key('RSA', undefined, 'PS256'), 'RS256', false],
    ['RSA alg=RS256 / RS256', key('RSA', undefined, 'RS256'), 'RS256', true],
    ['Ed25519 alg=EdDSA / Ed25519', key('OKP', 'Ed25519', 'EdDSA'), 'Ed25519', true],
    ['RSA alg=HS256 / HS256', key('RSA', undefined, 'HS256'), 'HS256', false],
  ];
  for (const [name, k, alg, fits] of cases) {
    it(`${name} → ${fits}`, () => expect(keyFits(k, alg)).toBe(fits));
  }
});

describe('failure vocabulary', () => {
  it('maps reasons to codes: 503 ones apart, everything else invalid_token', () => {
    expect(tokenFailure('overloaded')).toMatchObject({ ok: false, code: 'overloaded', description: 'token verification overloaded' });
    expect(tokenFailure('verifier_unavailable')).toMatchObject({ ok: false, code: 'verifier_unavailable' });
    expect(tokenFailure('expired')).toEqual({ ok: false, code: 'invalid_token', reason: 'expired', description: 'token expired' });
    expect(tokenFailure('bad_signature').description).toBe('signature invalid');
    expect(tokenFailure('unknown_kid').description).toBe('unknown signing key');
  });

  it('answers with one shared frozen object per reason', () => {
    expect(tokenFailure('malformed')).toBe(tokenFailure('malformed'));
    expect(Object.isFrozen(tokenFailure('malformed'))).toBe(true);
  });
});
