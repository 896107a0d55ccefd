/**
 * Opaque access tokens (RFC 7662, README "Opaque tokens (introspection)"): a token that
 * is not a three-segment JWS, on a route whose allowed issuers include the one with
 * `introspection` (`check` refuses a route that allows two), is asked about at that
 * issuer's introspection endpoint. An active answer becomes the principal the rest of the
 * pipeline reads exactly as a JWT's (revocation, DPoP, MFA and roles); an inactive one is
 * 401 `inactive`; no trustworthy answer is 503 `temporarily_unavailable`, never an allow.
 *
 * Answers are cached by the client (an active one until min(`exp`, `cacheTtl`), an
 * inactive one for `verifier.cache.negativeTtl`): a cached answer is settled here
 * synchronously, with no promise; only a miss waits for the IdP. A miss counts toward the
 * spraying guard as a verification does (an unknown opaque token costs the IdP a request).
 */
import { jwsForm } from '../../authn/extract.js';
import type { IntrospectionResult } from '../../introspection/client.js';
import { RETRY_SOON, type Answer } from '../answer.js';
import type { RequestContext } from '../context.js';
import { NEXT, type Stage, type StageResult } from '../stage.js';
import { refuse, spraying } from './token.js';

export const introspection: Stage = {
  name: 'introspection',
  applies: (route) => route.introspection !== null,
  run(ctx): StageResult {
    // A JWT the token cache knows (valid or remembered as bad) is the token stage's.
    if (ctx.principal !== null || ctx.verdict !== null) return NEXT;
    const token = ctx.token!;
    if (jwsForm(token) !== 'opaque') return NEXT;
    const services = ctx.services;
    const client = services.introspection.get(ctx.route!.introspection!)!;
    const cached = client.lookup(token);
    if (cached !== undefined) {
      ctx.cache = cached.ok ? 'hit' : 'negative';
      services.metrics.cache(ctx.cache);
      return settle(ctx, cached, true);
    }
    ctx.cache = 'miss';
    services.metrics.cache('miss');
    if (!client.inflight(token)) {
      const wait = services.limits.admitVerification(ctx.client);
      if (wait > 0) return spraying(ctx, wait);
      ctx.sprayAdmitted = true;
    }
    const t0 = performance.now();
    return client.introspect(token).then((result) => {
      ctx.verifyMs = performance.now() - t0;
      const inactive = !result.ok && result.reason === 'inactive';
      services.metrics.verification(ctx.verifyMs / 1000, result.ok ? 'valid' : inactive ? 'invalid' : 'error');
      if (ctx.sprayAdmitted) {
        ctx.sprayAdmitted = false;
        if (services.limits.settleVerification(ctx.client, inactive)) services.sprayingBlocked(ctx.client);
      }
      return settle(ctx, result, false);
    });
  },
};

/** The answer as the pipeline acts on it; `count`: an inactive token not yet counted toward spraying. */
function settle(ctx: RequestContext, result: IntrospectionResult, count: boolean): typeof NEXT | Answer {
  if (result.ok) {
    ctx.principal = result.principal;
    return NEXT;
  }
  if (result.reason === 'inactive') return refuse(ctx, result.detail === 'binding_unsupported' ? 'binding_unsupported' : 'inactive', count);
  return RETRY_SOON.temporarily_unavailable!;
}
