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
 * no second look-up (lru-cache's own TTL would read it again on every get).
 */
interface CachedSuccess extends TokenSuccess {
  /** min(exp, cached at + maxTtl) in ms: after it the entry is a miss and the token is verified again. */
  readonly staleAtMs: number;
  /** (exp + clockTolerance) in ms: from this instant on the token is expired (jose's rule). */
  readonly expiredAtMs: number;
}

/** A cache slot: the whole token it belongs to, and what was learned about it. */
interface Slot<T> {
  readonly token: string;
  readonly value: T;
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
  private readonly positive: LRUCache<string, Slot<CachedSuccess>>;
  private readonly negative: LRUCache<string, Slot<TokenFailure>>;
  private evicted = { positive: noEvictions(), negative: noEvictions() };

  constructor(
    private readonly limits: TokenCacheLimits,
    private readonly now: () => number,
  ) {
    // Positive entries expire by their own deadlines (CachedSuccess), checked in lookup
    // against the injected clock; the negative cache uses lru-cache's TTL, with the
    // injected clock as its `perf` and ttlResolution 0 so it asks on every read instead
    // of memoizing a timestamp behind a real timer.
    // dispose counts why entries leave (full, expired, deleted), for the debug summary.
    this.positive = new LRUCache<string, Slot<CachedSuccess>>({ max: limits.max, dispose: (_v, _k, why) => this.evicted.positive[why]++ });
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
    const slot = this.positive.get(index, HOT_GET);
    if (slot !== undefined && slot.token === token) {
      const hit = slot.value;
      const t = this.now();
      if (t < hit.expiredAtMs) {
        if (t <= hit.staleAtMs) return hit;
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
    const entry: CachedSuccess = Object.freeze({
      ok: true as const,
      principal,
      staleAtMs: Math.min(expMs, now + this.limits.maxTtlMs),
      expiredAtMs: (principal.exp + clockToleranceSec) * 1000,
    });
    if (expMs > now) this.positive.set(tokenIndex(token), { token, value: entry });
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
        const slot = this.positive.peek(index);
        if (slot !== undefined && names.has(slot.value.principal.issuer)) gone.push(index);
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
      const slot = this.positive.peek(index);
      if (slot !== undefined) next.positive.set(index, slot);
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
