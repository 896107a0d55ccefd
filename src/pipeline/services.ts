import type { Runtime } from '../runtime.js';
import type { Verifier } from '../authn/types.js';
import type { RateLimits } from '../limits/limits.js';
import type { UpstreamPools } from '../proxy/pools.js';
import type { Metrics } from '../observe/metrics.js';
import type { RequestContext } from './context.js';
import type { Principal } from '../authz/claims.js';
import type { ProofInput, ProofResult } from '../dpop/proof.js';
import type { ReplayStore } from '../dpop/replay.js';
import type { IntrospectionResult } from '../introspection/client.js';
import type { RevocationEntry, RevocationInput, RevocationKind, RevocationStats } from '../revocation/list.js';
import type { AssertionJwks } from '../assertion/signer.js';

/**
 * What the stages use besides the request and the state: the parts of the process that
 * hold mutable state of their own (the token cache and verifier pool, rate-limit
 * counters, upstream connection pools) and where outcomes are reported. Built by
 * src/gateway.ts; a reload keeps them (or rebuilds the parts whose settings changed)
 * while the state is swapped.
 */
export interface Services extends SharedServices {
  /** This front end's own upstream pools. */
  readonly pools: UpstreamPools;
  /** Set when the gateway drains: new requests get 503 and a closed connection. */
  draining: boolean;
  /** A request is over (answered, streamed, failed or aborted): its audit line and metrics. Called once. */
  finished(ctx: RequestContext): void;
}

/**
 * The revocation list (src/revocation/list.ts): sessions, subjects and tokens refused
 * although valid. `check` is synchronous (the hot path: every request with a valid token),
 * so a shared list across threads or instances keeps a local copy it updates by `add`.
 */
export interface Revocations {
  check(p: Principal): RevocationEntry | null;
  add(input: RevocationInput, origin?: string): RevocationEntry;
  remove(issuer: string, kind: RevocationKind, value: string, origin?: string): boolean;
  list(): RevocationEntry[];
  stats(): RevocationStats;
}

/** One issuer's RFC 7662 introspection (src/introspection/client.ts): a synchronous cache look-up, then the asynchronous call. */
export interface Introspector {
  lookup(token: string): IntrospectionResult | undefined;
  introspect(token: string): Promise<IntrospectionResult>;
  /** True while a call about this very token runs (joining it costs the IdP nothing more). */
  inflight(token: string): boolean;
}

/** The DPoP checks' parts (RFC 9449): proof verification (synchronous, key imports cached by thumbprint) and server nonces. */
export interface DpopServices {
  verify(input: ProofInput): ProofResult;
  /** The server nonces (§8); null when no issuer has `dpopNonce: true`. */
  readonly nonces: { current(): string; check(value: string): boolean } | null;
}

/** The gateway's identity assertions (src/assertion/signer.ts): signed once per principal and upstream, then cached. */
export interface Assertions {
  assertionFor(principal: Principal, audience: string): string;
  jwks(): AssertionJwks;
}

/**
 * The parts of Services that are one per process, whatever the number of front ends
 * (src/gateway.ts builds them once): the verifier with its key sets, the rate-limit and
 * spraying counters (limits are per process), metrics, and the reports; and the token
 * lifecycle's state: the revocation list, the replay store, the introspection clients
 * (their caches) and the assertion signer (its cache). Each is behind a small interface,
 * so a part shared across threads or instances can stand in for it.
 */
export interface SharedServices {
  readonly runtime: Runtime;
  /** Null when no issuer is configured (every route is `auth: none`). */
  readonly verifier: Verifier | null;
  readonly limits: RateLimits;
  readonly metrics: Metrics;
  readonly revocations: Revocations;
  /**
   * Used DPoP proofs (RFC 9449 §11.1) and logout tokens (Back-Channel Logout 1.0 §2.6 step 8),
   * by prefixed keys. `remember` may answer with a promise (a store shared in Redis).
   */
  readonly replay: ReplayStore;
  readonly dpop: DpopServices;
  /** By issuer config name: the issuers with `introspection`. */
  readonly introspection: ReadonlyMap<string, Introspector>;
  /** Null when `identityAssertion.enabled` is false. */
  readonly assertions: Assertions | null;
  /** An exception escaped one request's handling: log it once with the request id, and count it. */
  internalError(ctx: RequestContext | null, err: unknown): void;
  /** An address was blocked for token spraying (logged once per block). */
  sprayingBlocked(client: string): void;
  /** An operational log line from a stage (a back-channel logout and its outcome); never token text. */
  log(level: 'info' | 'warn', msg: string, fields: Record<string, unknown>): void;
}
