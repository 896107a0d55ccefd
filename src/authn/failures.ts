import { REASONS } from '../reasons.js';
import type { TokenFailure, TokenFailureReason } from './types.js';

/**
 * The one shared, frozen failure object per reason: answering a failure allocates
 * nothing. Token failures take their public description from the vocabulary
 * (src/reasons.ts); the verifier's own two troubles say what failed in the words a
 * developer needs (the 503's `error_description`).
 */
const VERIFIER_DESCRIPTIONS = { verifier_unavailable: 'token verification unavailable', overloaded: 'token verification overloaded' } as const;

type FailureReason = TokenFailure['reason'];

const FAILURES = Object.freeze(
  Object.fromEntries([
    ...Object.entries(REASONS)
      .filter(([, info]) => info.stage === 'token')
      .map(([reason, info]) => [reason, Object.freeze({ ok: false, code: 'invalid_token', reason, description: info.description })]),
    ...Object.entries(VERIFIER_DESCRIPTIONS).map(([reason, description]) => [reason, Object.freeze({ ok: false, code: reason, reason, description })]),
  ]),
) as Readonly<Record<FailureReason, TokenFailure>>;

/**
 * @example
 * tokenFailure('expired') // → { ok: false, code: 'invalid_token', reason: 'expired', description: 'token expired' }
 */
export function tokenFailure(reason: TokenFailureReason | 'verifier_unavailable' | 'overloaded'): TokenFailure {
  return FAILURES[reason];
}
