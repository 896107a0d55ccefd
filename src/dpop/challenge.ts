/**
 * `WWW-Authenticate: DPoP …` values (RFC 9449 §7.1). The auth-params are quoted as the
 * Bearer challenge's are (src/authz/challenge.ts: RFC 9110 §5.6.4 quoted-strings, nothing
 * that could split a header), in the order realm, error, error_description, algs.
 */
import { bearerChallenge } from '../authz/challenge.js';

export interface DpopChallengeParams {
  /** Space-separated into `algs`: the proof algorithms accepted (RFC 9449 §7.1). */
  readonly algs: readonly string[];
  readonly realm?: string;
  /** `invalid_dpop_proof`, `use_dpop_nonce`, or a RFC 6750 §3.1 code; absent when the request had no credentials. */
  readonly error?: string;
  readonly description?: string;
}

/** An algorithm name is a JOSE token (RFC 7518 §3.1), never anything to quote. */
const ALG_NAME = /^[A-Za-z0-9._-]{1,32}$/;

/**
 * @example dpopChallenge({ algs: ['ES256', 'EdDSA'] }) // 'DPoP algs="ES256 EdDSA"'
 * @example dpopChallenge({ algs: ['ES256'], error: 'invalid_dpop_proof', description: 'The DPoP proof signature is invalid.' })
 * // 'DPoP error="invalid_dpop_proof", error_description="The DPoP proof signature is invalid.", algs="ES256"'
 */
export function dpopChallenge(p: DpopChallengeParams): string {
  // "Bearer" and its params; the params are the same quoted-strings under the DPoP scheme.
  const params = bearerChallenge({
    ...(p.realm !== undefined ? { realm: p.realm } : {}),
    ...(p.error !== undefined ? { error: p.error } : {}),
    ...(p.description !== undefined ? { description: p.description } : {}),
  }).slice('Bearer'.length);
  const algs = p.algs.filter((a) => ALG_NAME.test(a)).join(' ');
  const tail = algs === '' ? '' : `algs="${algs}"`;
  if (params === '') return tail === '' ? 'DPoP' : `DPoP ${tail}`;
  return tail === '' ? `DPoP${params}` : `DPoP${params}, ${tail}`;
}
