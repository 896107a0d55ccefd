import { describe, expect, it } from 'vitest';
import { createRateLimits } from '../../../src/limits/limits.js';
import type { CompiledRateLimit, CompiledRouteRateLimit } from '../../../src/config/observe-schema.js';
import { SimRedis } from './store-sim.js';

/** A clock the test moves by hand, starting on a minute boundary (windows are aligned to the epoch). */
function clock(start = 1_700_000_040_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

function config(over: Partial<CompiledRateLimit> = {}): CompiledRateLimit {
  return { maxKeys: 1000, ipv6Prefix: 64, address: null, subject: null, spraying: null, routes: new Map<string, CompiledRouteRateLimit>(), ...over };
}

/** Two instances sharing one store stand-in, on one clock. */
function twoInstances(cfg: CompiledRateLimit) {
  const c = clock();
  const redis = new SimRedis();
  const sa = redis.store();
  const sb = redis.store();
  const blocksBegun: string[] = [];
  const a = createRateLimits(cfg, { now: c.now, shared: sa, onSharedBlock: (k) => blocksBegun.push(`a:${k}`) });
  const b = createRateLimits(cfg, { now: c.now, shared: sb, onSharedBlock: (k) => blocksBegun.push(`b:${k}`) });
  return { c, redis, sa, sb, a, b, blocksBegun };
}

describe('shared rate limits (state.store: redis)', () => {
  it('count across instances once both synced; a refused request is not counted', () => {
    const { c, redis, sa, sb, a, b } = twoInstances(config({ address: { points: 4, windowMs: 60_000 } }));
    expect([a.checkAddress('r', '10.0.0.1'), a.checkAddress('r', '10.0.0.1')]).toEqual([0, 0]);
    sa.sync(c.now());
    expect([...redis.totals]).toEqual([[`rl:address:60000:${Math.floor(c.now() / 60_000)}:10.0.0.1`, 2]]);
    expect([b.checkAddress('r', '10.0.0.1'), b.checkAddress('r', '10.0.0.1')]).toEqual([0, 0]);
    sb.sync(c.now());
    // B knows A's two: the limit of 4 is reached; Retry-After runs to the end of the aligned window.
    c.advance(15_000);
    expect(b.checkAddress('r', '10.0.0.1')).toBe(45);
    // A learned nothing since its own sync: one more on what it knows (the interval's slack), then it knows.
    expect(a.checkAddress('r', '10.0.0.1')).toBe(0);
    sa.sync(c.now());
    expect(a.checkAddress('r', '10.0.0.1')).toBe(45);
    sb.sync(c.now());
    sa.sync(c.now());
    expect([...redis.totals.values()]).toEqual([5]);
    // Another address has its own counter.
    expect(b.checkAddress('r', '10.0.0.2')).toBe(0);
  });

  it('start a new window at a multiple of its duration, the same for every instance', () => {
    const { c, sa, sb, a, b, redis } = twoInstances(config({ address: { points: 1, windowMs: 60_000 } }));
    expect(a.checkAddress('r', '10.0.0.1')).toBe(0);
    sa.sync(c.now());
    expect(b.checkAddress('r', '10.0.0.1')).toBe(0);
    sb.sync(c.now());
    c.advance(59_999);
    expect(b.checkAddress('r', '10.0.0.1')).toBe(1);
    c.advance(1);
    expect(b.checkAddress('r', '10.0.0.1')).toBe(0);
    expect(a.checkAddress('r', '10.0.0.1')).toBe(0); // a fresh window on A too, whatever A knew
    sa.sync(c.now());
    sb.sync(c.now());
    expect([...redis.totals.values()]).toEqual([2, 2]);
  });

  it('count locally while the store is away, never looser, and send the counts once it is back', () => {
    const { c, redis, sa, sb, a, b } = twoInstances(config({ subject: { points: 3, windowMs: 60_000 } }));
    expect(b.checkSubject('r', 'corp', 'alice')).toBe(0);
    sb.sync(c.now());
    redis.up = false;
    expect([a.checkSubject('r', 'corp', 'alice'), a.checkSubject('r', 'corp', 'alice'), a.checkSubject('r', 'corp', 'alice')]).toEqual([0, 0, 0]);
    sa.sync(c.now()); // fails: the three are kept
    expect(a.checkSubject('r', 'corp', 'alice')).toBeGreaterThan(0);
    redis.up = true;
    sa.sync(c.now());
    expect([...redis.totals.values()]).toEqual([4]);
    // The counts of a window that ended while the store was away are dropped, not sent into the next.
    redis.up = false;
    expect(b.checkSubject('r', 'corp', 'bob')).toBe(0);
    sb.sync(c.now());
    c.advance(60_000);
    redis.up = true;
    sb.sync(c.now());
    expect(redis.totals.size).toBe(1);
  });

  it('share spraying counts and blocks: a block begun on one holds on the other', () => {
    const { c, sa, sb, a, b, blocksBegun } = twoInstances(config({ spraying: { invalidTokens: 3, windowMs: 60_000, blockMs: 900_000 } }));
    // Two invalid tokens on each: neither crosses 3 alone; the sync's totals do.
    expect([a.invalidToken('10.0.0.9'), a.invalidToken('10.0.0.9'), b.invalidToken('10.0.0.9'), b.invalidToken('10.0.0.9')]).toEqual([false, false, false, false]);
    expect(a.blocked('10.0.0.9')).toBe(0);
    sa.sync(c.now());
    sb.sync(c.now()); // B reads back 4 > 3: B begins the block and publishes it
    expect(blocksBegun).toEqual(['b:10.0.0.9']);
    expect(sb.published).toEqual([{ key: '10.0.0.9', untilMs: c.now() + 900_000 }]);
    expect(b.blocked('10.0.0.9')).toBe(900);
    expect(a.blocked('10.0.0.9')).toBe(900);
    expect(a.admitVerification('10.0.0.9')).toBe(900);
    // The block outlives the window it began in, on both.
    c.advance(120_000);
    expect(a.blocked('10.0.0.9')).toBe(780);
    expect(b.blocked('10.0.0.9')).toBe(780);
    c.advance(780_000);
    expect([a.blocked('10.0.0.9'), b.blocked('10.0.0.9')]).toEqual([0, 0]);
    sa.sync(c.now());
    expect(blocksBegun).toEqual(['b:10.0.0.9']); // A's sync of a new window began nothing
  });

  it('count unsettled verifications on the instance that runs them, with the shared count', () => {
    const { c, sa, a, b, sb } = twoInstances(config({ spraying: { invalidTokens: 2, windowMs: 60_000, blockMs: 60_000 } }));
    expect(b.invalidToken('10.0.0.7')).toBe(false);
    expect(b.invalidToken('10.0.0.7')).toBe(false);
    sb.sync(c.now());
    expect(a.admitVerification('10.0.0.7')).toBe(0); // A has not synced this address: it knows none of B's
    sa.sync(c.now());
    // A's sync sent nothing for this address, so it still knows none: 2 + 1 pending ≥ 3 is B's alone.
    expect(a.admitVerification('10.0.0.7')).toBe(0);
    expect(a.admitVerification('10.0.0.7')).toBe(0);
    expect(a.admitVerification('10.0.0.7')).toBe(1);
    expect(a.settleVerification('10.0.0.7', true)).toBe(false);
    sa.sync(c.now()); // 3 in all, over 2: A begins the block from the totals
    expect(a.blocked('10.0.0.7')).toBe(60);
  });

  it('keep the counters of unchanged limiters across a reload and sync only the limiters in force', () => {
    const { c, redis, sa, a } = twoInstances(config({ address: { points: 2, windowMs: 60_000 }, subject: { points: 5, windowMs: 60_000 } }));
    expect(sa.sources.size).toBe(2);
    a.checkAddress('r', '10.0.0.1');
    a.checkAddress('r', '10.0.0.1');
    const changes = a.reconfigure(config({ address: { points: 2, windowMs: 60_000 }, subject: { points: 9, windowMs: 60_000 } }));
    expect(changes).toEqual({ kept: ['address'], reset: ['subject'], removed: [] });
    expect(sa.sources.size).toBe(2);
    expect(a.checkAddress('r', '10.0.0.1')).toBeGreaterThan(0);
    a.reconfigure(config());
    expect(sa.sources.size).toBe(0);
    sa.sync(c.now());
    expect(redis.totals.size).toBe(0); // a removed limiter's counts are not sent
  });
});
