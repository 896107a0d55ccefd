/**
 * DPoP proof parsing on arbitrary input (property-based): whatever a `DPoP` header holds,
 * the verifier answers with a reason from its vocabulary and never throws; a proof with
 * any one character changed never verifies; URI normalization never throws and is
 * idempotent. A fixed seed in the normal run; FUZZ_RUNS and FUZZ_SEED run a longer campaign.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { accessTokenHash, normalizeHtu, proofFailure, verifyProof, type ProofInput, type ProofFailureReason } from '../../../src/dpop/proof.js';
import { decodeCompact } from '../../../src/jwt/compact.js';

const RUNS = Number.parseInt(process.env['FUZZ_RUNS'] ?? '', 10) || 2000;
const SEED = process.env['FUZZ_SEED'] ? Number.parseInt(process.env['FUZZ_SEED'], 10) : 42;
const run = (runs = RUNS) => ({ seed: SEED, numRuns: runs });
const LIMIT_MS = Math.max(20_000, RUNS * 5);

const NOW = 1_800_000_000_000;
const HTU = 'https://api.example.com/orders';
const TOKEN = 'access-token-0123456789';
const REASONS = new Set<ProofFailureReason>([
  'proof_missing', 'multiple_proofs', 'too_large', 'malformed', 'wrong_typ', 'alg_not_allowed', 'bad_jwk', 'private_key', 'jkt_mismatch',
  'htm_mismatch', 'htu_mismatch', 'iat_invalid', 'iat_out_of_window', 'jti_missing', 'jti_too_long', 'ath_missing', 'ath_mismatch',
  'nonce_missing', 'nonce_invalid', 'bad_signature', 'replayed',
]);

let privateKey: CryptoKey;
let jwk: JWK;
let jkt: string;
let good: string;
beforeAll(async () => {
  const pair = await generateKeyPair('ES256', { extractable: true });
  privateKey = pair.privateKey;
  jwk = await exportJWK(pair.publicKey);
  jkt = await calculateJwkThumbprint(jwk, 'sha256');
  good = await new SignJWT({ htm: 'GET', htu: HTU, iat: NOW / 1000, jti: 'j-1', ath: accessTokenHash(TOKEN) })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
    .sign(privateKey);
});

const input = (proof: ProofInput['proof']): ProofInput => ({
  proof, method: 'GET', htu: HTU, accessToken: TOKEN, expectedJkt: jkt, algorithms: ['ES256', 'EdDSA'], iatWindowSec: 30, nowMs: NOW,
});

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v) ?? 'null').toString('base64url');

/** Header values: arbitrary text, JWS-shaped text of arbitrary JSON, and proofs with the real key in arbitrary headers. */
const headerValue = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.string({ unit: fc.constantFrom('a', 'Z', '0', '-', '_', '.', '=', '+', '/', ',', ' '), maxLength: 200 }),
  fc.tuple(fc.jsonValue({ maxDepth: 3 }), fc.jsonValue({ maxDepth: 3 }), fc.string({ maxLength: 90 })).map(([h, p, s]) => `${b64(h)}.${b64(p)}.${b64(s)}`),
  fc
    .record({
      typ: fc.constantFrom('dpop+jwt', 'application/dpop+jwt', 'JWT', 7),
      alg: fc.constantFrom('ES256', 'none', 'HS256', 'RS256', 'EdDSA'),
      jwk: fc.oneof(fc.constant<unknown>(undefined), fc.jsonValue({ maxDepth: 2 }), fc.constant<unknown>({ kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA' })),
    })
    .chain((h) => fc.tuple(fc.constant(h), fc.dictionary(fc.constantFrom('htm', 'htu', 'iat', 'jti', 'ath', 'nonce'), fc.jsonValue({ maxDepth: 1 }))))
    .map(([h, p]) => `${b64(h)}.${b64(p)}.${b64('sig')}`),
);

describe('verifyProof (property-based)', () => {
  it(
    'answers every header value, or list of them, with a known reason and never throws',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.oneof(headerValue, fc.array(headerValue, { maxLength: 3 }), fc.constant(undefined)), async (proof) => {
          const r = await verifyProof(input(proof));
          expect(r.ok).toBe(false);
          if (!r.ok) {
            expect(REASONS.has(r.reason)).toBe(true);
            expect(r).toBe(proofFailure(r.reason));
          }
        }),
        run(),
      );
    },
    LIMIT_MS,
  );

  it(
    'never accepts the good proof with any one character changed, added or removed',
    async () => {
      expect((await verifyProof(input(good))).ok).toBe(true);
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ';
      await fc.assert(
        fc.asyncProperty(fc.nat(), fc.constantFrom(...alphabet), fc.constantFrom('replace', 'insert', 'delete'), async (at, ch, op) => {
          const i = at % good.length;
          const changed =
            op === 'replace' ? `${good.slice(0, i)}${ch}${good.slice(i + 1)}` : op === 'insert' ? `${good.slice(0, i)}${ch}${good.slice(i)}` : `${good.slice(0, i)}${good.slice(i + 1)}`;
          fc.pre(changed.trim() !== good);
          const r = await verifyProof(input(changed));
          expect(r.ok).toBe(false);
        }),
        run(Math.min(RUNS, 1000)),
      );
    },
    LIMIT_MS,
  );
});

describe('normalizeHtu and decodeCompact (property-based)', () => {
  it('never throw; normalization is idempotent and drops query and fragment', () => {
    const uri = fc.oneof(fc.webUrl({ withQueryParameters: true, withFragments: true }), fc.string({ maxLength: 80 }), fc.string({ maxLength: 40 }).map((s) => `https://Example.com/${s}`));
    fc.assert(
      fc.property(uri, (u) => {
        const n = normalizeHtu(u);
        if (n !== null) {
          expect(normalizeHtu(n)).toBe(n);
          expect(n).not.toMatch(/[?#]/);
        }
        const d = decodeCompact(u, 8192);
        expect(typeof d === 'string' || (typeof d.header === 'object' && typeof d.payload === 'object')).toBe(true);
      }),
      run(),
    );
  });
});
