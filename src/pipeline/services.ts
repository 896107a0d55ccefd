import type { Runtime } from '../runtime.js';
import type { Verifier } from '../authn/types.js';
import type { RateLimits } from '../limits/limits.js';
import type { UpstreamPools } from '../proxy/pools.js';
import type { Metrics } from '../observe/metrics.js';
import type { RequestContext } from './context.js';

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
 * The parts of Services that are one per process, whatever the number of front ends
 * (src/gateway.ts builds them once): the verifier with its key sets, the rate-limit and
 * spraying counters (limits are per process), metrics, and the reports.
 */
export interface SharedServices {
  readonly runtime: Runtime;
  /** Null when no issuer is configured (every route is `auth: none`). */
  readonly verifier: Verifier | null;
  readonly limits: RateLimits;
  readonly metrics: Metrics;
  /** An exception escaped one request's handling: log it once with the request id, and count it. */
  internalError(ctx: RequestContext | null, err: unknown): void;
  /** An address was blocked for token spraying (logged once per block). */
  sprayingBlocked(client: string): void;
}
