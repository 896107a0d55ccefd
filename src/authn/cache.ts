/**
 * The token cache: verified claims (a principal, never a decision) and remembered
 * failures, keyed by the whole token and indexed by its tail (README "Token
 * verification", Cache).
 *
 * - A success is kept until `min(exp, cached at + maxTtl)`, never past `exp`
 *   (RFC 7519 §4.1.4), and `exp` is re-checked against the clock on every hit, with the
 *   issuer's clock tolerance, as jose would.
 * - A failure whose reason would fail again (src/reasons.ts `negativeCache`) is kept for
 *   `negativeTtl`; `unknown_kid` only until a key-set refetch could change the answer.
 * - Both are bounded by count (lru-cache `max`): a flood of distinct tokens evicts the
 *   least recently seen, it cannot grow memory.
 *
 * @example
 * const cache = new TokenCache({ max: 100_000, maxTtlMs: 300_000, negativeMax: 10_000, negativeTtlMs: 10_000 }, Date.now);
 * cache.remember(token, failure);
 * cache.lookup(token); // the failure, until it expires
 */
import { LRUCache } from 'lru-cache';
import { REASONS } from '../reasons.js';
import { tokenFailure } from './failures.js';
import type { Principal } from '../authz/claims.js';
import type { CompiledConfig } from '../config/state.js';
import type { TokenFailure, TokenSuccess, VerifyResult } from './types.js';

/**
 * A cached success carries its own deadlines, so a hit reads the clock once and needs
 * no second look-up (lru-cache's own TTL would read it again on every get), and the
 * whole token it belongs to, so the tail index (below) finds it and equality decides.
 *
 * One object per token, every field held in it: a cached token's objects are what
 * each major GC marks, one cache miss of memory each, and on a big cache on one core
 * that marking was the bench's `fixed-rate` stall (bench/README.md). So the token is a
 * private field (never in a clone to another thread, a log or a JSON text), not a
 * second wrapper object, and both deadlines are small integers, not the 8-byte boxes V8
 * makes of every number past 2^31 (milliseconds since 1970 are): `expiredAtSec` is in
 * seconds, as `exp` is, and `staleAt` in milliseconds since the cache's `base`.
 */
class CachedSuccess implements TokenSuccess {
  readonly ok = true as const;
  readonly #token: string;
  constructor(
    token: string,
    readonly principal: Principal,
    /** min(exp, cached at + maxTtl), in ms since the cache's `base`: after it the entry is a miss and the token is verified again. */
    readonly staleAt: number,
    /** exp + clockTolerance, in seconds: from this instant on the token is expired (jose's rule). */
    readonly expiredAtSec: number,
  ) {
    this.#token = token;
    Object.freeze(this);
  }

  /** Whether this entry is the one of `token`, byte for byte. */
  isFor(token: string): boolean {
    return this.#token === token;
  }

  /** The same entry on another clock base (a cache with other limits, {@link TokenCache.withLimits}). */
  rebased(by: number): CachedSuccess {
    return by === 0 ? this : new CachedSuccess(this.#token, this.principal, this.staleAt + by, this.expiredAtSec);
  }
}

/** A remembered failure: the whole token it belongs to, and the (shared) failure. */
interface Slot<T> {
  readonly token: string;
  readonly value: T;
}

/**
 * A copy of the token that is one flat string. The presented token is a slice of its
 * Authorization header (a V8 sliced string), which would keep the whole header text
 * alive beside it for as long as the token is cached: two objects instead of one. Only
 * a miss pays for the copy; b64token characters (RFC 6750 §2.1) are ASCII, so latin1 is
 * exact.
 */
function flatCopy(token: string): string {
  const copy = Buffer.from(token, 'latin1').toString('latin1');
  // Anything else (never a token that passed the b64token check) is kept as it came.
  return copy === token ? copy : token;
}

/**
 * lru-cache's `get(k, options = {})` allocates its default options object on every
 * call; handing it this one keeps a hit allocation-free. `status` is reset before each
 * use so lru-cache's diagnostics (when subscribed) start from a clean slate.
 */
const HOT_GET: { status?: undefined } = {};

/**
 * How many of a token's last characters index the caches. Looking a ~1.5 KB token up by
 * itself makes V8 hash every character of a fresh string on each request (about 2.5 µs,
 * the largest cost of a cache hit when measured); the last 43 characters of a JWS are
 * 256 bits of its signature, unique among real tokens. The index only finds the slot: a
 * hit also needs the slot's token to equal the presented one, byte for byte, so the
 * caches stay keyed by the whole token, and two tokens that share a tail (only a crafted
 * one can) merely miss or replace each other's slot.
 */
const INDEX_CHARS = 43;

/** The cache index of a token: its last {@link INDEX_CHARS} characters. */
export function tokenIndex(token: string): string {
  return token.length > INDEX_CHARS ? token.slice(token.length - INDEX_CHARS) : token;
}

const EXPIRED = tokenFailure('expired');

export interface TokenCacheLimits {
  /** Verified tokens kept at most. */
  readonly max: number;
  /** Longest a verified token is kept, ms. */
  readonly maxTtlMs: number;
  /** Failed tokens kept at most. */
  readonly negativeMax: number;
  /** How long a failure is remembered, ms. */
  readonly negativeTtlMs: number;
}

/** The cache limits `verifier.cache` sets (the verifier's and every front-end thread's cache). */
export function cacheLimits(v: CompiledConfig['verifier']): TokenCacheLimits {
  return { max: v.cacheMax, maxTtlMs: v.cacheMaxTtlMs, negativeMax: v.negativeMax, negativeTtlMs: v.negativeTtlMs };
}

/** Whether two `verifier` settings give the caches the same limits (a reload that changes them resizes). */
export function sameCacheLimits(a: CompiledConfig['verifier'], b: CompiledConfig['verifier']): boolean {
  return a.cacheMax === b.cacheMax && a.cacheMaxTtlMs === b.cacheMaxTtlMs && a.negativeMax === b.negativeMax && a.negativeTtlMs === b.negativeTtlMs;
}

/** Why entries left a cache since the last summary, by lru-cache's reason. */
export type Evictions = Record<LRUCache.DisposeReason, number>;
const noEvictions = (): Evictions => ({ evict: 0, set: 0, delete: 0, expire: 0, fetch: 0 });

export class TokenCache {
  private readonly positive: LRUCache<string, CachedSuccess>;
  private readonly negative: LRUCache<string, Slot<TokenFailure>>;
  private evicted = { positive: noEvictions(), negative: noEvictions() };

  /**
   * The instant (ms, the injected clock) `staleAt` counts from: the clock when the cache
   * was made, so deadlines stay small integers for the first ~24 days (2^31 ms).
   */
  private readonly base: number;

  constructor(
    private readonly limits: TokenCacheLimits,
    private readonly now: () => number,
  ) {
    this.base = Math.floor(now());
    // Positive entries expire by their own deadlines (CachedSuccess), checked in lookup
    // against the injected clock; the negative cache uses lru-cache's TTL, with the
    // injected clock as its `perf` and ttlResolution 0 so it asks on every read instead
    // of memoizing a timestamp behind a real timer.
    // dispose counts why entries leave (full, expired, deleted), for the debug summary.
    this.positive = new LRUCache<string, CachedSuccess>({ max: limits.max, dispose: (_v, _k, why) => this.evicted.positive[why]++ });
    this.negative = new LRUCache<string, Slot<TokenFailure>>({
      max: limits.negativeMax,
      ttl: limits.negativeTtlMs,
      ttlResolution: 0,
      ttlAutopurge: false,
      perf: { now },
      dispose: (_v, _k, why) => this.evicted.negative[why]++,
    });
  }

  /**
   * The hot path: synchronous, and on a hit it returns the cached object itself (the
   * only allocation is the short index slice). A success past `exp` (with the tolerance)
   * answers `expired`; one past its stale time is dropped (a miss: verify again).
   */
  lookup(token: string): VerifyResult | undefined {
    const index = tokenIndex(token);
    HOT_GET.status = undefined;
    const hit = this.positive.get(index, HOT_GET);
    if (hit !== undefined && hit.isFor(token)) {
      const t = this.now();
      if (t < hit.expiredAtSec * 1000) {
        if (t - this.base <= hit.staleAt) return hit;
        this.positive.delete(index); // past maxTtl (or exp, inside the tolerance): verify again
      } else {
        this.positive.delete(index);
        return EXPIRED;
      }
    }
    HOT_GET.status = undefined;
    const bad = this.negative.get(index, HOT_GET);
    return bad !== undefined && bad.token === token ? bad.value : undefined;
  }

  /**
   * Keeps a verified principal until `min(exp, now + maxTtl)`. A token still inside its
   * tolerance window after `exp` is answered but not cached.
   */
  accept(token: string, principal: Principal, clockToleranceSec: number): TokenSuccess {
    const now = this.now();
    const expMs = principal.exp * 1000;
    const kept = expMs > now ? flatCopy(token) : token;
    const entry = new CachedSuccess(kept, principal, Math.min(expMs, now + this.limits.maxTtlMs) - this.base, principal.exp + clockToleranceSec);
    if (expMs > now) this.positive.set(tokenIndex(kept), entry);
    return entry;
  }

  /** Remembers a failure whose reason would fail again (src/reasons.ts `negativeCache`). */
  remember(token: string, failure: TokenFailure): TokenFailure {
    const info = (REASONS as Record<string, { negativeCache: boolean } | undefined>)[failure.reason];
    if (info?.negativeCache) this.negative.set(tokenIndex(token), { token, value: failure });
    return failure;
  }

  /** Remembers an `unknown_kid` failure for `ttlMs` only (until a refetch could make the kid known). */
  rememberFor(token: string, failure: TokenFailure, ttlMs: number): void {
    if (ttlMs >= 1) this.negative.set(tokenIndex(token), { token, value: failure }, { ttl: ttlMs });
  }

  /**
   * Entries that left each cache since the last call (`evict`: the cache was full;
   * `expire`: negative TTL; `delete`: past exp or maxTtl; `set`: replaced by a newer one).
   */
  takeEvictions(): { positive: Evictions; negative: Evictions } {
    const e = this.evicted;
    this.evicted = { positive: noEvictions(), negative: noEvictions() };
    return e;
  }

  /**
   * Forgets the verified tokens of these issuers (config names), and every remembered
   * failure: a reload that changed an issuer's settings (src/reload.ts) must not answer
   * from what its old settings decided, and a refusal such as `wrong_audience` may pass
   * under new ones. Returns how many verified tokens were dropped.
   */
  forgetIssuers(names: ReadonlySet<string>): number {
    const gone: string[] = [];
    if (names.size > 0) {
      // Collected first: lru-cache's iterators walk a list that delete() relinks.
      for (const index of this.positive.keys()) {
        const entry = this.positive.peek(index);
        if (entry !== undefined && names.has(entry.principal.issuer)) gone.push(index);
      }
    }
    for (const index of gone) this.positive.delete(index);
    this.negative.clear();
    return gone.length;
  }

  /**
   * A cache with other limits holding this one's verified tokens (least recently used
   * first, so the order of use is kept; beyond the new `max` the oldest go). Remembered
   * failures are not carried: their lifetime was the old `negativeTtl`.
   */
  withLimits(limits: TokenCacheLimits): TokenCache {
    const next = new TokenCache(limits, this.now);
    for (const index of this.positive.rkeys()) {
      const entry = this.positive.peek(index);
      if (entry !== undefined) next.positive.set(index, entry.rebased(this.base - next.base));
    }
    next.evicted = this.evicted;
    return next;
  }

  get size(): number {
    return this.positive.size;
  }

  get negativeSize(): number {
    return this.negative.size;
  }

  clear(): void {
    this.positive.clear();
    this.negative.clear();
  }
}
