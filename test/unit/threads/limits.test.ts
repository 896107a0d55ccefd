/**
 * Limits across front-end threads (src/threads/limits.ts): each thread's PortLimitStore
 * sends its counts to the main thread's LimitHub, as the real threads do over their
 * MessagePorts (here the exchange is a direct call into the same hub), and judges with
 * src/limits/shared.ts's limiters in between.
 */
import { describe, expect, it } from 'vitest';
import { createRateLimits } from '../../../src/limits/limits.js';
import { LimitHub, PortLimitStore } from '../../../src/threads/limits.js';
import type { SyncItem } from '../../../src/limits/shared.js';
import type { CompiledRateLimit, CompiledRouteRateLimit } from '../../../src/config/observe-schema.js';

function clock(start = 1_700_000_040_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

function config(over: Partial<CompiledRateLimit> = {}): CompiledRateLimit {
  return { maxKeys: 1000, ipv6Prefix: 64, address: null, subject: null, spraying: null, routes: new Map<string, CompiledRouteRateLimit>(), ...over };
}

/** Two threads' stores on one hub; blocks a thread publishes reach the other, as main.ts broadcasts them. */
function twoThreads(cfg: CompiledRateLimit, forward = false) {
  const c = clock();
  const hub = new LimitHub(c.now, forward);
  const stores: PortLimitStore[] = [];
  const make = (i: number) =>
    new PortLimitStore(
      3_600_000, // the test syncs by hand
      (items) => Promise.resolve(hub.add(items)),
      (key, until) => stores.forEach((s, j) => j !== i && s.received(key, until)),
      c.now,
    );
  stores.push(make(0), make(1));
  const blocks: string[] = [];
  const a = createRateLimits(cfg, { now: c.now, shared: stores[0], onSharedBlock: (k) => blocks.push(`a:${k}`) });
  const b = createRateLimits(cfg, { now: c.now, shared: stores[1], onSharedBlock: (k) => blocks.push(`b:${k}`) });
  const close = () => {
    stores.forEach((s) => s.close());
    hub.close();
  };
  return { c, hub, sa: stores[0]!, sb: stores[1]!, a, b, blocks, close };
}

describe('limits across threads', () => {
  it('count per process once both threads synced; a refused request is not counted', async () => {
    const t = twoThreads(config({ subject: { points: 3, windowMs: 60_000 } }));
    expect([t.a.checkSubject('r', 'corp', 'alice'), t.a.checkSubject('r', 'corp', 'alice')]).toEqual([0, 0]);
    await t.sa.sync();
    expect(t.b.checkSubject('r', 'corp', 'alice')).toBe(0);
    await t.sb.sync();
    // B knows A's two and its own one: 3 of 3; Retry-After runs to the end of the aligned window.
    t.c.advance(20_000);
    expect(t.b.checkSubject('r', 'corp', 'alice')).toBe(40);
    // A syncs only keys it counted on since: it knew 2, admits one more (the interval's slack), then knows.
    expect(t.a.checkSubject('r', 'corp', 'alice')).toBe(0);
    await t.sa.sync();
    expect(t.a.checkSubject('r', 'corp', 'alice')).toBe(40);
    // Another subject has its own count.
    expect(t.b.checkSubject('r', 'corp', 'bob')).toBe(0);
    t.close();
  });

  it('never admits more than points on one thread\'s own count, whatever the hub knows', () => {
    const t = twoThreads(config({ subject: { points: 5, windowMs: 60_000 } }));
    const a = Array.from({ length: 8 }, () => t.a.checkSubject('r', 'corp', 'carol'));
    const b = Array.from({ length: 8 }, () => t.b.checkSubject('r', 'corp', 'carol'));
    // Never synced: each thread alone stops at the limit; together at most threads × points.
    expect(a.filter((w) => w === 0)).toHaveLength(5);
    expect(b.filter((w) => w === 0)).toHaveLength(5);
    t.close();
  });

  it('carries a spraying block one thread begins to the other at once', () => {
    const t = twoThreads(config({ spraying: { invalidTokens: 2, windowMs: 60_000, blockMs: 900_000 } }));
    expect([t.a.invalidToken('10.0.0.9'), t.a.invalidToken('10.0.0.9'), t.a.invalidToken('10.0.0.9')]).toEqual([false, false, true]);
    expect(t.b.blocked('10.0.0.9')).toBe(900);
    expect(t.b.blocked('10.0.0.8')).toBe(0);
    t.close();
  });

  it('with a shared store (state.store: redis), hands the threads\' counts on and takes its totals back', () => {
    const c = clock();
    const hub = new LimitHub(c.now, true);
    const key = 'rl:subject:60000:1:k';
    const end = c.now() + 60_000;
    expect(hub.add([[key, 2, end]])).toEqual([2]);
    expect(hub.add([[key, 1, end]])).toEqual([3]);
    const out: SyncItem[] = [];
    hub.drain(c.now(), out);
    expect(out.map((i) => [i.storeKey, i.delta, i.expireAtMs])).toEqual([[key, 3, end]]);
    // Counted by the threads while the sync ran: 1 more; Redis answers 10 (other instances' 7 too).
    expect(hub.add([[key, 1, end]])).toEqual([4]);
    out[0]!.done(10);
    expect(hub.add([[key, 0, end]])).toEqual([11]);
    // A failed sync keeps its delta for the next.
    const again: SyncItem[] = [];
    hub.drain(c.now(), again);
    expect(again.map((i) => i.delta)).toEqual([1]);
    again[0]!.failed();
    const third: SyncItem[] = [];
    hub.drain(c.now(), third);
    expect(third.map((i) => i.delta)).toEqual([1]);
    // Without a shared store nothing is handed on.
    const alone = new LimitHub(c.now, false);
    alone.add([[key, 5, end]]);
    const none: SyncItem[] = [];
    alone.drain(c.now(), none);
    expect(none).toEqual([]);
    hub.close();
    alone.close();
  });
});
