import { REASONS, type Reason } from '../reasons.js';
import type { RequestContext } from '../pipeline/context.js';
import { tokenHash, type Audit, type AuditEntry } from './audit.js';
import type { Metrics } from './metrics.js';
import type { Logger } from './log.js';

/**
 * What a finished request leaves behind: one audit line and its metrics, both built
 * here from the request context and nowhere else (README "Audit log, metrics and
 * abuse protection" documents the fields).
 *
 * `reason` is the context's; a request that finished without one would be a gateway bug
 * that is reported (and recorded as `internal`), never quietly called `ok`.
 */
export function recordRequest(ctx: RequestContext, audit: Audit, metrics: Metrics, logger: Logger, onMissingReason: (ctx: RequestContext) => void): void {
  let reason: Reason;
  if (ctx.reason === null) {
    onMissingReason(ctx);
    reason = 'internal';
  } else reason = ctx.reason;
  const info = REASONS[reason];
  const dispatched = ctx.dispatchedAt > 0;
  const decision = info.decision === 'dispatched' ? (dispatched ? 'allow' : 'deny') : info.decision;
  const status = ctx.status === 0 ? info.status : ctx.status;
  const route = ctx.route;
  const p = ctx.principal;
  const totalMs = performance.now() - ctx.startedAt;
  const entry: AuditEntry = {
    request_id: ctx.requestId,
    client: ctx.client,
    method: ctx.method,
    path: ctx.matchPath,
    route: route?.name ?? null,
    upstream: route?.upstream ?? null,
    status,
    // allow = the policy let it through to the upstream (whatever the upstream then did).
    decision,
    reason,
    issuer: p?.issuer ?? null,
    subject: p?.subject ?? null,
    amr: p?.amr ?? null,
    acr: p?.acr ?? null,
    token_hash: ctx.token === null ? null : tokenHash(ctx.token, p),
    cache: ctx.cache,
    total_ms: totalMs,
    verify_ms: ctx.verifyMs,
    upstream_ms: ctx.upstreamMs,
  };
  audit.record(entry, p);
  metrics.request(route?.name ?? null, status, reason, totalMs / 1000, decision);
  if (decision === 'deny' && logger.isLevelEnabled('debug')) logger.debug({ request_id: ctx.requestId, route: entry.route, reason, status }, 'request refused');
  if (ctx.upstreamMs !== null && route !== null) metrics.upstream(route.upstream, ctx.upstreamMs / 1000);
}
