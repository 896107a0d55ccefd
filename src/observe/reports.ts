/**
 * What a loop reports besides its audit lines: an exception that escaped a request's
 * handling, a promise chain that escaped every boundary, a request that finished without
 * a reason, and an address blocked for token spraying. Each is logged once and counted
 * (`mfa_gateway_internal_errors_total`, `mfa_gateway_spraying_blocks_total`), with the
 * message and stack only: never request data, which could hold a token. The main loop
 * (src/gateway.ts) and every front-end thread (src/threads/worker.ts, whose lines carry
 * `thread`) report through the same functions.
 */
import type { RequestContext } from '../pipeline/context.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

export interface Reports {
  /** An exception while handling one request (it was answered 500). */
  internalError(ctx: RequestContext | null, err: unknown): void;
  /** A rejection no request's boundary caught (the process keeps serving). */
  unhandledRejection(reason: unknown): void;
  /** A request finished without a reason: a gateway bug, recorded as `internal`. */
  missingReason(ctx: RequestContext): void;
  sprayingBlocked(client: string): void;
}

export function reportsTo(logger: Logger, metrics: Metrics, fields: Readonly<Record<string, unknown>> = {}): Reports {
  const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));
  const internalError = (ctx: RequestContext | null, err: unknown): void => {
    metrics.internalError();
    const e = asError(err);
    logger.error({ ...fields, request_id: ctx?.requestId ?? null, route: ctx?.route?.name ?? null, err: e.message, stack: e.stack }, 'internal error while handling a request');
  };
  return {
    internalError,
    unhandledRejection(reason) {
      metrics.internalError();
      const e = asError(reason);
      logger.error({ ...fields, err: e.message, stack: e.stack }, 'internal error: unhandled promise rejection');
    },
    missingReason: (ctx) => internalError(ctx, new Error('a request finished without a reason')),
    sprayingBlocked(client) {
      metrics.sprayingBlocked();
      logger.warn({ ...fields, client }, 'token spraying: address blocked');
    },
  };
}
