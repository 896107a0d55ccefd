import { LRUCache } from 'lru-cache';
import type { CompiledRateLimit, RateRule } from '../config/observe-schema.js';
import { SprayGuard } from './spraying.js';
import { SharedSprayGuard, SharedWindowLimiter, type SharedLimitStore, type SyncSource } from './shared.js';
import { retryAfter } from './retry-after.js';
import { settingsKey } from '../config/same.js';

export { SprayGuard } from './spraying.js';

/**
 * Rate limits and the token-spraying defence (README "Audit log, metrics and abuse
 * protection": 429 with `Retry-After`, RFC 6585 §4, RFC 9110 §10.2.3).
 *
 * Why the memory store is a fixed-window counter of our own and not
 * rate-limiter-flexible's RateLimiterMemory: the pipeline's hot path (cache hit →
 * policy → dispatch) is synchronous, and RateLimiterMemory answers through a
 * Promise even though its storage is updated synchronously; it also keeps every key
 * in an unbounded Map with one timer per key (a flood of unique addresses would grow
 * memory and timers without limit) and reads Date.now() (no injectable clock). The
 * counter here has the same semantics as rate-limiter-flexible's stores (a window of
 * `duration` that starts with a key's first request, `points` requests in it), lives
 * in an lru-cache bounded by `maxKeys`, allocates only when a key is first seen, and
 * takes a clock. With `state.store: redis` the counts are shared the same synchronous way
 * (./shared.ts): counted and judged here, synced to Redis on an interval.
 */

/** One limiter: counts a request for `key` and answers 0 (allowed) or Retry-After seconds. */
export interface Limiter {
  hit(key: string): number;
  /** Keys currently held in memory (bounded by maxKeys). */
  readonly size: number;
}

interface Window {
  count: number;
  resetAt: number;
}



/** Fixed-window counters for one rule, bounded to `max` keys (least recently used forgotten first). */
export class WindowLimiter implements Limiter {
  private readonly windows: LRUCache<string, Window>;

  constructor(
    readonly rule: RateRule,
    max: number,
    private readonly now: () => number = Date.now,
  ) {
    this.windows = new LRUCache<string, Window>({ max });
  }

  hit(key: string): number {
    const now = this.now();
    const w = this.windows.get(key);
    if (w === undefined) {
      this.windows.set(key, { count: 1, resetAt: now + this.rule.windowMs });
      return 0;
    }
    if (now >= w.resetAt) {
      w.count = 1;
      w.resetAt = now + this.rule.windowMs;
      return 0;
    }
    if (++w.count <= this.rule.points) return 0;
    return retryAfter(w.resetAt - now);
  }

  get size(): number {
    return this.windows.size;
  }
}

/**
 * The rate-limit key of a client address: IPv4 as it is, IPv6 cut to its first
 * `prefix` bits (one host commonly holds a whole /64, RFC 4291 §2.5.4), written as
 * `xxxx:xxxx:xxxx:xxxx::/64`. Anything that does not parse is its own key.
 */
export function addressKey(addr: string, prefix: number): string {
  if (prefix >= 128 || !addr.includes(':')) return addr;
  const groups = expandIPv6(addr);
  if (groups === null) return addr;
  const out: string[] = [];
  let bits = prefix;
  for (let i = 0; i < 8 && bits > 0; i++, bits -= 16) {
    const g = bits >= 16 ? groups[i]! : groups[i]! & (0xffff << (16 - bits));
    out.push(g.toString(16));
  }
  return `${out.join(':')}::/${prefix}`;
}

function expandIPv6(addr: string): number[] | null {
  let text = addr;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.indexOf('.', lastColon) !== -1) {
    // Embedded IPv4 in the last 32 bits (RFC 4291 §2.2 form 3).
    const v4 = text.slice(lastColon + 1).split('.').map(Number);
    if (v4.length !== 4 || v4.some((n) => !(n >= 0 && n <= 255))) return null;
    tail.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    text = `${text.slice(0, lastColon + 1)}0`; // keep the colon structure; the placeholder is dropped below
  }
  const parse = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    for (const h of part.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(h)) return null;
      out.push(parseInt(h, 16));
    }
    return out;
  };
  const dbl = text.indexOf('::');
  let groups: number[];
  if (dbl === -1) {
    const all = parse(text);
    if (all === null) return null;
    groups = all;
  } else {
    const head = parse(text.slice(0, dbl));
    const rest = parse(text.slice(dbl + 2));
    if (head === null || rest === null) return null;
    const want = 8 - (tail.length > 0 ? 1 : 0); // the placeholder group stands for the IPv4 tail's first half
    const fill = want - head.length - rest.length;
    if (fill < 0) return null;
    groups = [...head, ...new Array<number>(fill).fill(0), ...rest];
  }
  if (tail.length > 0) {
    groups.pop();
    groups.push(...tail);
  }
  return groups.length === 8 ? groups : null;
}

export interface RateLimits {
  /**
   * Counts a request from `addr` on `route` (per-address limit, README "What the gateway answers" order: after
   * the method check, before credentials). 0 = allowed, else Retry-After seconds.
   */
  checkAddress(route: string, addr: string): number;
  /**
   * Counts a request of `subject` (issued by `issuer`, the config name: subjects are
   * unique per issuer only) on `route`, after the policy allowed it. 0 = allowed,
   * else Retry-After seconds. A token without a subject is not limited here.
   */
  checkSubject(route: string, issuer: string, subject: string | undefined): number;
  /** 0, or Retry-After seconds while `addr` is blocked for token spraying. Check it before any verification. */
  blocked(addr: string): number;
  /** Call after each 401 invalid_token from `addr`; true the first time the address becomes blocked. */
  invalidToken(addr: string): boolean;
  /**
   * Before verifying a token from `addr` (a cache miss): 0 when it may go to the verifier,
   * else Retry-After seconds. An admitted verification must be settled.
   */
  admitVerification(addr: string): number;
  /** After an admitted verification: `invalid` counts it as an invalid token; true when that starts a block. */
  settleVerification(addr: string, invalid: boolean): boolean;
  /** Keys held in memory per limiter name (`address`, `subject`, `address:<route>`, `spraying`, …). */
  sizes(): Record<string, number>;
  /**
   * Follows a new `rateLimit` config (a reload, src/reload.ts): a limiter whose rule did
   * not change keeps its counters (and the spraying guard its blocks); a new or changed
   * one starts empty. Synchronous: the next check uses the new rules.
   */
  reconfigure(cfg: CompiledRateLimit): RateLimitChanges;
}

/** Limiter names (`address`, `subject:<route>`, `spraying`, …) by what a reconfigure did to them. */
export interface RateLimitChanges {
  readonly kept: readonly string[];
  /** New or changed: counting from zero. */
  readonly reset: readonly string[];
  readonly removed: readonly string[];
}

export interface RateLimitOptions {
  /** Clock in milliseconds (tests inject one). */
  now?: () => number;
  /**
   * The store several instances share counts and spraying blocks through
   * (src/state/counters.ts, `state.store: redis`); when absent, in-process counters.
   */
  shared?: SharedLimitStore;
  /** A spraying block this instance began from counts other instances sent (logged and counted like one began here). */
  onSharedBlock?: (key: string) => void;
}

const unlimited = (): number => 0;

/** What one set of limiters is built from and may be rebuilt from: a name, its settings, the limiter. */
interface Held {
  readonly settings: string;
  readonly limiter: Limiter | SprayGuard | SharedSprayGuard;
}

type Guard = SprayGuard | SharedSprayGuard;

/**
 * Builds the limiters of a compiled `rateLimit` config. Routes without a limit cost
 * one Map look-up; with no limits configured at all, the checks are constant functions.
 *
 * @example
 * const rl = createRateLimits(config.rateLimit);
 * const wait = rl.checkAddress(route.name, client);
 * if (wait > 0) return ex.answer('rate_limited', { retryAfter: wait });
 */
export function createRateLimits(cfg: CompiledRateLimit, options: RateLimitOptions = {}): RateLimits {
  let held = new Map<string, Held>();
  const limits = {} as RateLimits;
  const shared = options.shared;
  // Blocks other instances began go to the guard in force (a reload may replace it).
  let guard: Guard | null = null;
  shared?.onBlock((key, until) => {
    if (guard instanceof SharedSprayGuard) guard.remoteBlock(key, until);
  });
  const install = (next: CompiledRateLimit): RateLimitChanges => {
    const built = buildChecks(next, options, held);
    if (shared !== undefined) {
      // The sync sends the counts of the limiters in force only.
      for (const h of held.values()) if (!built.kept.has(h.limiter)) shared.unregister(sourceOf(h.limiter)!);
      for (const h of built.held.values()) if (!built.kept.has(h.limiter)) shared.register(sourceOf(h.limiter)!);
    }
    held = built.held;
    guard = built.guard;
    // The same object throughout (the services hold it); its checks are replaced whole,
    // so the hot path still calls one plain function per check.
    Object.assign(limits, built.checks);
    return built.changes;
  };
  install(cfg);
  limits.reconfigure = install;
  return limits;
}

/** The counts a shared limiter syncs; null for an in-process one. */
function sourceOf(l: Limiter | Guard): SyncSource | null {
  return l instanceof SharedWindowLimiter || l instanceof SharedSprayGuard ? l.source : null;
}

function buildChecks(
  cfg: CompiledRateLimit,
  options: RateLimitOptions,
  before: ReadonlyMap<string, Held>,
): { checks: Omit<RateLimits, 'reconfigure'>; held: Map<string, Held>; changes: RateLimitChanges; kept: ReadonlySet<unknown>; guard: Guard | null } {
  const now = options.now ?? Date.now;
  const held = new Map<string, Held>();
  const kept: string[] = [];
  const reset: string[] = [];
  // A limiter is kept when everything that shapes its counters is unchanged: its rule,
  // the key bound, and for address keys the IPv6 prefix they are cut to.
  const keptLimiters = new Set<unknown>();
  const shared = options.shared;
  const reuse = <L extends Limiter | Guard>(name: string, settings: unknown, make: () => L): L => {
    const key = settingsKey(settings);
    const old = before.get(name);
    const limiter = old !== undefined && old.settings === key ? (old.limiter as L) : make();
    if (limiter === old?.limiter) {
      kept.push(name);
      keptLimiters.add(limiter);
    } else reset.push(name);
    held.set(name, { settings: key, limiter });
    return limiter;
  };
  const limiters = new Map<string, Limiter>();
  const make = (name: string, rule: RateRule, addressKeys: boolean): Limiter => {
    const l = reuse(name, { rule, maxKeys: cfg.maxKeys, ...(addressKeys ? { ipv6Prefix: cfg.ipv6Prefix } : {}) }, () =>
      shared ? new SharedWindowLimiter(name, rule, cfg.maxKeys, now) : new WindowLimiter(rule, cfg.maxKeys, now),
    );
    limiters.set(name, l);
    return l;
  };
  const globalAddress = cfg.address ? make('address', cfg.address, true) : null;
  const globalSubject = cfg.subject ? make('subject', cfg.subject, false) : null;
  // Per route: a limiter of its own, null (off), or absent (the global limiter).
  const addressByRoute = new Map<string, Limiter | null>();
  const subjectByRoute = new Map<string, Limiter | null>();
  for (const [route, r] of cfg.routes) {
    if (r.address !== undefined) addressByRoute.set(route, r.address === null ? null : make(`address:${route}`, r.address, true));
    if (r.subject !== undefined) subjectByRoute.set(route, r.subject === null ? null : make(`subject:${route}`, r.subject, false));
  }
  const sp = cfg.spraying;
  const spray = sp
    ? reuse('spraying', { spraying: sp, maxKeys: cfg.maxKeys, ipv6Prefix: cfg.ipv6Prefix }, (): Guard =>
        shared
          ? new SharedSprayGuard(sp.invalidTokens, sp.windowMs, sp.blockMs, cfg.maxKeys, now, shared, options.onSharedBlock ?? (() => {}))
          : new SprayGuard(sp.invalidTokens, sp.windowMs, sp.blockMs, cfg.maxKeys, now),
      )
    : null;
  const removed = [...before.keys()].filter((name) => !held.has(name));

  // blocked() and checkAddress() run on the same address string for one request:
  // remember the last key so an IPv6 prefix is computed once.
  const prefix = cfg.ipv6Prefix;
  let lastAddr = '';
  let lastKey = '';
  const keyOf = (addr: string): string => {
    if (addr !== lastAddr) {
      lastKey = addressKey(addr, prefix);
      lastAddr = addr;
    }
    return lastKey;
  };

  const anyAddress = globalAddress !== null || [...addressByRoute.values()].some((l) => l !== null);
  const anySubject = globalSubject !== null || [...subjectByRoute.values()].some((l) => l !== null);

  const checks: Omit<RateLimits, 'reconfigure'> = {
    checkAddress: anyAddress
      ? (route, addr) => {
          const own = addressByRoute.get(route);
          const l = own === undefined ? globalAddress : own;
          return l === null ? 0 : l.hit(keyOf(addr));
        }
      : unlimited,
    checkSubject: anySubject
      ? (route, issuer, subject) => {
          if (subject === undefined) return 0;
          const own = subjectByRoute.get(route);
          const l = own === undefined ? globalSubject : own;
          // The issuer name comes from the config, not the client: a crafted `sub` cannot
          // reach another issuer's counter unless an issuer name itself holds a NUL.
          return l === null ? 0 : l.hit(`${issuer}\u0000${subject}`);
        }
      : unlimited,
    blocked: spray ? (addr) => spray.blocked(keyOf(addr)) : unlimited,
    invalidToken: spray ? (addr) => spray.invalidToken(keyOf(addr)) : () => false,
    admitVerification: spray ? (addr) => spray.admit(keyOf(addr)) : unlimited,
    settleVerification: spray ? (addr, invalid) => spray.settle(keyOf(addr), invalid) : () => false,
    sizes() {
      const out: Record<string, number> = {};
      for (const [name, l] of limiters) out[name] = l.size;
      if (spray) out['spraying'] = spray.size;
      return out;
    },
  };
  return { checks, held, changes: { kept, reset, removed }, kept: keptLimiters, guard: spray };
}
