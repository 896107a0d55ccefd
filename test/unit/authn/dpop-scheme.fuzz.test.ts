/**
 * Property-based tests of the token lifecycle's parsing of untrusted input: the
 * `DPoP` authorization scheme (RFC 9449 §7.1) is read exactly as `Bearer` is, and a
 * token's `cnf` (RFC 7800 §3.1) yields a principal only when it binds to a DPoP key
 * alone. A fixed seed in the normal run; FUZZ_RUNS and FUZZ_SEED run a longer campaign.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bearerCandidate, dpopCandidate } from '../../../src/authn/extract.js';
import { parseClaimPath, principalFrom } from '../../../src/authz/claims.js';

const RUNS = Number.parseInt(process.env['FUZZ_RUNS'] ?? '', 10) || 2000;
const SEED = process.env['FUZZ_SEED'] ? Number.parseInt(process.env['FUZZ_SEED'], 10) : 42;
const run = { seed: SEED, numRuns: RUNS };
const LIMIT_MS = Math.max(15_000, RUNS * 3);

/** Each letter of a scheme name in either case (RFC 9110 §11.1: schemes are case-insensitive). */
const anyCase = (word: string) => fc.tuple(...[...word].map((c) => fc.constantFrom(c.toLowerCase(), c.toUpperCase()))).map((cs) => cs.join(''));
const ows = fc.stringMatching(/^[ \t]{0,3}$/);
/** What follows the scheme: mostly token-like, with spaces, tabs, commas and the odd other character. */
const rest = fc.oneof(fc.stringMatching(/^[ \tA-Za-z0-9._~+/=,-]{0,40}$/), fc.string({ maxLength: 40 }));

describe('the DPoP scheme', () => {
  it('is read exactly as Bearer: the same token, the same refusals, whatever follows the scheme', () => {
    fc.assert(
      fc.property(ows, anyCase('dpop'), anyCase('bearer'), rest, fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 60 }), (lead, dpop, bearer, after, count, max) => {
        const viaDpop = dpopCandidate(`${lead}${dpop}${after}`, count, max);
        expect(viaDpop).toEqual(bearerCandidate(`${lead}${bearer}${after}`, count, max));
        // Neither scheme ever reads the other's header.
        expect(bearerCandidate(`${lead}${dpop}${after}`, count, max).kind === 'token').toBe(false);
      }),
      run,
    );
  }, LIMIT_MS);
});

const issuer = { name: 'corp', claims: { subject: parseClaimPath('sub'), roles: parseClaimPath('roles'), scopes: parseClaimPath('scope'), groups: parseClaimPath('groups') } };
const member = fc.oneof(fc.constantFrom('jkt', 'x5t#S256', 'jwk', 'kid', 'jku'), fc.string({ maxLength: 8 }));

describe('a token bound by cnf', () => {
  it('yields a principal only when cnf binds it to a DPoP key alone (jkt), and then carries that key', () => {
    fc.assert(
      fc.property(fc.oneof(fc.dictionary(member, fc.jsonValue(), { maxKeys: 3 }), fc.jsonValue()), (cnf) => {
        const p = principalFrom({ iss: 'https://idp', sub: 'alice', exp: 2e9, cnf }, issuer);
        const keys = cnf !== null && typeof cnf === 'object' && !Array.isArray(cnf) ? Object.keys(cnf) : null;
        const jkt = keys !== null ? (cnf as Record<string, unknown>)['jkt'] : undefined;
        if (keys !== null && keys.length === 1 && keys[0] === 'jkt' && typeof jkt === 'string' && jkt !== '') {
          expect(typeof p === 'object' && p.cnfJkt).toBe(jkt);
        } else if (keys !== null && keys.some((k) => k !== 'jkt')) {
          expect(p).toBe('binding_unsupported');
        } else {
          expect(p).toBe('claim_invalid');
        }
      }),
      run,
    );
  }, LIMIT_MS);
});
