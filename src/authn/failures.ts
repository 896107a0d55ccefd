import type { TokenFailure, TokenFailureReason } from './types.js';

/**
 * Public `error_description` text for each failure reason (RFC 6750 §3: the
 * description is for the developer; it names the reason and never echoes the token).
 * Every text stays inside the quoted-string characters RFC 6750 §3 allows (no `"` or `\`).
 */
export const FAILURE_DESCRIPTIONS: Readonly<Record<TokenFailure['reason'], string>> = Object.freeze({
  malformed: 'token malformed',
  too_large: 'token too large',
  unknown_issuer: 'unknown issuer',
  alg_not_allowed: 'algorithm not allowed',
  bad_signature: 'signature invalid',
  unknown_kid: 'unknown signing key',
  expired: 'token expired',
  not_yet_valid: 'token not yet valid',
  exp_missing: 'token has no expiry',
  wrong_audience: 'audience not accepted',
  wrong_typ: 'token type not accepted',
  crit_unsupported: 'unsupported critical header',
  claim_invalid: 'claim invalid',
  sub_missing: 'token has no subject',
  claim_unrenderable: 'a claim value is not valid Unicode text',
  issuer_not_allowed: 'issuer not allowed on this route',
  verifier_unavailable: 'token verification unavailable',
  overloaded: 'token verification overloaded',
});

function make(reason: TokenFailure['reason']): TokenFailure {
  const code: TokenFailure['code'] =
    reason === 'overloaded' ? 'overloaded' : reason === 'verifier_unavailable' ? 'verifier_unavailable' : 'invalid_token';
  return Object.freeze({ ok: false, code, reason, description: FAILURE_DESCRIPTIONS[reason] });
}

const FAILURES = Object.fromEntries(
  (Object.keys(FAILURE_DESCRIPTIONS) as TokenFailure['reason'][]).map((r) => [r, make(r)]),
) as Record<TokenFailure['reason'], TokenFailure>;

/**
 * The one shared, frozen failure object for a reason: answering a failure allocates nothing.
 *
 * @example
 * tokenFailure('expired') // → { ok: false, code: 'invalid_token', reason: 'expired', description: 'token expired' }
 */
export function tokenFailure(reason: TokenFailureReason | 'verifier_unavailable' | 'overloaded'): TokenFailure {
  return FAILURES[reason];
}
