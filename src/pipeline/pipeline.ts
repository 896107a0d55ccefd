/**
 * The request pipeline, in order. Each stage is one file's job (src/pipeline/stages/):
 * it reads and fills the request context (src/pipeline/context.ts) and either passes
 * the request on or answers it. Adding a step to every request is adding a stage to
 * one of these lists (docs/architecture.md, "Where each kind of change goes").
 *
 *   draining → framing → body → path → logout → route → method            every request
 *   → address limit → credentials → introspection → token → revocation → dpop
 *   → policy → subject limit                                             the route's own chain
 *   → forward (src/proxy/forward.ts)                                     the upstream
 *
 * A route's chain holds only the stages it needs (an `auth: none` route has no
 * credentials, token, revocation, DPoP or policy stage; a route without a limit has no
 * limit stage; only a route whose issuers include one with `introspection` has the
 * introspection stage), worked out once per route and state. The order is README "What
 * the gateway answers": path (400/404), the back-channel logout endpoint (200/400),
 * method (405), per-address rate limit (429), credentials (400/401), token (401, or 503
 * when introspection is down), revoked (401), DPoP (401), MFA (401), roles/scopes/groups
 * (403), per-subject rate limit (429), upstream (502/504).
 */
import type { CompiledRoute, GatewayState } from '../config/state.js';
import { forward } from '../proxy/forward.js';
import type { Answer } from './answer.js';
import { fail, guard } from './boundary.js';
import type { RequestContext } from './context.js';
import { NEXT, type Stage } from './stage.js';
import { body, draining, framing, method, path, route } from './stages/front.js';
import { addressLimit, subjectLimit } from './stages/limits.js';
import { policy } from './stages/policy.js';
import { credentials, token } from './stages/token.js';
import { introspection } from './stages/introspection.js';
import { revocation } from './stages/revocation.js';
import { dpop } from './stages/dpop.js';
import { logout } from './stages/logout.js';

/** Every request passes these, in this order, before it has a route. */
export const FRONT_STAGES: readonly Stage[] = Object.freeze([draining, framing, body, path, logout, route, method]);

/** Then these, in this order, each where the route needs it. */
export const ROUTE_STAGES: readonly Stage[] = Object.freeze([addressLimit, credentials, introspection, token, revocation, dpop, policy, subjectLimit]);

const chains = new WeakMap<CompiledRoute, readonly Stage[]>();

/** The stages of one route's chain (compiled routes belong to one state: a reload gets chains of its own). */
export function routeChain(state: GatewayState, r: CompiledRoute): readonly Stage[] {
  let chain = chains.get(r);
  if (chain === undefined) {
    chain = Object.freeze(ROUTE_STAGES.filter((s) => s.applies === undefined || s.applies(r, state)));
    chains.set(r, chain);
  }
  return chain;
}

/** Runs a request through the pipeline, from the first stage. */
export function handle(ctx: RequestContext): void {
  run(ctx, FRONT_STAGES, 0);
}

function run(ctx: RequestContext, chain: readonly Stage[], from: number): void {
  for (let i = from; i < chain.length; i++) {
    const result = chain[i]!.run(ctx);
    if (result === NEXT) continue;
    if (result instanceof Promise) {
      // The one place a request waits (a verification or introspection on a cache miss, a
      // shared replay store, a logout token's body): it resumes here.
      result.then(
        (settled) => resume(ctx, chain, i, settled),
        (err: unknown) => fail(ctx, err),
      );
      return;
    }
    ctx.responder.answer(result);
    return;
  }
  if (chain === FRONT_STAGES) run(ctx, routeChain(ctx.state, ctx.route!), 0);
  else forward(ctx);
}

function resume(ctx: RequestContext, chain: readonly Stage[], at: number, settled: typeof NEXT | Answer): void {
  guard(ctx, () => {
    if (ctx.responder.done) return; // the client went away meanwhile
    if (settled === NEXT) run(ctx, chain, at + 1);
    else ctx.responder.answer(settled);
  });
}
