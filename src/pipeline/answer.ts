import { REASONS, type Reason } from '../reasons.js';

/**
 * What a stage answers instead of passing the request on: a reason from the vocabulary
 * (src/reasons.ts decides status, `error` and default description) and what this one
 * answer adds. Answers a route or a reason always gives the same way are built once per
 * config (src/config/compile.ts, `answers`) and handed out frozen, so refusing a request
 * allocates nothing.
 */
export interface Answer {
  readonly reason: Reason;
  /** Replaces the reason's default `error_description`. */
  readonly description?: string | undefined;
  /** The `WWW-Authenticate` value. */
  readonly challenge?: string | undefined;
  /** `Retry-After` seconds (RFC 9110 §10.2.3). */
  readonly retryAfter?: number | undefined;
  /** The `Allow` value of a 405 (RFC 9110 §15.5.6). */
  readonly allowMethods?: string | undefined;
  /** A `DPoP-Nonce` for the client's next proof (RFC 9449 §8.1), with a `use_dpop_nonce` answer. */
  readonly dpopNonce?: string | undefined;
}

/** A frozen answer. */
export function answer(reason: Reason, extras: Omit<Answer, 'reason'> = {}): Answer {
  return Object.freeze({ reason, ...extras });
}

/** The same answer for a reason, whenever no extras are needed (one object per reason). */
export const PLAIN: { readonly [K in Reason]: Answer } = Object.freeze(
  Object.fromEntries(Object.keys(REASONS).map((r) => [r, answer(r as Reason)])),
) as { readonly [K in Reason]: Answer };

/** Retry-After: 1 answers, one per reason that carries it (503s of the verifier and the pools). */
export const RETRY_SOON: { readonly [K in Reason]?: Answer } = Object.freeze(
  Object.fromEntries(
    Object.entries(REASONS)
      .filter(([, info]) => info.retryAfter)
      .map(([r]) => [r, answer(r as Reason, { retryAfter: 1 })]),
  ),
);
