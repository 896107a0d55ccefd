/**
 * Property-based test of sealPrincipal's value sharing (src/authz/claims.ts): a
 * principal that crossed a thread comes back with every value as it was, whichever
 * values and lists earlier principals left in the shared tables, and equal lists come
 * back as one copy while the bounded table of lists had room for them (a long campaign
 * fills it: after that, new lists are kept as they come, and only their values are
 * checked). A fixed seed in the normal run;
 * FUZZ_RUNS and FUZZ_SEED run a longer campaign (`npm run fuzz`).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sealPrincipal, SHARED_LIST_CHARS, SHARED_LISTS_MAX, type Principal } from '../../../src/authz/claims.js';

const RUNS = Number.parseInt(process.env['FUZZ_RUNS'] ?? '', 10) || 300;
const SEED = process.env['FUZZ_SEED'] ? Number.parseInt(process.env['FUZZ_SEED'], 10) : 42;

const BASE: Principal = {
  issuer: 'kc',
  iss: 'https://kc/realms/x',
  subject: 'a',
  exp: 1,
  amr: undefined,
  acr: undefined,
  authTime: undefined,
  roles: [],
  scopes: [],
  groups: [],
  sub: 'a',
  sid: undefined,
  jti: undefined,
  iat: undefined,
  cnfJkt: undefined,
  clientId: undefined,
};

describe('sealPrincipal (property-based)', () => {
  it('leaves every value as it was, for many principals sharing values and not', () => {
    // Shared short values, arbitrary short ones, and ones too long to be shared.
    const value = fc.oneof(fc.constantFrom('pwd', 'otp', 'openid', 'a', ''), fc.string({ unit: 'binary', maxLength: 8 }), fc.string({ minLength: 120, maxLength: 140 }));
    const list = fc.oneof(fc.constant(null), fc.array(value, { maxLength: 5 }));
    const principal = fc.record({
      issuer: value,
      iss: value,
      acr: fc.option(value, { nil: undefined }),
      clientId: fc.option(value, { nil: undefined }),
      roles: list,
      scopes: list,
      groups: list,
      amr: fc.option(fc.array(value, { maxLength: 3 }), { nil: undefined }),
    });
    // The model of the table of lists: which lists it took, in the order first sealed
    // (this file's module instance is the only one that seals, so the table starts empty).
    const admitted = new Set<string>();
    const isShared = (key: string): boolean => {
      if (key === '[]') return true; // one frozen empty list for all
      if (key.length > SHARED_LIST_CHARS) return false;
      if (!admitted.has(key) && admitted.size < SHARED_LISTS_MAX) admitted.add(key);
      return admitted.has(key);
    };
    fc.assert(
      fc.property(fc.array(principal, { maxLength: 40 }), (rows) => {
        const lists = new Map<string, readonly string[]>();
        for (const fields of rows) {
          const original: Principal = { ...BASE, ...fields };
          const copy = structuredClone(original);
          const back = sealPrincipal(copy);
          expect(back).toEqual(original);
          for (const v of [back, back.amr, back.roles, back.scopes, back.groups]) if (v) expect(Object.isFrozen(v)).toBe(true);
          // Equal lists are one copy, when the table took them.
          for (const list of [back.amr, back.roles, back.scopes, back.groups]) {
            if (!list) continue;
            const key = JSON.stringify(list);
            if (!isShared(key)) continue;
            const seen = lists.get(key);
            if (seen !== undefined) expect(list).toBe(seen);
            else lists.set(key, list);
          }
        }
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});
