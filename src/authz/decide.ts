import type { CompiledIssuer, RoutePolicy } from '../config/state.js';
import type { PolicyReason } from '../reasons.js';
import { bearerChallenge, type BearerChallengeParams } from './challenge.js';
import type { Principal } from './claims.js';
import { checkMfa, type MfaFailure } from './mfa.js';
import { checkRbac, missing, type RbacFailure } from './rbac.js';

/**
 * The policy decision for one request: allow, or deny with a reason from the one
 * vocabulary (src/reasons.ts) that the response, the audit line and the metrics all use.
 */
export type DenyReason = PolicyReason;

export interface Allow {
  readonly allow: true;
}

/** A refusal, in the shape the pipeline answers with (src/pipeline/answer.ts `Answer`). */
export interface Deny {
  readonly allow: false;
  readonly status: 401 | 403;
  /** OAuth error code used in the JSON body's "error" and in the challenge */
  readonly error: 'invalid_token' | 'insufficient_user_authentication' | 'insufficient_scope';
  readonly reason: DenyReason;
  /** error_description: public; names claims and route requirements, never token content. */
  readonly description: string;
  /** The full WWW-Authenticate header value. */
  readonly challenge: string;
}

/** The one allow answer, shared and frozen: the allow path allocates nothing. */
export const ALLOW: Allow = Object.freeze({ allow: true as const });

/**
 * Decides one request. Order (README "What the gateway answers"): issuer allowed on the route (401
 * `invalid_token`), then for `auth: mfa` the MFA stage (401
 * `insufficient_user_authentication`, RFC 9470 §3), then roles / scopes / groups (403
 * `insufficient_scope`, RFC 6750 §3.1). `auth: none` never needs a decision.
 *
 * Deny answers depend only on the route policy and the realm (a scope deny also on
 * which of the route's scopes are missing), so they are built once per policy and
 * reused: the same object comes back for the same (policy, reason).
 *
 * @example
 * const d = decide(principal, route.policy, issuer, Date.now() / 1000, 'mfa-gateway');
 * if (!d.allow) reply(d.status, d.error, d.description, d.challenge);
 */
export function decide(p: Principal, policy: RoutePolicy, issuer: CompiledIssuer, nowSec: number, realm: string): Allow | Deny {
  if (policy.auth === 'none') return ALLOW;
  if (policy.issuers !== null && !policy.issuers.has(p.issuer)) return denyFor(policy, realm, 'issuer_not_allowed');
  if (policy.auth === 'mfa') {
    const failure = checkMfa(p, policy, issuer, nowSec);
    if (failure !== null) return denyFor(policy, realm, failure);
  }
  const rbac = checkRbac(p, policy);
  if (rbac === null) return ALLOW;
  return rbac === 'scope_missing' ? scopeDeny(policy, realm, missing(p.scopes, policy.scopes)) : denyFor(policy, realm, rbac);
}

type Variant = 'issuer_not_allowed' | MfaFailure | Exclude<RbacFailure, 'scope_missing'>;

interface Memo {
  readonly realm: string;
  readonly denies: Map<string, Deny>;
}

/** Keyed by the compiled policy object: a config reload brings new policies, and the old memos go with them. */
const memos = new WeakMap<RoutePolicy, Memo>();

/** A scope deny is keyed by its missing scopes; bounded, as a route with many scopes has many subsets. */
const MAX_MEMO_ENTRIES = 64;

function memoFor(policy: RoutePolicy, realm: string): Memo {
  let memo = memos.get(policy);
  if (memo === undefined || memo.realm !== realm) {
    memo = { realm, denies: new Map() };
    memos.set(policy, memo);
  }
  return memo;
}

function remember(memo: Memo, key: string, deny: Deny): Deny {
  if (memo.denies.size < MAX_MEMO_ENTRIES) memo.denies.set(key, deny);
  return deny;
}

function denyFor(policy: RoutePolicy, realm: string, variant: Variant): Deny {
  const memo = memoFor(policy, realm);
  return memo.denies.get(variant) ?? remember(memo, variant, buildDeny(policy, realm, variant));
}

function scopeDeny(policy: RoutePolicy, realm: string, lacking: readonly string[]): Deny {
  const scope = lacking.join(' ');
  const key = `scope:${scope}`;
  const memo = memoFor(policy, realm);
  const known = memo.denies.get(key);
  if (known !== undefined) return known;
  // RFC 6750 §3: `scope` names what the token lacks, so a client can ask for it.
  const description = `The access token lacks the required scope${lacking.length === 1 ? '' : 's'} ${scope}.`;
  return remember(
    memo,
    key,
    freezeDeny(403, 'insufficient_scope', 'scope_missing', description, {
      realm,
      error: 'insufficient_scope',
      description,
      scope,
    }),
  );
}

function buildDeny(policy: RoutePolicy, realm: string, variant: Variant): Deny {
  switch (variant) {
    case 'issuer_not_allowed': {
      const description = 'Tokens from this issuer are not accepted on this route.';
      return freezeDeny(401, 'invalid_token', 'issuer_not_allowed', description, { realm, error: 'invalid_token', description });
    }
    case 'mfa_required':
      return stepUp(policy, realm, 'mfa_required', 'Multi-factor authentication is required.', false);
    case 'acr_insufficient':
      return stepUp(policy, realm, 'acr_insufficient', `A stronger authentication is required (acr ${policy.requiredAcr.join(' or ')}).`, false);
    case 'auth_time_missing':
      return stepUp(policy, realm, 'auth_time_missing', 'The access token does not say when the user authenticated (auth_time); a fresh authentication is required.', true);
    case 'auth_too_old':
      return stepUp(policy, realm, 'auth_too_old', `The authentication is older than the ${policy.mfa.maxAgeSec} seconds this route allows; a fresh authentication is required.`, true);
    case 'auth_time_future':
      return stepUp(policy, realm, 'auth_too_old', 'The authentication time (auth_time) is in the future; a fresh authentication is required.', true);
    case 'role_missing': {
      const description = `The access token lacks a required role (one of ${policy.roles.join(', ')}).`;
      return freezeDeny(403, 'insufficient_scope', 'role_missing', description, { realm, error: 'insufficient_scope', description });
    }
    case 'role_claim_invalid': {
      const description = 'The roles claim of the access token is not a string or an array of strings.';
      return freezeDeny(403, 'insufficient_scope', 'role_missing', description, { realm, error: 'insufficient_scope', description });
    }
    case 'group_missing': {
      const description = `The access token lacks a required group (one of ${policy.groups.join(', ')}).`;
      return freezeDeny(403, 'insufficient_scope', 'group_missing', description, { realm, error: 'insufficient_scope', description });
    }
    case 'group_claim_invalid': {
      const description = 'The groups claim of the access token is not a string or an array of strings.';
      return freezeDeny(403, 'insufficient_scope', 'group_missing', description, { realm, error: 'insufficient_scope', description });
    }
  }
}

/**
 * RFC 9470 §3 step-up challenge. `acr_values` lists what would satisfy the route (its
 * required `acr`, else the `mfa.acr` alternatives; RFC 9470 §3), so a client can restart
 * the authorization request with it; it is also sent with an auth_time failure, because
 * a fresh login that forgot the route's acr would only fail again. `max_age` (seconds)
 * goes with auth_time failures only.
 */
function stepUp(policy: RoutePolicy, realm: string, reason: DenyReason, description: string, withMaxAge: boolean): Deny {
  const acr = policy.requiredAcr.length > 0 ? policy.requiredAcr : policy.mfa.acr;
  return freezeDeny(401, 'insufficient_user_authentication', reason, description, {
    realm,
    error: 'insufficient_user_authentication',
    description,
    acrValues: acr.join(' '),
    ...(withMaxAge ? { maxAge: policy.mfa.maxAgeSec } : {}),
  });
}

function freezeDeny(
  status: 401 | 403,
  error: Deny['error'],
  reason: DenyReason,
  description: string,
  challenge: BearerChallengeParams,
): Deny {
  return Object.freeze({ allow: false as const, status, error, reason, description, challenge: bearerChallenge(challenge) });
}
