import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { duration, durationSchema, parseDuration } from './duration.js';

/**
 * Config keys of the observe stage: the audit log (`audit:`), rate limits
 * (`rateLimit:` at the top level and on each route) and the token-spraying defence.
 * schema.ts adds these as keys of its own strict objects; `compileObserve` turns the
 * parsed values into the frozen runtime part of CompiledConfig.
 *
 * `duration` comes from duration.ts, not schema.ts: schema.ts imports this file,
 * and an import back would be a module cycle (a ReferenceError at start-up).
 */
/** Rate-limit windows and blocks are answered in whole seconds (Retry-After, RFC 9110 §10.2.3). */
const seconds = durationSchema('1s');

export const auditSchema = z.strictObject({
  /** false: no audit lines at all. */
  enabled: z.boolean().default(true),
  /** `stdout`, `stderr`, or a file path (appended to; relative to the config file's folder). */
  destination: z.string().min(1, 'must not be empty').default('stdout'),
  /** Lines are buffered until this many bytes are waiting, then written without blocking the event loop. */
  bufferBytes: z.number().int().min(0).max(1_048_576).default(65_536),
  /** Buffered lines are written at least this often, so a quiet gateway's lines still appear. */
  flushInterval: duration.default('1s'),
  /**
   * Most bytes held in memory while the destination is slower than the traffic;
   * lines beyond it are dropped (and counted) rather than growing memory without bound.
   */
  maxBufferBytes: z.number().int().min(65_536).default(16 * 1_048_576),
});

/**
 * `points` requests per `duration` window: a fixed window that starts with the key's first
 * request (`state.store: memory`), or at a multiple of `duration` since the epoch, the
 * same for every instance (`redis`).
 */
export const rateRuleSchema = z.strictObject({
  points: z.number().int().min(1),
  duration: seconds,
});

export const rateLimitSchema = z.strictObject({
  /**
   * Replaced by `state.store` (state-schema.ts), which shares revocations and DPoP proofs
   * too: accepted by the schema only so that `check` can name the new key
   * (stateCrossChecks) instead of saying "unknown key".
   */
  store: z.unknown().optional(),
  /** Keys (addresses / subjects) tracked per limiter; the least recently seen are forgotten beyond it. */
  maxKeys: z.number().int().min(1000).max(10_000_000).default(100_000),
  /**
   * IPv6 clients are counted per prefix of this many bits (64 = one subscriber's
   * network; one host can use a whole /64). 128 = per address.
   */
  ipv6Prefix: z.number().int().min(32).max(128).default(64),
  /** Default per-client-address limit of every route; none when left out. Checked before credentials. */
  address: rateRuleSchema.optional(),
  /** Default per-subject (`sub` per issuer) limit of every authenticated route; none when left out. */
  subject: rateRuleSchema.optional(),
  /**
   * Token-spraying defence: an address that sends more than `invalidTokens` invalid
   * tokens within `window` is answered 429 for `block`, before any verification work.
   */
  spraying: z
    .strictObject({
      enabled: z.boolean().default(true),
      invalidTokens: z.number().int().min(1).default(20),
      window: seconds.default('1m'),
      block: seconds.default('15m'),
    })
    .prefault({}),
});

/** A route's own limit replaces the global one of the same name; `false` turns it off on the route. */
const routeRule = z.union([rateRuleSchema, z.literal(false)]);

export const routeRateLimitSchema = z.strictObject({
  address: routeRule.optional(),
  subject: routeRule.optional(),
});

export type RawAudit = z.output<typeof auditSchema>;
export type RawRateLimit = z.output<typeof rateLimitSchema>;
export type RawRouteRateLimit = z.output<typeof routeRateLimitSchema>;

// --- compiled form -------------------------------------------------------------------

export interface RateRule {
  readonly points: number;
  readonly windowMs: number;
}

export interface CompiledAudit {
  readonly enabled: boolean;
  /** 'stdout', 'stderr', or an absolute file path. */
  readonly destination: string;
  readonly bufferBytes: number;
  readonly flushIntervalMs: number;
  readonly maxBufferBytes: number;
}

export interface CompiledRouteRateLimit {
  /** undefined = the global rule applies (shared counter); null = no limit on this route. */
  readonly address: RateRule | null | undefined;
  readonly subject: RateRule | null | undefined;
}

export interface CompiledRateLimit {
  readonly maxKeys: number;
  readonly ipv6Prefix: number;
  readonly address: RateRule | null;
  readonly subject: RateRule | null;
  readonly spraying: { readonly invalidTokens: number; readonly windowMs: number; readonly blockMs: number } | null;
  /** Routes (by compiled route name) that set their own `rateLimit`. */
  readonly routes: ReadonlyMap<string, CompiledRouteRateLimit>;
}

export interface CompiledObserve {
  readonly audit: CompiledAudit;
  readonly rateLimit: CompiledRateLimit;
}

/** The parts of the parsed config compileObserve reads. */
export interface RawObserveInput {
  readonly audit: RawAudit;
  readonly rateLimit: RawRateLimit;
  readonly routes: readonly { readonly name?: string | undefined; readonly path: string; readonly rateLimit?: RawRouteRateLimit | undefined }[];
}

const ms = (s: string): number => parseDuration(s)!;
const rule = (r: z.output<typeof rateRuleSchema>): RateRule => Object.freeze({ points: r.points, windowMs: ms(r.duration) });
const routeRuleOf = (r: RateRuleOrOff | undefined): RateRule | null | undefined => (r === undefined ? undefined : r === false ? null : rule(r));
type RateRuleOrOff = z.output<typeof routeRule>;

/**
 * Compiles the parsed `audit` / `rateLimit` keys (and each route's `rateLimit`) into
 * their frozen runtime form. Route names follow load.ts: `name`, else `path`.
 *
 * @example const { audit, rateLimit } = compileObserve(parsed, baseDir);
 */
export function compileObserve(raw: RawObserveInput, baseDir: string): CompiledObserve {
  const a = raw.audit;
  const dest = a.destination === 'stdout' || a.destination === 'stderr' ? a.destination : isAbsolute(a.destination) ? a.destination : resolve(baseDir, a.destination);
  const rl = raw.rateLimit;
  const routes = new Map<string, CompiledRouteRateLimit>();
  for (const r of raw.routes) {
    if (r.rateLimit === undefined) continue;
    routes.set(r.name ?? r.path, Object.freeze({ address: routeRuleOf(r.rateLimit.address), subject: routeRuleOf(r.rateLimit.subject) }));
  }
  const sp = rl.spraying;
  return Object.freeze({
    audit: Object.freeze({
      enabled: a.enabled,
      destination: dest,
      bufferBytes: a.bufferBytes,
      flushIntervalMs: ms(a.flushInterval),
      maxBufferBytes: a.maxBufferBytes,
    }),
    rateLimit: Object.freeze({
      maxKeys: rl.maxKeys,
      ipv6Prefix: rl.ipv6Prefix,
      address: rl.address ? rule(rl.address) : null,
      subject: rl.subject ? rule(rl.subject) : null,
      spraying: sp.enabled ? Object.freeze({ invalidTokens: sp.invalidTokens, windowMs: ms(sp.window), blockMs: ms(sp.block) }) : null,
      routes,
    }),
  });
}

/**
 * Checks across keys that the schema cannot express, in the `path: message` form of
 * load.ts's crossChecks. Reads the raw data defensively (it runs when the schema failed too).
 */
export function observeCrossChecks(data: unknown): { path: string; message: string }[] {
  const problems: { path: string; message: string }[] = [];
  const root = data !== null && typeof data === 'object' ? (data as Record<string, unknown>) : {};
  const routes = Array.isArray(root['routes']) ? (root['routes'] as unknown[]) : [];
  routes.forEach((r, i) => {
    if (r === null || typeof r !== 'object') return;
    const route = r as Record<string, unknown>;
    const rl = route['rateLimit'];
    const subject = rl !== null && typeof rl === 'object' ? (rl as Record<string, unknown>)['subject'] : undefined;
    if ((route['auth'] ?? 'mfa') === 'none' && subject !== undefined && subject !== false) {
      problems.push({ path: `routes[${i}].rateLimit.subject`, message: 'a subject limit needs auth: token or mfa (auth: none has no subject)' });
    }
  });
  return problems;
}
