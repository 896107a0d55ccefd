/**
 * Rate limits and the spraying guard across front-end threads (README "Threads"): each
 * thread judges synchronously with src/limits/shared.ts's limiters, as instances do
 * (README "Running several instances"), and every `state.syncInterval` sends the counts
 * it made to the main thread's hub, which adds them to the process's total per key and
 * window and answers the totals. A spraying block one thread begins reaches the others
 * through the hub at once.
 */
import type { SharedLimitStore, SyncItem, SyncSource } from '../limits/shared.js';
import type { SyncTriple } from './protocol.js';

/** The thread side: a SharedLimitStore whose store is the main thread's hub. */
export class PortLimitStore implements SharedLimitStore {
  private readonly sources = new Set<SyncSource>();
  private readonly listeners: ((key: string, untilMs: number) => void)[] = [];
  private readonly timer: NodeJS.Timeout;
  private running = false;

  constructor(
    intervalMs: number,
    /** Sends the counts; resolves with the totals in the same order, or null (the counts are sent again). */
    private readonly exchange: (items: SyncTriple[]) => Promise<readonly number[] | null>,
    private readonly publish: (key: string, untilMs: number) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.timer = setInterval(() => void this.sync(), intervalMs);
    this.timer.unref();
  }

  register(source: SyncSource): void {
    this.sources.add(source);
  }

  unregister(source: SyncSource): void {
    this.sources.delete(source);
  }

  publishBlock(key: string, untilMs: number): void {
    this.publish(key, untilMs);
  }

  onBlock(listener: (key: string, untilMs: number) => void): void {
    this.listeners.push(listener);
  }

  /** A block another thread (or, with Redis, another instance) began. */
  received(key: string, untilMs: number): void {
    for (const l of this.listeners) l(key, untilMs);
  }

  /** One round: the counts since the last one to the hub, the totals back. One at a time. */
  async sync(): Promise<void> {
    if (this.running) return;
    const items: SyncItem[] = [];
    for (const s of this.sources) s.drain(this.now(), items);
    if (items.length === 0) return;
    this.running = true;
    try {
      const totals = await this.exchange(items.map((it) => [it.storeKey, it.delta, it.expireAtMs] as const));
      if (totals === null) for (const it of items) it.failed();
      else items.forEach((it, i) => it.done(totals[i] ?? 0));
    } finally {
      this.running = false;
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}

interface Total {
  total: number;
  /** Added since the last sync with the shared store (Redis), when there is one. */
  unsynced: number;
  readonly expireAtMs: number;
}

/**
 * The main thread's hub: the process's total per store key (limiter, window, key). With
 * `state.store: redis` it is one more source of the instance's CounterSync: the threads'
 * counts go on to Redis with the instance's, and the totals Redis answers come back to
 * the threads at their next sync.
 */
export class LimitHub implements SyncSource {
  private readonly totals = new Map<string, Total>();
  private readonly dirty = new Set<string>();
  private readonly sweep: NodeJS.Timeout;

  constructor(
    private readonly now: () => number = Date.now,
    /** True when the counts also go to a shared store (then `drain` hands them over). */
    private readonly forward = false,
  ) {
    // Windows that are over are forgotten: the map holds the running windows' keys only.
    this.sweep = setInterval(() => {
      const t = this.now();
      for (const [k, v] of this.totals) if (v.expireAtMs <= t) this.totals.delete(k);
    }, 5000);
    this.sweep.unref();
  }

  /** A thread's counts: added, and the totals answered in the same order. */
  add(items: readonly SyncTriple[]): number[] {
    return items.map(([key, delta, expireAtMs]) => {
      let t = this.totals.get(key);
      if (t === undefined) this.totals.set(key, (t = { total: 0, unsynced: 0, expireAtMs }));
      t.total += delta;
      if (this.forward) {
        t.unsynced += delta;
        this.dirty.add(key);
      }
      return t.total;
    });
  }

  drain(now: number, out: SyncItem[]): void {
    for (const key of this.dirty) {
      const t = this.totals.get(key);
      if (t === undefined || t.unsynced === 0 || t.expireAtMs <= now) continue;
      const delta = t.unsynced;
      t.unsynced = 0;
      out.push({
        storeKey: key,
        delta,
        expireAtMs: t.expireAtMs,
        // The store's total holds this delta and the other instances' counts; what the threads added since comes on top.
        done: (total) => {
          t.total = Math.max(t.total, total + t.unsynced);
        },
        failed: () => {
          t.unsynced += delta;
          this.dirty.add(key);
        },
      });
    }
    this.dirty.clear();
  }

  close(): void {
    clearInterval(this.sweep);
  }
}
