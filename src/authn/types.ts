import type { JWK } from 'jose';
import type { Principal } from '../authz/claims.js';
import type { KeyStatus, KeyStore } from './jwks.js';
import type { CompiledConfig } from '../config/state.js';

/** Reasons a token is refused: the `token` rows of the vocabulary (src/reasons.ts). */
export type { TokenFailureReason } from '../reasons.js';
import type { TokenFailureReason } from '../reasons.js';

export interface TokenFailure {
  readonly ok: false;
  /** `invalid_token` → 401; `verifier_unavailable` / `overloaded` → 503 with Retry-After. */
  readonly code: 'invalid_token' | 'verifier_unavailable' | 'overloaded';
  readonly reason: TokenFailureReason | 'verifier_unavailable' | 'overloaded';
  /** Public text for `error_description`; never contains the token. */
  readonly description: string;
}

export interface TokenSuccess {
  readonly ok: true;
  readonly principal: Principal;
}

export type VerifyResult = TokenSuccess | TokenFailure;

/** How a verification was answered, for the audit line and metrics. */
export type CacheOutcome = 'hit' | 'miss' | 'negative';

export interface Verifier {
  /**
   * Synchronous cache look-up (the hot path): a cached success, a cached failure
   * (negative cache), or undefined on a miss. `exp` is re-checked on every hit.
   */
  lookup(token: string): VerifyResult | undefined;
  /** Full verification (worker pool, or main thread when threads = 0); fills the cache. */
  verify(token: string): Promise<VerifyResult>;
  /** True while a verification of this very token runs: a verify() now joins it and costs no signature work. */
  inflight(token: string): boolean;
  /** Fetches every issuer's keys once; resolves even when a fetch fails (readiness reports it). */
  start(): Promise<void>;
  /**
   * Readiness: false while some issuer has never had a usable key set, or while the
   * worker pool has stopped completing verifications (`pool`; always ok with threads 0).
   */
  readiness(): VerifierReadiness;
  /**
   * Prepares to follow a new config (a reload, src/reload.ts): issuers whose settings did
   * not change keep their key set and cached tokens; for new issuers and changed ones a
   * key set is loaded now, as at start (a failed load does not refuse the reload:
   * readiness names it). Nothing in use changes until `commit`. `verifier.threads`
   * cannot change (the reload refuses that first).
   */
  reconfigure(next: CompiledConfig): Promise<VerifierReconfiguration>;
  close(): Promise<void>;
  /**
   * The key set of an issuer (by config name), for checking what else that issuer signs
   * (logout tokens, OpenID Connect Back-Channel Logout 1.0 §2.6); undefined for an unknown name.
   */
  keys?(issuer: string): Pick<KeyStore, 'select' | 'refresh'> | undefined;
  /**
   * The same, where the key set lives on another thread (a front-end thread asks the
   * main thread's, src/threads/verifier.ts): a key look-up by `alg` and `kid`, refreshing
   * on an unknown kid as keyStoreSelector does; undefined for an unknown name.
   */
  keySelector?(issuer: string): ((alg: string, kid: string | undefined) => Promise<JWK | undefined>) | undefined;
  /**
   * Gauges for /metrics. `verifications` counts jose verifications that ran (cache misses
   * that reached a signature check), `keyFetches` key-set loads attempted and
   * `keyFetchFailures` the failed ones, `timeouts` the pool tasks that timed out, all
   * since start; `pending` is the distinct tokens being verified right now (single-flight entries).
   */
  stats?(): VerifierStats;
}

export interface VerifierReadiness {
  ready: boolean;
  /** Each issuer's key set: its state, and the real cause of its last failure (src/authn/jwks.ts). */
  issuers: Record<string, KeyStatus>;
  pool: { ok: boolean; error?: string };
}

export interface VerifierStats {
  /** Validated tokens in the positive cache (bounded by `verifier.cache.max`). */
  cacheSize: number;
  /** Failed tokens in the negative cache (bounded by `verifier.cache.negativeMax`). */
  negativeSize: number;
  /** Verifications waiting for a worker thread. */
  queued: number;
  /** Piscina's utilization (0-1); with threads 0, 1 while a verification runs. */
  utilization: number;
  verifications: number;
  keyFetches: number;
  keyFetchFailures: number;
  pending: number;
  /** Pool verifications abandoned after `verifier.taskTimeout`, since start. */
  timeouts: number;
}

/** A prepared verifier change (Verifier.reconfigure): issuer config names by what happens to them. */
export interface VerifierReconfiguration {
  readonly kept: readonly string[];
  readonly replaced: readonly string[];
  readonly added: readonly string[];
  readonly removed: readonly string[];
  /** `verifier.cache` limits changed: verified tokens move to a cache with the new limits. */
  readonly cacheResized: boolean;
  /**
   * Puts the new settings in force, synchronously: replaced and removed issuers' key sets
   * stop (their fetches and refreshes end), their cached tokens and every remembered
   * failure are forgotten, and verifications still running for them are answered but not
   * cached. Returns how many cached tokens were dropped.
   */
  commit(): { readonly cachedTokensDropped: number };
  /** Another part refused the reload: the key sets loaded for it are dropped. */
  abandon(): void;
}
