/**
 * The stages every request passes before it has a route: draining, the request's own
 * framing, its body, its path. Their order follows README "What the gateway answers".
 */
import { answer, PLAIN } from '../answer.js';
import type { RequestContext } from '../context.js';
import { NEXT, type Stage } from '../stage.js';
import { RequestBody } from '../../proxy/request-body.js';
import { matchView, normalizePath } from '../../routes/normalize.js';
import { FAILPOINTS_ARMED, failpoint, failpointPath } from '../../failpoints.js';

/** A header block over this is answered 431 (RFC 6585 §5; uWS has no such limit to configure). */
const MAX_HEADER_BYTES = 16 * 1024;

const SHUTTING_DOWN = answer('shutting_down', { retryAfter: 1 });
const AMBIGUOUS_FRAMING = answer('bad_request', { description: 'Ambiguous message framing (RFC 9112 §6.3).' });
// RFC 9112 §3.2. (A request without Host never gets here: uWebSockets.js drops it; README, known limitations.)
const TWO_HOSTS = answer('bad_request', { description: 'More than one Host header (RFC 9112 §3.2).' });

/** While the gateway drains, new requests get 503 and a closed connection. */
export const draining: Stage = {
  name: 'draining',
  run: (ctx) => (ctx.services.draining ? SHUTTING_DOWN : NEXT),
};

/** Whether the request's framing can be trusted (RFC 9112 §6.3, §3.2) and its head is of a size we take. */
export const framing: Stage = {
  name: 'framing',
  run(ctx) {
    if (ctx.headerBytes > MAX_HEADER_BYTES) return PLAIN.headers_too_large;
    if (ctx.badLength || (ctx.chunked && ctx.contentLength !== undefined)) return AMBIGUOUS_FRAMING;
    if (ctx.hostCount > 1) return TWO_HOSTS;
    return NEXT;
  },
};

/** Attaches the request body (uWS wants onData before any async work); 413 for a declared length over the limit. */
export const body: Stage = {
  name: 'body',
  run(ctx) {
    if (!ctx.hasBody) return NEXT;
    const limits = ctx.state.body;
    if (limits.maxBytes > 0 && ctx.contentLength !== undefined && Number(ctx.contentLength) > limits.maxBytes) return PLAIN.payload_too_large;
    ctx.body = new RequestBody(ctx, limits);
    return NEXT;
  },
};

/** Normalizes the path once (README "Paths and headers"); routes, policy and the upstream all see this result. */
export const path: Stage = {
  name: 'path',
  run(ctx) {
    const p = normalizePath(ctx.rawPath, ctx.state.routeTable.pathParameters);
    // RFC 9112 §3.2: a fragment is never part of a request target.
    if (p === null || (ctx.query !== undefined && ctx.query.includes('#'))) return PLAIN.bad_path;
    ctx.path = p;
    // Routes, policy and the audit line see the path without `;` parameters (they may carry a session id).
    ctx.matchPath = matchView(p);
    if (FAILPOINTS_ARMED) failpointPath(ctx.matchPath);
    return NEXT;
  },
};

/** The longest matching route (404 when none); a path with `;` parameters only on a route that allows them. */
export const route: Stage = {
  name: 'route',
  run(ctx) {
    const r = ctx.state.routeTable.match(ctx.matchPath!);
    if (r === undefined) return PLAIN.not_found;
    if (typeof ctx.path !== 'string' && !r.allowPathParameters) return PLAIN.bad_path;
    ctx.route = r;
    failpoint('handler');
    return NEXT;
  },
};

/** 405 with `Allow` for a method the route does not list (RFC 9110 §15.5.6). */
export const method: Stage = {
  name: 'method',
  run(ctx: RequestContext) {
    const r = ctx.route!;
    return r.methods !== null && !r.methods.has(ctx.method) ? r.methodNotAllowed! : NEXT;
  },
};
