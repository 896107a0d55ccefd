import type { CompiledIssuer, RoutePolicy } from '../config/state.js';
import type { Principal } from './claims.js';

/**
 * The MFA judgement of the policy stage: pure functions of (principal, route policy,
 * issuer, now). Nothing here allocates: they run on every request, cache hits included
 * (a cached token can grow too old for a `maxAge` route between two requests).
 */

/** RFC 8176 §2 factor categories, as bits, so "two different categories" is a popcount. */
const KNOW = 1;
const HAVE = 2;
const ARE = 4;

/**
 * RFC 8176 §2 methods that name one factor of one category. Methods that name no single
 * category (`mfa`, `mca`, `user`, `pop`, `rba`, `geo`, `wia`, `fed`…) are not counted:
 * `pop` or `wia` can stand for a key that a PIN or a fingerprint unlocked, or for none.
 */
export const FACTOR_CATEGORY: ReadonlyMap<string, number> = new Map([
  ['pwd', KNOW],
  ['pin', KNOW],
  ['kba', KNOW],
  ['otp', HAVE],
  ['hwk', HAVE],
  ['swk', HAVE],
  ['sms', HAVE],
  ['tel', HAVE],
  ['sc', HAVE],
  ['fpt', ARE],
  ['face', ARE],
  ['iris', ARE],
  ['retina', ARE],
  ['vbm', ARE],
]);

/**
 * Why a token fails the MFA stage. `auth_time_future` is reported with reason
 * `auth_too_old` (the vocabulary has no separate word; the remedy, a fresh login, is the same).
 */
export type MfaFailure = 'mfa_required' | 'acr_insufficient' | 'auth_time_missing' | 'auth_too_old' | 'auth_time_future';

/** True when `amr` holds factors from at least two RFC 8176 categories (e.g. `pwd` + `otp`). */
export function twoCategories(amr: readonly string[]): boolean {
  let mask = 0;
  for (let i = 0; i < amr.length; i++) {
    mask |= FACTOR_CATEGORY.get(amr[i]!) ?? 0;
    // Any two bits set: mask is not 0 and not a power of two.
    if ((mask & (mask - 1)) !== 0) return true;
  }
  return false;
}

function anyIn(values: readonly string[], accepted: readonly string[]): boolean {
  for (let i = 0; i < values.length; i++) if (accepted.includes(values[i]!)) return true;
  return false;
}

/**
 * Whether the token proves multi-factor authentication: an `amr` value the route or the
 * issuer counts as MFA, factors from two categories, or an `acr` either counts as MFA.
 * An `amr` that is not an array of strings arrives as undefined and counts as absent.
 */
export function mfaSatisfied(p: Principal, policy: RoutePolicy, issuer: CompiledIssuer): boolean {
  const amr = p.amr;
  if (amr !== undefined && (anyIn(amr, policy.mfa.amr) || anyIn(amr, issuer.mfaEvidence.amr) || twoCategories(amr))) return true;
  const acr = p.acr;
  return acr !== undefined && (policy.mfa.acr.includes(acr) || issuer.mfaEvidence.acr.includes(acr));
}

/**
 * The whole MFA stage for an `auth: mfa` route, in order: MFA, the route's required
 * `acr` (step-up, RFC 9470), then `auth_time` against the route's `maxAge`.
 * Returns null when the token passes.
 */
export function checkMfa(p: Principal, policy: RoutePolicy, issuer: CompiledIssuer, nowSec: number): MfaFailure | null {
  if (!mfaSatisfied(p, policy, issuer)) return 'mfa_required';
  const required = policy.requiredAcr;
  if (required.length > 0 && (p.acr === undefined || !required.includes(p.acr))) return 'acr_insufficient';
  const authTime = p.authTime;
  // A missing auth_time fails maxAge (OIDC Core §3.1.2.1: max_age needs it; README "MFA and access policy").
  if (authTime === undefined) return 'auth_time_missing';
  // Clock skew is tolerated for an auth_time slightly ahead of our clock, never to
  // stretch maxAge: an auth_time further ahead cannot be trusted to measure an age.
  if (authTime > nowSec + issuer.clockToleranceSec) return 'auth_time_future';
  if (nowSec - authTime > policy.mfa.maxAgeSec) return 'auth_too_old';
  return null;
}
