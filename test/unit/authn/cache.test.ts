/**
 * The token cache on its own (src/authn/cache.ts), on an injected clock: its deadlines
 * to the millisecond, across a resize, and what a hit hands out.
 */
import { describe, expect, it } from 'vitest';
import { TokenCache, tokenIndex } from '../../../src/authn/cache.js';
import { principalFrom, parseClaimPath, type Principal } from '../../../src/authz/claims.js';

const issuer = { name: 'corp', claims: { subject: parseClaimPath('sub'), roles: parseClaimPath('roles'), scopes: parseClaimPath('scope'), groups: parseClaimPath('groups') } };
const T0 = 1_800_000_000_000; // ms: far from 0, as Date.now() is
const limits = { max: 100, maxTtlMs: 60_000, negativeMax: 10, negativeTtlMs: 1_000 };

function principal(expSec: number): Principal {
  const p = principalFrom({ iss: 'https://idp', sub: 'alice', exp: expSec, amr: ['pwd', 'otp'] }, issuer);
  if (typeof p === 'string') throw new Error(p);
  return p;
}

/** A token-shaped string: `head.body.` then a 43-character tail (the index). */
const token = (body: string, tail = 'S'.repeat(43)) => `eyJhbGciOiJSUzI1NiJ9.${body}.${tail}`;

describe('TokenCache', () => {
  it('keeps a token until min(exp, cached at + maxTtl), to the millisecond', () => {
    const clock = { t: T0 };
    const cache = new TokenCache(limits, () => clock.t);
    clock.t = T0 + 5_000;
    const farExp = principal((T0 + 3_600_000) / 1000);
    const t1 = token('far');
    cache.accept(t1, farExp, 0);
    clock.t = T0 + 5_000 + 60_000;
    expect(cache.lookup(t1)?.ok).toBe(true);
    clock.t += 1;
    expect(cache.lookup(t1)).toBeUndefined(); // past maxTtl: verify again
    expect(cache.size).toBe(0);
  });

  it('answers expired from exp + clockTolerance on, and stale (a miss) at exp inside the tolerance', () => {
    const clock = { t: T0 };
    const cache = new TokenCache(limits, () => clock.t);
    const t1 = token('soon');
    cache.accept(t1, principal(T0 / 1000 + 10), 5);
    clock.t = T0 + 10_000;
    expect(cache.lookup(t1)?.ok).toBe(true);
    clock.t = T0 + 10_001; // past exp, inside the tolerance: a miss, verify again
    expect(cache.lookup(t1)).toBeUndefined();
    cache.accept(t1, principal(T0 / 1000 + 10), 5); // inside the tolerance: answered, not cached
    expect(cache.lookup(t1)).toBeUndefined();
    const t2 = token('two');
    clock.t = T0;
    cache.accept(t2, principal(T0 / 1000 + 10), 5);
    clock.t = T0 + 15_000;
    expect(cache.lookup(t2)).toMatchObject({ ok: false, reason: 'expired' });
  });

  it('a resize keeps every deadline exactly, however long after the first cache was made', () => {
    const clock = { t: T0 };
    const first = new TokenCache(limits, () => clock.t);
    clock.t = T0 + 7_000;
    const t1 = token('kept');
    first.accept(t1, principal((T0 + 3_600_000) / 1000), 0);
    clock.t = T0 + 20_000;
    const next = first.withLimits({ ...limits, max: 50 });
    clock.t = T0 + 7_000 + 60_000;
    expect(next.lookup(t1)?.ok).toBe(true);
    clock.t += 1;
    expect(next.lookup(t1)).toBeUndefined();
  });

  it('finds an entry by its tail but answers only the very token: another with the same tail misses', () => {
    const cache = new TokenCache(limits, () => T0);
    const t1 = token('one');
    cache.accept(t1, principal(T0 / 1000 + 600), 0);
    expect(tokenIndex(t1)).toBe(tokenIndex(token('two')));
    expect(cache.lookup(token('two'))).toBeUndefined();
    expect(cache.lookup(t1)?.ok).toBe(true);
    // The presented token may be a slice of a longer text (the Authorization header).
    expect(cache.lookup(`Bearer ${t1}`.slice(7))?.ok).toBe(true);
  });

  it('keeps a token outside latin1 as it came (the kept copy must equal it), so it still hits', () => {
    const cache = new TokenCache(limits, () => T0);
    const odd = token('€uro');
    cache.accept(odd, principal(T0 / 1000 + 600), 0);
    expect(cache.lookup(odd)?.ok).toBe(true);
  });

  it('a hit carries the principal and never the token: not in JSON, not in a clone to another thread', () => {
    const cache = new TokenCache(limits, () => T0);
    const t1 = token('secret-body');
    const p = principal(T0 / 1000 + 600);
    cache.accept(t1, p, 0);
    const hit = cache.lookup(t1)!;
    expect(hit.ok && hit.principal).toBe(p);
    expect(JSON.stringify(hit)).not.toContain('secret-body');
    expect(JSON.stringify(structuredClone(hit))).not.toContain('secret-body');
    expect(Object.isFrozen(hit)).toBe(true);
  });
});
