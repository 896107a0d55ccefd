/**
 * Rate limits as stages (README "Audit log, metrics and abuse protection"): per client
 * address right after the route and method, before any credentials are read; per
 * subject after the policy allowed the request. 429 with Retry-After (RFC 6585 §4).
 */
import type { CompiledRoute, GatewayState } from '../../config/state.js';
import { answer } from '../answer.js';
import { NEXT, type Stage } from '../stage.js';

/** The rule of a route for one kind: its own (null = off), else the global one. */
function ruleOf(state: GatewayState, route: CompiledRoute, kind: 'address' | 'subject'): unknown {
  const own = state.rateLimit.routes.get(route.name)?.[kind];
  return own === undefined ? state.rateLimit[kind] : own;
}

const limited = (retryAfter: number) => answer('rate_limited', { retryAfter });

export const addressLimit: Stage = {
  name: 'address-limit',
  applies: (route, state) => ruleOf(state, route, 'address') !== null,
  run(ctx) {
    const wait = ctx.services.limits.checkAddress(ctx.route!.name, ctx.client);
    if (wait === 0) return NEXT;
    ctx.services.metrics.rateLimited('address');
    return limited(wait);
  },
};

export const subjectLimit: Stage = {
  name: 'subject-limit',
  applies: (route, state) => route.policy.auth !== 'none' && ruleOf(state, route, 'subject') !== null,
  run(ctx) {
    const p = ctx.principal!;
    const wait = ctx.services.limits.checkSubject(ctx.route!.name, p.issuer, p.subject);
    if (wait === 0) return NEXT;
    ctx.services.metrics.rateLimited('subject');
    return limited(wait);
  },
};
