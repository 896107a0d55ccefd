import { decide } from '../../authz/decide.js';
import { NEXT, type Stage } from '../stage.js';

/**
 * The policy of the route for a valid token (README "MFA and access policy"): issuer
 * allowed on the route, MFA evidence (RFC 8176 `amr`, `acr`, `auth_time`; a failure is
 * the RFC 9470 step-up challenge), then roles / scopes / groups (403 insufficient_scope,
 * RFC 6750 §3.1). Pure: the same principal, route and time always decide the same way.
 */
export const policy: Stage = {
  name: 'policy',
  applies: (route) => route.policy.auth !== 'none',
  run(ctx) {
    const p = ctx.principal!;
    const state = ctx.state;
    const d = decide(p, ctx.route!.policy, state.issuerByName.get(p.issuer)!, ctx.services.runtime.now() / 1000, state.server.realm);
    return d.allow ? NEXT : d;
  },
};
