import { LRUCache } from 'lru-cache';
import type { RateRule } from '../config/observe-schema.js';
import { retryAfter } from './retry-after.js';

/**
 * Rate limits and the spraying guard shared by several gateway instances (README
 * "Running several instances"), Kong's `sync_rate` approach: every request is counted
 * and judged locally, synchronously, as with one instance; what this instance counted is
 * sent to the shared store every `state.syncInterval` (src/state/counters.ts adds it to
 * the window's total and reads the total back), and a request is judged on this
 * instance's own count plus the last total it learned of the others'.
 *
 * Windows are fixed windows aligned to multiples of their duration since the epoch, so
 * every instance agrees, without asking, which window a request falls in and which
 * shared counter it adds to. The slack: another instance's requests count here only once
 * both have synced, so within one interval each instance can admit what its own count
 * and its last known total allow.
 */

/** Counts of one key in one window, as this instance knows them. */
export class SharedCount {
  /** Requests (or invalid tokens) counted here in this window. */
  own = 0;
  /** Of `own`, not yet sent to the store. */
  unsynced = 0;
  /** Of `own`, added to the store's total. */
  sent = 0;
  /** The other instances' count, from the last total read back (total − sent). */
  others = 0;
  constructor(
    readonly key: string,
    readonly window: number,
  ) {}
}

/** One count to add to the shared store: its key there, the delta, when its window ends. */
export interface SyncItem {
  readonly storeKey: string;
  readonly delta: number;
  readonly expireAtMs: number;
  /** The store added `delta` and answered the window's total. */
  done(total: number): void;
  /** The store could not be reached: the delta is sent with the next sync. */
  failed(): void;
}

/** A limiter whose counts the sync sends (src/state/counters.ts calls `drain` every interval). */
export interface SyncSource {
  /** Appends the counts made since the last drain; the source forgets them as unsynced. */
  drain(now: number, out: SyncItem[]): void;
}

/**
 * The shared store as the limits see it (src/state/counters.ts implements it on Redis):
 * where their counts go, and how spraying blocks reach every instance.
 */
export interface SharedLimitStore {
  register(source: SyncSource): void;
  unregister(source: SyncSource): void;
  /** A block this instance began, for every other instance. */
  publishBlock(key: string, untilMs: number): void;
  /** Blocks other instances began (and those held by the store when it is reached again). */
  onBlock(listener: (key: string, untilMs: number) => void): void;
}

/** Counts keyed by limiter key, one window each, bounded to `max` keys. */
class SharedCounts<C extends SharedCount> implements SyncSource {
  readonly entries: LRUCache<string, C>;
  /** Counts with something unsynced, in the order first counted. */
  private dirty = new Set<C>();

  constructor(
    /** The store key's stem: `rl:<limiter>:<window ms>` or `spray:<window ms>`. */
    private readonly stem: string,
    readonly windowMs: number,
    max: number,
    private readonly make: (key: string, window: number) => C,
  ) {
    this.entries = new LRUCache<string, C>({ max });
  }

  /** The count of `key` in the window of `now` (a new one when the window moved on). */
  current(key: string, now: number): C {
    const window = Math.floor(now / this.windowMs);
    let c = this.entries.get(key);
    if (c === undefined || c.window !== window) {
      c = this.make(key, window);
      this.entries.set(key, c);
    }
    return c;
  }

  count(c: C): void {
    c.own++;
    if (c.unsynced++ === 0) this.dirty.add(c);
  }

  drain(now: number, out: SyncItem[]): void {
    if (this.dirty.size === 0) return;
    const dirty = this.dirty;
    this.dirty = new Set();
    const window = Math.floor(now / this.windowMs);
    for (const c of dirty) {
      // A window that is over counts for nothing any more: its deltas are dropped.
      if (c.window !== window || c.unsynced === 0) continue;
      const delta = c.unsynced;
      c.unsynced = 0;
      out.push({
        storeKey: `${this.stem}:${c.window}:${c.key}`,
        delta,
        // The counter outlives its window a little, for instances whose clocks lag (NTP keeps them within ms).
        expireAtMs: (c.window + 1) * this.windowMs + 1000,
        done: (total) => {
          c.sent += delta;
          c.others = Math.max(0, total - c.sent);
          this.settled(c);
        },
        failed: () => {
          c.unsynced += delta;
          this.dirty.add(c);
        },
      });
    }
  }

  /** After a total was read back (the spraying guard may begin a block from it). */
  protected settled(_c: C): void {}
}

/** `points` requests per aligned window, counted with every instance's. Implements limits.ts's Limiter. */
export class SharedWindowLimiter {
  private readonly counts: SharedCounts<SharedCount>;

  constructor(
    name: string,
    private readonly rule: RateRule,
    max: number,
    private readonly now: () => number,
  ) {
    this.counts = new SharedCounts(`rl:${name}:${rule.windowMs}`, rule.windowMs, max, (k, w) => new SharedCount(k, w));
  }

  get source(): SyncSource {
    return this.counts;
  }

  /** 0 = allowed (and counted), else Retry-After seconds (until the window ends). A refused request is not counted. */
  hit(key: string): number {
    const now = this.now();
    const c = this.counts.current(key, now);
    if (c.own + c.others >= this.rule.points) return retryAfter((c.window + 1) * this.rule.windowMs - now);
    this.counts.count(c);
    return 0;
  }

  get size(): number {
    return this.counts.entries.size;
  }
}

class SprayCount extends SharedCount {
  /** Verifications admitted and not settled yet (local: they cost this instance's workers). */
  pending = 0;
  /** Blocked until then (ms since the epoch); 0: not blocked. */
  blockedUntil = 0;
}

/**
 * The spraying guard (./spraying.ts) with its invalid-token counts and its blocks shared:
 * an address over `invalidTokens` in an aligned window, counted by all instances
 * together, is blocked for `blockMs` on every instance. The instance that sees the total
 * cross the limit (on a request, or in a sync's answer) begins the block, logs it and
 * publishes it; the others take it as it arrives.
 */
export class SharedSprayGuard {
  private readonly counts: SprayCounts;

  constructor(
    private readonly invalidTokens: number,
    windowMs: number,
    private readonly blockMs: number,
    max: number,
    private readonly now: () => number,
    private readonly store: SharedLimitStore,
    /** A block this instance began from a sync's total (one began on a request is the caller's to report). */
    onBlock: (key: string) => void,
  ) {
    this.counts = new SprayCounts(windowMs, max, (c) => {
      if (c.blockedUntil > this.now() || c.own + c.others <= this.invalidTokens) return;
      this.begin(c);
      onBlock(c.key);
    });
  }

  get source(): SyncSource {
    return this.counts;
  }

  /** 0, or the Retry-After seconds while `key` is blocked. */
  blocked(key: string): number {
    if (this.counts.entries.size === 0) return 0;
    const c = this.counts.entries.get(key);
    if (c === undefined || c.blockedUntil === 0) return 0;
    const left = c.blockedUntil - this.now();
    return left > 0 ? retryAfter(left) : 0;
  }

  /** As SprayGuard.admit: the shared count, this instance's unsettled verifications and the block decide. */
  admit(key: string): number {
    const now = this.now();
    const c = this.state(key, now);
    if (c.blockedUntil > now) return retryAfter(c.blockedUntil - now);
    if (c.own + c.others + c.pending >= this.invalidTokens + 1) return 1;
    c.pending++;
    return 0;
  }

  settle(key: string, invalid: boolean): boolean {
    const c = this.counts.entries.get(key);
    if (c !== undefined && c.pending > 0) c.pending--;
    return invalid ? this.invalidToken(key) : false;
  }

  /** Counts one invalid token; true only when this one begins a block (the caller logs it once). */
  invalidToken(key: string): boolean {
    const now = this.now();
    const c = this.state(key, now);
    if (c.blockedUntil > now) return false;
    this.counts.count(c);
    if (c.own + c.others <= this.invalidTokens) return false;
    this.begin(c);
    return true;
  }

  /** A block another instance began (or the store held when it was reached again). */
  remoteBlock(key: string, untilMs: number): void {
    if (untilMs <= this.now()) return;
    const c = this.state(key, this.now());
    if (untilMs > c.blockedUntil) c.blockedUntil = untilMs;
  }

  get size(): number {
    return this.counts.entries.size;
  }

  private begin(c: SprayCount): void {
    c.blockedUntil = this.now() + this.blockMs;
    this.store.publishBlock(c.key, c.blockedUntil);
  }

  /** The count of `key` in the current window; a block outlives the window it began in. */
  private state(key: string, now: number): SprayCount {
    const before = this.counts.entries.get(key);
    const c = this.counts.current(key, now);
    if (before !== undefined && before !== c) {
      c.pending = before.pending;
      c.blockedUntil = before.blockedUntil > now ? before.blockedUntil : 0;
    }
    return c;
  }
}

class SprayCounts extends SharedCounts<SprayCount> {
  constructor(
    windowMs: number,
    max: number,
    private readonly onSettled: (c: SprayCount) => void,
  ) {
    super(`spray:${windowMs}`, windowMs, max, (k, w) => new SprayCount(k, w));
  }

  protected override settled(c: SprayCount): void {
    this.onSettled(c);
  }
}
