/**
 * Credentials and the token: find the access token (RFC 6750 §2.1, or the DPoP scheme of
 * RFC 9449 §7.1), look it up in the token cache, keep a sprayer's unknown tokens away
 * from the verifier, and verify the rest (a cache miss goes to the worker pool).
 *
 * The hot path is a cache hit: extraction, one look-up, and on to the policy, with no
 * promise and no per-byte work on the token (the b64token scan runs on a miss only:
 * every cached token passed it on its way in).
 */
import { bearerCandidate, dpopCandidate, isB64Token, MALFORMED_BEARER } from '../../authn/extract.js';
import type { TokenFailureReason } from '../../reasons.js';
import { answer, RETRY_SOON } from '../answer.js';
import type { RequestContext } from '../context.js';
import { NEXT, type Stage, type StageResult } from '../stage.js';
import { failpoint } from '../../failpoints.js';

const authenticated = (route: { policy: { auth: string } }) => route.policy.auth !== 'none';

/** The bearer token and what the cache knows of it; a token the cache holds as valid is settled here. */
export const credentials: Stage = {
  name: 'credentials',
  applies: authenticated,
  run(ctx) {
    const state = ctx.state;
    let cred = bearerCandidate(ctx.authorization, ctx.authCount, state.verifier.maxTokenBytes);
    if (cred.kind === 'none' && ctx.authorization !== undefined) {
      // RFC 9449 §7.1: `Authorization: DPoP <token>`; the DPoP stage checks its proof.
      cred = dpopCandidate(ctx.authorization, ctx.authCount, state.verifier.maxTokenBytes);
      ctx.dpopScheme = cred.kind !== 'none';
    }
    if (cred.kind === 'none') return state.answers.credentialsMissing;
    if (cred.kind === 'token') {
      const cached = ctx.services.verifier!.lookup(cred.token);
      if (cached !== undefined && cached.ok) {
        ctx.token = cred.token;
        ctx.cache = 'hit';
        ctx.services.metrics.cache('hit');
        ctx.verdict = cached;
        ctx.principal = cached.principal;
        return NEXT;
      }
      if (cached !== undefined) ctx.verdict = cached;
    }
    // Everything from here costs verification work or is an invalid token.
    const blocked = ctx.services.limits.blocked(ctx.client);
    // A token the cache holds as valid passed above even from a blocked address: the guard
    // stops verification work, and one sprayer behind a shared NAT must not lock out everyone there.
    if (blocked > 0) return spraying(ctx, blocked);
    if (cred.kind === 'too_large') return refuse(ctx, 'too_large', true);
    if (cred.kind === 'invalid_request') return state.answers.invalidRequest.get(cred.description)!;
    if (ctx.verdict === null && !isB64Token(cred.token)) return state.answers.invalidRequest.get(MALFORMED_BEARER)!;
    // Only now is the token the request's: a blocked address's line carries no token hash.
    ctx.token = cred.token;
    return NEXT;
  },
};

/** Verifies a token the cache did not hold as valid: a remembered failure at once, a miss in the worker pool. */
export const token: Stage = {
  name: 'token',
  applies: authenticated,
  run(ctx): StageResult {
    if (ctx.principal !== null) return NEXT; // a cache hit
    const cached = ctx.verdict;
    if (cached !== null) {
      ctx.cache = 'negative';
      ctx.services.metrics.cache('negative');
      return settle(ctx, cached, true);
    }
    ctx.cache = 'miss';
    ctx.services.metrics.cache('miss');
    const services = ctx.services;
    const tokenText = ctx.token!;
    // A verification joining one already running for this very token costs nothing more;
    // any other is counted before it starts, so a concurrent burst cannot outrun the guard.
    if (!services.verifier!.inflight(tokenText)) {
      const wait = services.limits.admitVerification(ctx.client);
      if (wait > 0) return spraying(ctx, wait);
      ctx.sprayAdmitted = true;
    }
    const t0 = performance.now();
    return services.verifier!.verify(tokenText).then((result) => {
      ctx.verifyMs = performance.now() - t0;
      services.metrics.verification(ctx.verifyMs / 1000, result.ok ? 'valid' : result.code === 'invalid_token' ? 'invalid' : 'error');
      if (ctx.sprayAdmitted) {
        ctx.sprayAdmitted = false;
        // `unknown_kid` cost no signature work (and a key rotation must not become a
        // lockout); overload and unavailability are the gateway's, not the client's.
        const invalid = !result.ok && result.code === 'invalid_token' && result.reason !== 'unknown_kid';
        if (services.limits.settleVerification(ctx.client, invalid)) services.sprayingBlocked(ctx.client);
      }
      failpoint('after-verify', ctx.matchPath ?? '');
      ctx.verdict = result;
      return settle(ctx, result, false);
    });
  },
};

/** The verdict as the pipeline acts on it; `count`: a failure not yet counted toward spraying. */
function settle(ctx: RequestContext, result: NonNullable<RequestContext['verdict']>, count: boolean): typeof NEXT | ReturnType<typeof answer> {
  if (result.ok) {
    ctx.principal = result.principal;
    return NEXT;
  }
  if (result.code !== 'invalid_token') {
    // The verifier's own trouble (503, Retry-After): its description says which.
    return result.description === undefined ? RETRY_SOON[result.code]! : answer(result.code, { retryAfter: 1, description: result.description });
  }
  return refuse(ctx, result.reason as TokenFailureReason, count);
}

/** 401 invalid_token; `count`: this failure has not been counted toward spraying yet. */
export function refuse(ctx: RequestContext, reason: TokenFailureReason, count: boolean): ReturnType<typeof answer> {
  if (count && reason !== 'unknown_kid' && ctx.services.limits.invalidToken(ctx.client)) ctx.services.sprayingBlocked(ctx.client);
  return ctx.state.answers.tokenFailure[reason];
}

export function spraying(ctx: RequestContext, retryAfter: number): ReturnType<typeof answer> {
  ctx.services.metrics.rateLimited('spraying');
  return answer('token_spraying', { retryAfter });
}
