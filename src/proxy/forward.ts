import type { RequestContext } from '../pipeline/context.js';
import { guard } from '../pipeline/boundary.js';
import { isTrusted } from '../server/clientip.js';
import { upstreamPath } from '../routes/table.js';
import { UpstreamCall } from './upstream.js';

/**
 * The last step of every allowed request: the upstream path (the normalized path, the
 * route's prefix stripped if it says so, the upstream's base path prepended), the header
 * list (src/proxy/headers.ts) with the identity assertion when it is on, the request body
 * once it is ready (a small body is read whole first: src/proxy/request-body.ts), and
 * the dispatch.
 */
export function forward(ctx: RequestContext): void {
  const state = ctx.state;
  const route = ctx.route!;
  const principal = ctx.principal;
  // A claim no header can carry (not well-formed Unicode) must not pass as "no claim":
  // the verifier refuses such tokens before caching them; this is the second line.
  if (principal !== null && state.rewriter.identityFor(principal) === null) {
    ctx.responder.answer(state.answers.tokenFailure.claim_unrenderable);
    return;
  }
  const pool = ctx.services.pools.get(route.upstream);
  const target = upstreamPath(route, pool.upstream.basePath, ctx.path!);
  const headers = state.rewriter.rewrite(
    ctx.headers,
    ctx.connection,
    ctx.xff,
    ctx.host,
    {
      clientAddress: ctx.remote,
      trustedPeer: state.trusted !== null && isTrusted(state.trusted, ctx.remote),
      proto: state.proto,
      requestId: ctx.requestId,
      forwardAuthorization: route.forwardAuthorization,
      forwarded: ctx.forwarded,
    },
    principal,
  );
  const assertions = ctx.services.assertions;
  // README "Identity assertions": signed once per principal and upstream, then cached.
  if (principal !== null && assertions !== null) headers.push(state.assertionHeader, assertions.assertionFor(principal, route.upstream));
  const path = ctx.query === undefined ? target : `${target}?${ctx.query}`;
  const body = ctx.body;
  if (body !== null && !body.ready) {
    // No upstream connection waits on a slow client: dispatch once the body is ready.
    body.whenReady(() => guard(ctx, () => dispatch(ctx, path, headers)));
    return;
  }
  dispatch(ctx, path, headers);
}

function dispatch(ctx: RequestContext, path: string, headers: string[]): void {
  if (ctx.responder.done) return;
  const pool = ctx.services.pools.get(ctx.route!.upstream);
  const body = ctx.body;
  new UpstreamCall(ctx).start(pool, {
    path,
    method: ctx.method as 'GET',
    headers,
    ...(body !== null ? { body: body.dispatchBody() } : {}),
  });
}
