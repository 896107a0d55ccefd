/**
 * A stand-in for Redis in the shared limits' unit tests: one table of window totals that
 * every instance's store adds to (Redis's INCRBY), and spraying blocks delivered to every
 * other instance (Redis pub/sub). Each instance syncs when the test says so, as
 * src/state/counters.ts does on its interval. The integration tests run the real thing
 * against redis-server (test/integration/state/).
 */
import type { SharedLimitStore, SyncItem, SyncSource } from '../../../src/limits/shared.js';

export class SimRedis {
  readonly totals = new Map<string, number>();
  readonly instances: SimStore[] = [];
  /** While false, every sync fails (an outage) and blocks are not delivered. */
  up = true;

  store(): SimStore {
    const s = new SimStore(this);
    this.instances.push(s);
    return s;
  }
}

export class SimStore implements SharedLimitStore {
  readonly sources = new Set<SyncSource>();
  readonly listeners: ((key: string, untilMs: number) => void)[] = [];
  published: { key: string; untilMs: number }[] = [];

  constructor(private readonly redis: SimRedis) {}

  register(source: SyncSource): void {
    this.sources.add(source);
  }

  unregister(source: SyncSource): void {
    this.sources.delete(source);
  }

  publishBlock(key: string, untilMs: number): void {
    this.published.push({ key, untilMs });
    if (!this.redis.up) return;
    for (const other of this.redis.instances) if (other !== this) for (const l of other.listeners) l(key, untilMs);
  }

  onBlock(listener: (key: string, untilMs: number) => void): void {
    this.listeners.push(listener);
  }

  /** One sync at `now`: every delta added to its total, the totals read back (or all kept, while down). */
  sync(now: number): void {
    const items: SyncItem[] = [];
    for (const s of this.sources) s.drain(now, items);
    for (const it of items) {
      if (!this.redis.up) {
        it.failed();
        continue;
      }
      const total = (this.redis.totals.get(it.storeKey) ?? 0) + it.delta;
      this.redis.totals.set(it.storeKey, total);
      it.done(total);
    }
  }
}
