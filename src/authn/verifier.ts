/**
 * Token verification: an lru-cache of verified claims in front of a Piscina pool of
 * jose verifications, with the issuers' key sets held here on the main thread.
 *
 * @example
 * const verifier = createVerifier(loadConfig('gateway.yaml'));
 * await verifier.start();                       // fetches every issuer's keys once
 * const r = verifier.lookup(token) ?? (await verifier.verify(token));
 * if (r.ok) decide(r.principal, route.policy, …);
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { CompiledConfig, CompiledIssuer } from '../config/state.js';
import { sealPrincipal, type Principal } from '../authz/claims.js';
import { GatewayError } from '../errors.js';
import { jwsForm } from './extract.js';
import { cacheLimits, sameCacheLimits, TokenCache } from './cache.js';
import { singleFlight } from './single-flight.js';
import { tokenFailure } from './failures.js';
import { decodeJsonSegment } from './jws.js';
import { KEY_MISMATCH, KeyStore, NO_KEYS, UNKNOWN_KID, type SetTimer, type StoredKey } from './jwks.js';
import { VerifyPool } from './pool.js';
import type { TokenFailure, Verifier, VerifierReadiness, VerifierReconfiguration, VerifierStats, VerifyResult } from './types.js';
import { sameSettings } from '../config/same.js';
import { verifyToken, type VerifyTaskResult } from './worker/verify.js';

export interface VerifierOptions {
  /** Milliseconds since the epoch; the injected clock of the caches, `exp`/`nbf` checks and cooldowns. */
  now?: () => number;
  /** Fetcher for discovery documents and key sets. */
  fetch?: typeof globalThis.fetch;
  /** Method syntax, so a logger without `debug` still fits (KeyStoreOptions.log says why). */
  log?(level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void;
  /** Schedules the key sets' background refreshes (default: real, unref'd timers); tests drive it. */
  setTimer?: SetTimer;
  /** 0 ≤ x < 1 for the refresh jitter (default Math.random). */
  random?: () => number;
  /**
   * The worker module Piscina loads (default: `./worker/verify.js` beside this file,
   * i.e. dist/authn/worker/verify.js). Tests point it at a wrapper that can crash.
   */
  workerFile?: URL;
  /**
   * Called after every key-set load attempt with the issuer's config name and whether it
   * succeeded: the gateway feeds `metrics.jwksFetch` with it (JWKS fetches and failures per issuer).
   */
  onKeyFetch?: (issuer: string, ok: boolean) => void;
  /**
   * Called when a pool verification is abandoned after `verifier.taskTimeout`: the
   * gateway counts it (`mfa_gateway_verifier_timeouts_total`).
   */
  onTaskTimeout?: () => void;
}

interface IssuerRuntime {
  readonly issuer: CompiledIssuer;
  readonly store: KeyStore;
  /** Ends this key set's fetches and refreshes (the verifier closing, or a reload replacing the issuer). */
  readonly stop: AbortController;
}

const MALFORMED = tokenFailure('malformed');
const TOO_LARGE = tokenFailure('too_large');
/** How often the cache eviction summary may be logged (at debug level). */
const EVICTION_LOG_MS = 10_000;
const UNKNOWN_ISSUER = tokenFailure('unknown_issuer');
const ALG_NOT_ALLOWED = tokenFailure('alg_not_allowed');
const UNKNOWN_KID_FAILURE = tokenFailure('unknown_kid');
const UNAVAILABLE = tokenFailure('verifier_unavailable');
const OVERLOADED = tokenFailure('overloaded');

const POOL_OK: VerifierReadiness['pool'] = Object.freeze({ ok: true });

/**
 * Builds the verifier for a compiled config (issue 3, README "Token verification").
 * `threads: 0` verifies on the main thread with the same task code the workers run.
 */
export function createVerifier(config: CompiledConfig, options: VerifierOptions = {}): Verifier {
  return new TokenVerifier(config, options);
}

class TokenVerifier implements Verifier {
  private readonly now: () => number;
  private readonly log: NonNullable<VerifierOptions['log']>;
  private readonly byIss = new Map<string, IssuerRuntime>();
  private cache: TokenCache;
  private readonly pending = new Map<string, Promise<VerifyResult>>();
  private readonly pool: VerifyPool | null;
  private readonly abort = new AbortController();
  private cfg: CompiledConfig['verifier'];
  private readonly storeOptions: Omit<ConstructorParameters<typeof KeyStore>[1], 'signal' | 'cooldownMs' | 'timeoutMs'>;
  private inlineRunning = 0;
  private verifications = 0;
  private closed = false;
  /** Entries that left each cache since the last summary, by lru-cache's reason. */
  private readonly evictionLog: NodeJS.Timeout;

  constructor(config: CompiledConfig, options: VerifierOptions) {
    this.cfg = config.verifier;
    this.now = options.now ?? Date.now;
    this.log = options.log ?? (() => {});
    this.storeOptions = {
      now: this.now,
      fetch: options.fetch ?? globalThis.fetch,
      log: this.log,
      ...(options.onKeyFetch ? { onFetch: options.onKeyFetch } : {}),
      ...(options.setTimer ? { setTimer: options.setTimer } : {}),
      ...(options.random ? { random: options.random } : {}),
    };
    for (const issuer of config.issuers) this.byIss.set(issuer.issuer, this.runtimeFor(issuer));
    this.cache = new TokenCache(cacheLimits(this.cfg), this.now);
    this.evictionLog = setInterval(() => this.logEvictions(), EVICTION_LOG_MS);
    this.evictionLog.unref();
    if (this.cfg.threads > 0) {
      const file = options.workerFile ?? new URL('./worker/verify.js', import.meta.url);
      // Fail at start rather than with a pool that respawns a worker that cannot load.
      if (!existsSync(fileURLToPath(file))) {
        throw new GatewayError('VERIFIER_WORKER_MISSING', `verifier worker ${fileURLToPath(file)} not found (run npm run build)`);
      }
      // Read at every dispatch: a reload may change all of these but `threads`.
      this.pool = new VerifyPool(file, () => this.cfg, { log: this.log, onTimeout: options.onTaskTimeout ?? (() => {}) });
    } else {
      this.pool = null;
    }
  }

  /** An issuer's key store, stopped by the verifier closing or by its own controller (a reload). */
  private runtimeFor(issuer: CompiledIssuer, cfg: CompiledConfig['verifier'] = this.cfg): IssuerRuntime {
    const stop = new AbortController();
    const store = new KeyStore(issuer, {
      ...this.storeOptions,
      cooldownMs: cfg.jwksCooldownMs,
      timeoutMs: cfg.jwksTimeoutMs,
      signal: AbortSignal.any([this.abort.signal, stop.signal]),
    });
    return { issuer, store, stop };
  }

  /** Whether a verification that started with this issuer runtime may still fill the cache (no reload replaced it). */
  private current(runtime: IssuerRuntime): boolean {
    return this.byIss.get(runtime.issuer.issuer) === runtime;
  }

  async reconfigure(next: CompiledConfig): Promise<VerifierReconfiguration> {
    const before = new Map([...this.byIss.values()].map((r) => [r.issuer.name, r]));
    const after = new Map<string, IssuerRuntime>();
    const kept: string[] = [];
    const replaced: string[] = [];
    const added: string[] = [];
    const fresh: IssuerRuntime[] = [];
    const cfg = next.verifier;
    for (const issuer of next.issuers) {
      const old = before.get(issuer.name);
      if (old !== undefined && sameSettings(old.issuer, issuer)) {
        after.set(issuer.issuer, old);
        kept.push(issuer.name);
        continue;
      }
      const runtime = this.runtimeFor(issuer, cfg);
      fresh.push(runtime);
      after.set(issuer.issuer, runtime);
      (old === undefined ? added : replaced).push(issuer.name);
    }
    const removed = [...before.keys()].filter((name) => !next.issuers.some((i) => i.name === name));
    const cacheResized = !sameCacheLimits(this.cfg, cfg);
    // As at start: the new key sets are fetched before they serve, so the first token of a
    // changed issuer does not wait for them (a failure is readiness's to report).
    await Promise.all(fresh.map((r) => r.store.load()));
    let settled = false;
    return {
      kept,
      replaced,
      added,
      removed,
      cacheResized,
      commit: () => {
        if (settled) return { cachedTokensDropped: 0 };
        settled = true;
        const gone = new Set([...replaced, ...removed]);
        for (const name of gone) before.get(name)!.stop.abort();
        this.byIss.clear();
        for (const [iss, runtime] of after) this.byIss.set(iss, runtime);
        for (const name of kept) before.get(name)!.store.retune({ cooldownMs: cfg.jwksCooldownMs, timeoutMs: cfg.jwksTimeoutMs });
        this.cfg = cfg;
        if (cacheResized) {
          this.logEvictions();
          this.cache = this.cache.withLimits(cacheLimits(cfg));
        }
        const changed = gone.size > 0 || added.length > 0;
        // A token being verified under an issuer's old settings must not be joined by a
        // request that arrives under the new ones.
        if (gone.size > 0) this.pending.clear();
        return { cachedTokensDropped: changed ? this.cache.forgetIssuers(gone) : 0 };
      },
      abandon: () => {
        if (settled) return;
        settled = true;
        for (const r of fresh) r.stop.abort();
      },
    };
  }

  /** The hot path: the token cache (src/authn/cache.ts), synchronous and allocation-free on a hit. */
  lookup(token: string): VerifyResult | undefined {
    return this.cache.lookup(token);
  }

  verify(token: string): Promise<VerifyResult> {
    if (this.closed) return Promise.resolve(UNAVAILABLE);
    if (token.length > this.cfg.maxTokenBytes) return Promise.resolve(TOO_LARGE);
    const cached = this.lookup(token);
    if (cached !== undefined) return Promise.resolve(cached);
    // One spelling per token (RFC 7515 §2, RFC 4648 §3.5), checked on a miss only: a
    // cached token passed it on its way in, so a hit does no per-character work. Not
    // negative-cached: the scan costs less than a cache entry, and a flood of garbage
    // must not push the remembered forgeries out.
    switch (jwsForm(token)) {
      case 'jws':
        break;
      case 'non_canonical':
        return Promise.resolve(MALFORMED);
      case 'opaque':
        // Not a JWS compact token: on a route with an introspecting issuer the
        // introspection stage (src/pipeline/stages/introspection.ts) answered it already.
        return Promise.resolve(MALFORMED);
    }
    return singleFlight(this.pending, token, () => this.verifyMiss(token));
  }

  inflight(token: string): boolean {
    return this.pending.has(token);
  }

  keys(issuer: string): KeyStore | undefined {
    for (const r of this.byIss.values()) if (r.issuer.name === issuer) return r.store;
    return undefined;
  }

  async start(): Promise<void> {
    await Promise.all([...this.byIss.values()].map((r) => r.store.load()));
  }

  readiness(): VerifierReadiness {
    const issuers: VerifierReadiness['issuers'] = {};
    let ready = true;
    for (const { issuer, store } of this.byIss.values()) {
      const s = store.status();
      issuers[issuer.name] = s;
      if (!s.ok) ready = false;
    }
    const pool = this.pool === null || this.closed ? POOL_OK : this.pool.health();
    if (!pool.ok) {
      ready = false;
      // Learn whether a worker answers again without waiting for traffic, which a
      // not-ready gateway may no longer get.
      this.pool?.probe();
    }
    return { ready, issuers, pool };
  }

  /**
   * One debug line per cache that lost entries since the last one: how many, and why
   * (`evict`: the cache was full; `expire`: negative TTL; `delete`: past exp or maxTtl).
   * Replacements of an entry by a newer one (`set`) are not evictions.
   */
  private logEvictions(): void {
    const counts = this.cache.takeEvictions();
    for (const cache of ['positive', 'negative'] as const) {
      const { evict, expire, delete: deleted } = counts[cache];
      if (evict + expire + deleted > 0) this.log('debug', 'token cache evictions', { cache, evicted: { evict, expire, delete: deleted } });
    }
  }


  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.evictionLog);
    this.logEvictions();
    this.abort.abort();
    for (const r of this.byIss.values()) r.stop.abort();
    await this.pool?.close();
    this.cache.clear();
  }

  stats(): VerifierStats {
    let keyFetches = 0;
    let keyFetchFailures = 0;
    for (const r of this.byIss.values()) {
      keyFetches += r.store.fetches;
      keyFetchFailures += r.store.failures;
    }
    return {
      cacheSize: this.cache.size,
      negativeSize: this.cache.negativeSize,
      queued: this.pool?.queued ?? 0,
      utilization: this.pool?.utilization ?? (this.inlineRunning > 0 ? 1 : 0),
      verifications: this.verifications,
      keyFetches,
      keyFetchFailures,
      pending: this.pending.size,
      timeouts: this.pool?.timeouts ?? 0,
    };
  }

  /** A canonical JWS seen for the first time: pick issuer and key here, verify in the pool. */
  private async verifyMiss(token: string): Promise<VerifyResult> {
    // Decoded without trust, only to find the issuer (`iss`) and its key (`kid`, `alg`);
    // everything is checked again, signature first, by jwtVerify. The nesting cap
    // applies here, before JSON.parse, and so to every token a worker ever sees.
    const dot1 = token.indexOf('.');
    const dot2 = token.indexOf('.', dot1 + 1);
    const header = decodeJsonSegment(token, 0, dot1);
    const payload = header === null ? null : decodeJsonSegment(token, dot1 + 1, dot2);
    // Remembered: decoding up to 64 KiB again on every replay would cost more than the entry.
    if (header === null || payload === null) return this.remember(token, MALFORMED);
    const iss = payload['iss'];
    const runtime = typeof iss === 'string' ? this.byIss.get(iss) : undefined;
    if (runtime === undefined) return UNKNOWN_ISSUER;
    const { issuer, store } = runtime;
    const alg = header['alg'];
    // RFC 8725 §3.1: `none` and HS* never reach a key, whatever the allowlist says.
    if (typeof alg !== 'string' || alg === 'none' || alg.startsWith('HS') || !issuer.algorithms.includes(alg)) return ALG_NOT_ALLOWED;
    const kid = header['kid'];
    if (kid !== undefined && typeof kid !== 'string') return MALFORMED;

    let key = store.select(alg, kid);
    // An unknown kid is how key rotation shows: refetch, at most once per cooldown for
    // the whole process. A kid-less token does not cause a fetch (nothing names a new key).
    if (key === NO_KEYS || (key === UNKNOWN_KID && kid !== undefined)) {
      await store.refresh();
      if (this.closed) return UNAVAILABLE;
      key = store.select(alg, kid);
    }
    if (key === NO_KEYS) return UNAVAILABLE; // never had keys: our problem, not the token's (503)
    if (key === KEY_MISMATCH) return this.current(runtime) ? this.remember(token, ALG_NOT_ALLOWED) : ALG_NOT_ALLOWED;
    if (key === UNKNOWN_KID) {
      // Cached only until a refetch could make the kid known (lru-cache expires an entry
      // once more than `ttl` ms have passed, hence the − 1).
      if (this.current(runtime)) this.cache.rememberFor(token, UNKNOWN_KID_FAILURE, Math.floor(Math.min(this.cfg.negativeTtlMs, store.cooldownLeft() - 1)));
      return UNKNOWN_KID_FAILURE;
    }
    return this.runTask(token, runtime, key, alg);
  }

  private async runTask(token: string, runtime: IssuerRuntime, key: StoredKey, alg: string): Promise<VerifyResult> {
    const issuer = runtime.issuer;
    let result: VerifyTaskResult;
    if (this.pool === null) {
      // threads: 0 — the same bound as the pool's queue, so a burst cannot pile up
      // unbounded WebCrypto work on the main thread either.
      if (this.inlineRunning >= this.cfg.maxQueue) return OVERLOADED;
      this.inlineRunning++;
      try {
        result = await verifyToken({
          token,
          jwk: key.jwk,
          keyId: key.id,
          alg,
          algorithms: issuer.algorithms,
          issuer: issuer.issuer,
          issuerName: issuer.name,
          claims: issuer.claims,
          audience: issuer.audience,
          clockToleranceSec: issuer.clockToleranceSec,
          typ: issuer.typ,
          nowMs: this.now(),
        });
      } finally {
        this.inlineRunning--;
      }
    } else {
      const answer = await this.pool.run(token, key, issuer, alg, this.now());
      // No answer from a worker: overloaded or unavailable (503), never cached.
      if ('code' in answer) return answer;
      result = answer;
    }
    this.verifications++;
    if (this.closed) return UNAVAILABLE;
    if (!result.ok) {
      if (result.reason === 'key_unusable') {
        this.log('error', 'signing key does not import', { issuer: issuer.name, kid: key.kid ?? null, error: result.detail });
        return UNAVAILABLE;
      }
      if (result.detail !== undefined) this.log('warn', 'unexpected verification error', { issuer: issuer.name, error: result.detail });
      const failure = tokenFailure(result.reason);
      // Judged by settings a reload has replaced meanwhile: answered, never remembered.
      return this.current(runtime) ? this.remember(token, failure) : failure;
    }
    if (!this.current(runtime)) return { ok: true, principal: sealPrincipal(result.principal) };
    return this.accept(token, issuer, result.principal);
  }

  /** Caches the verified claims (never a decision) until exp, at most maxTtl. */
  private accept(token: string, issuer: CompiledIssuer, received: Principal): VerifyResult {
    return this.cache.accept(token, sealPrincipal(received), issuer.clockToleranceSec);
  }

  private remember(token: string, failure: TokenFailure): TokenFailure {
    return this.cache.remember(token, failure);
  }
}
