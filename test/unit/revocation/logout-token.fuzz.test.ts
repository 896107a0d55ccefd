/**
 * Logout-token validation on arbitrary input (property-based): whatever the back-channel
 * logout endpoint is sent, validation answers with a reason of its vocabulary and never
 * throws; and for signed tokens with arbitrary claims, it accepts exactly those a direct
 * reading of §2.6 accepts. A fixed seed in the normal run; FUZZ_RUNS and FUZZ_SEED run a
 * longer campaign.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { BACKCHANNEL_LOGOUT_EVENT, validateLogoutToken, type LogoutTokenOptions } from '../../../src/revocation/logout-token.js';

const RUNS = Number.parseInt(process.env['FUZZ_RUNS'] ?? '', 10) || 2000;
const SEED = process.env['FUZZ_SEED'] ? Number.parseInt(process.env['FUZZ_SEED'], 10) : 42;
const LIMIT_MS = Math.max(20_000, RUNS * 5);

const NOW_SEC = 1_800_000_000;
const ISS = 'https://op.example.com';
const REASONS = new Set([
  'too_large', 'malformed', 'wrong_typ', 'alg_not_allowed', 'unknown_key', 'bad_signature', 'wrong_issuer', 'wrong_audience', 'iat_missing',
  'iat_in_future', 'exp_missing', 'expired', 'jti_missing', 'events_invalid', 'sub_sid_missing', 'nonce_present', 'claim_invalid',
]);

let privateKey: CryptoKey;
let jwk: JWK;
beforeAll(async () => {
  const pair = await generateKeyPair('ES256', { extractable: true });
  privateKey = pair.privateKey;
  jwk = await exportJWK(pair.publicKey);
});

const options = (): LogoutTokenOptions => ({
  issuerName: 'corp', issuer: ISS, audiences: ['gateway'], algorithms: ['ES256'], selectKey: (alg, kid) => (alg === 'ES256' && kid === 'k1' ? jwk : undefined),
  nowMs: NOW_SEC * 1000, clockToleranceSec: 0,
});

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v) ?? 'null').toString('base64url');

describe('validateLogoutToken (property-based)', () => {
  it(
    'answers anything it is sent with a known reason, never throwing',
    async () => {
      const sent = fc.oneof(
        fc.string({ maxLength: 300 }),
        fc.anything(),
        fc.tuple(fc.jsonValue({ maxDepth: 3 }), fc.jsonValue({ maxDepth: 3 })).map(([h, p]) => `${b64(h)}.${b64(p)}.c2ln`),
        fc.jsonValue({ maxDepth: 3 }).map((p) => `${b64({ alg: 'ES256', kid: 'k1' })}.${b64(p)}.${'A'.repeat(86)}`),
      );
      await fc.assert(
        fc.asyncProperty(sent, async (t) => {
          const r = await validateLogoutToken(t, options());
          expect(r.ok).toBe(false);
          if (!r.ok) expect(REASONS.has(r.reason)).toBe(true);
        }),
        { seed: SEED, numRuns: RUNS },
      );
    },
    LIMIT_MS,
  );

  it(
    'accepts a signed token exactly when its claims satisfy §2.6',
    async () => {
      const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
      const claims = fc.record({
        iss: maybe(fc.constantFrom(ISS, 'https://evil.example.com')),
        aud: maybe(fc.constantFrom<unknown>('gateway', ['x', 'gateway'], 'x', [], 5)),
        iat: maybe(fc.constantFrom<unknown>(NOW_SEC - 10, NOW_SEC + 10, '1', NOW_SEC)),
        exp: maybe(fc.constantFrom<unknown>(NOW_SEC + 100, NOW_SEC, NOW_SEC - 1, null)),
        jti: maybe(fc.constantFrom<unknown>('j', '', 3)),
        sub: maybe(fc.constantFrom<unknown>('alice', '', 1)),
        sid: maybe(fc.constantFrom<unknown>('s1', '', {})),
        nonce: maybe(fc.constantFrom<unknown>('n')),
        events: maybe(fc.constantFrom<unknown>({ [BACKCHANNEL_LOGOUT_EVENT]: {} }, { [BACKCHANNEL_LOGOUT_EVENT]: [] }, {}, 'x')),
      });
      const typ = fc.constantFrom<string | undefined>(undefined, 'logout+jwt', 'JWT');
      await fc.assert(
        fc.asyncProperty(claims, typ, async (c, t) => {
          const body = Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined));
          const signed = await new SignJWT(body).setProtectedHeader({ alg: 'ES256', kid: 'k1', ...(t ? { typ: t } : {}) }).sign(privateKey);
          const str = (v: unknown) => typeof v === 'string' && v.length > 0;
          const aud = c.aud;
          const ev = c.events as Record<string, unknown> | undefined;
          const evValue = ev && typeof ev === 'object' ? ev[BACKCHANNEL_LOGOUT_EVENT] : undefined;
          const valid =
            t !== 'JWT' &&
            c.iss === ISS &&
            (aud === 'gateway' || (Array.isArray(aud) && aud.includes('gateway'))) &&
            typeof c.iat === 'number' &&
            c.iat <= NOW_SEC &&
            typeof c.exp === 'number' &&
            c.exp > NOW_SEC &&
            str(c.jti) &&
            typeof evValue === 'object' && evValue !== null && !Array.isArray(evValue) &&
            (c.sub !== undefined || c.sid !== undefined) &&
            (c.sub === undefined || str(c.sub)) &&
            (c.sid === undefined || str(c.sid)) &&
            c.nonce === undefined;
          const r = await validateLogoutToken(signed, options());
          expect(r.ok).toBe(valid);
        }),
        { seed: SEED, numRuns: Math.min(RUNS, 500) },
      );
    },
    LIMIT_MS,
  );
});
