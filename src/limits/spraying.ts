import { LRUCache } from 'lru-cache';
import { retryAfter } from './retry-after.js';

interface SprayState {
  count: number;
  windowEnd: number;
  blockedUntil: number;
  /** Verifications admitted for this address and not settled yet. */
  pending: number;
}

/**
 * Token-spraying defence: counts invalid tokens per address; more than
 * `invalidTokens` within `windowMs` blocks the address for `blockMs`.
 *
 * The guard exists to stop verification work, so it judges only tokens that would cost
 * some: the pipeline lets a token the cache holds as valid pass a blocked address (one
 * attacker behind a shared NAT must not lock out everyone there), and counts a
 * verification before it starts (`admit`), so a burst sent concurrently is refused
 * once `invalidTokens` of it are unsettled, before any of the rest reaches a worker.
 */
export class SprayGuard {
  private readonly states: LRUCache<string, SprayState>;

  constructor(
    private readonly invalidTokens: number,
    private readonly windowMs: number,
    private readonly blockMs: number,
    max: number,
    private readonly now: () => number = Date.now,
  ) {
    this.states = new LRUCache<string, SprayState>({ max });
  }

  /** 0, or the Retry-After seconds while `key` is blocked. O(1), no allocation. */
  blocked(key: string): number {
    if (this.states.size === 0) return 0;
    const s = this.states.get(key);
    if (s === undefined || s.blockedUntil === 0) return 0;
    const left = s.blockedUntil - this.now();
    return left > 0 ? retryAfter(left) : 0;
  }

  /**
   * Before a verification from `key` starts: 0 when it may run (it is then pending until
   * `settle`), else Retry-After seconds (blocked, or as many verifications unsettled as
   * invalid tokens are still allowed in this window).
   */
  admit(key: string): number {
    const s = this.state(key, this.now());
    if (s.blockedUntil > 0) return retryAfter(s.blockedUntil - this.now());
    if (s.count + s.pending >= this.invalidTokens + 1) return 1;
    s.pending++;
    return 0;
  }

  /** After an admitted verification: `invalid` counts it; true only when this one starts a block (log it once). */
  settle(key: string, invalid: boolean): boolean {
    const s = this.states.get(key);
    if (s !== undefined && s.pending > 0) s.pending--;
    return invalid ? this.invalidToken(key) : false;
  }

  /** Counts one invalid token; true only when this one starts a block (log it once). */
  invalidToken(key: string): boolean {
    const now = this.now();
    const s = this.state(key, now);
    if (s.blockedUntil > 0) return false; // verifications already running when the block began: reported already
    if (++s.count <= this.invalidTokens) return false;
    s.count = 0;
    s.blockedUntil = now + this.blockMs;
    s.windowEnd = s.blockedUntil; // counting starts afresh once the block is over
    return true;
  }

  /** The state of `key`, its window and block brought up to `now`. */
  private state(key: string, now: number): SprayState {
    let s = this.states.get(key);
    if (s === undefined) {
      s = { count: 0, windowEnd: now + this.windowMs, blockedUntil: 0, pending: 0 };
      this.states.set(key, s);
    } else if (s.blockedUntil > 0 && s.blockedUntil <= now) {
      s.blockedUntil = 0;
      s.count = 0;
      s.windowEnd = now + this.windowMs;
    } else if (s.blockedUntil === 0 && now >= s.windowEnd) {
      s.count = 0;
      s.windowEnd = now + this.windowMs;
    }
    return s;
  }

  get size(): number {
    return this.states.size;
  }
}

