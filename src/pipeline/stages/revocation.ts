/**
 * Revoked tokens (README "Revocation and back-channel logout"): right after the token is
 * known valid (a cache hit, a verification, or an introspection answer), the revocation
 * list is asked whether a logout (OpenID Connect Back-Channel Logout 1.0 §2.7) or an
 * operator (`POST /revocations`) ended its session, its subject or the token itself.
 * A cached token is refused on the very next request: the cache holds claims, never a
 * decision. Synchronous and allocation-free: three Map look-ups, none while the list is
 * empty (src/revocation/list.ts).
 */
import { NEXT, type Stage } from '../stage.js';

export const revocation: Stage = {
  name: 'revocation',
  applies: (route) => route.policy.auth !== 'none',
  run(ctx) {
    if (ctx.services.revocations.check(ctx.principal!) === null) return NEXT;
    ctx.services.metrics.revokedRequest();
    return ctx.state.answers.tokenFailure.revoked;
  },
};
