import type { RoutePolicy } from '../config/state.js';
import type { Principal } from './claims.js';

/**
 * Roles, scopes and groups: pure, allocation-free on an allow. The values were read
 * at the issuer's claim paths once, when the token was verified (claims.ts); `null`
 * there means the claim had a type that denies (README "MFA and access policy").
 */

export type RbacFailure = 'role_missing' | 'role_claim_invalid' | 'scope_missing' | 'group_missing' | 'group_claim_invalid';

/** Any-of: true when `need` is empty, or `have` holds one of `need`. A `null` claim never matches. */
export function hasAny(have: readonly string[] | null, need: readonly string[]): boolean {
  if (need.length === 0) return true;
  if (have === null) return false;
  for (let i = 0; i < need.length; i++) if (have.includes(need[i]!)) return true;
  return false;
}

/** All-of: true when every value of `need` is in `have` (vacuously for an empty `need`). */
export function hasAll(have: readonly string[] | null, need: readonly string[]): boolean {
  if (need.length === 0) return true;
  if (have === null) return false;
  for (let i = 0; i < need.length; i++) if (!have.includes(need[i]!)) return false;
  return true;
}

/** The values of `need` that `have` lacks (all of them for a `null` claim). Deny path only. */
export function missing(have: readonly string[] | null, need: readonly string[]): string[] {
  return have === null ? [...need] : need.filter((v) => !have.includes(v));
}

/**
 * Roles (any-of), scopes (all-of), groups (any-of), in that order; an empty requirement
 * is no check, so a malformed claim the route does not ask about denies nothing.
 * Returns null when the token passes.
 */
export function checkRbac(p: Principal, policy: RoutePolicy): RbacFailure | null {
  if (!hasAny(p.roles, policy.roles)) return p.roles === null ? 'role_claim_invalid' : 'role_missing';
  if (!hasAll(p.scopes, policy.scopes)) return 'scope_missing';
  if (!hasAny(p.groups, policy.groups)) return p.groups === null ? 'group_claim_invalid' : 'group_missing';
  return null;
}
