/**
 * The Piscina task: one jose `jwtVerify` of one token against the one key the main
 * thread chose, and the principal built from the verified claims. Runs in a worker
 * thread (compiled to dist/authn/worker/verify.js), or on the main thread when
 * `verifier.threads` is 0: the same code either way.
 *
 * The worker never fetches anything and never reads key material from the token:
 * the main thread hands it the JWK (RFC 8725 §3.10: `jku`, `x5u`, `jwk`, `x5c` are
 * not trusted to find keys). It answers with the small principal the policy needs,
 * never the payload: whatever the token carries besides never has to survive a
 * structured clone back to the main thread (Node reports a clone that fails there only
 * as a `messageerror` event, and the task would never settle).
 */
import { decodeProtectedHeader, importJWK, jwtVerify, type CryptoKey, type JWK, type JWTVerifyOptions } from 'jose';
import { principalFrom, type Principal } from '../../authz/claims.js';
import type { CompiledIssuer } from '../../config/state.js';
import type { TokenFailureReason } from '../types.js';

/** What the main thread sends for one verification (structured-cloned to the worker). */
export interface VerifyTask {
  readonly token: string;
  /** The public JWK, reduced to its public members by the key store. */
  readonly jwk: JWK;
  /** RFC 7638 thumbprint of `jwk`: the identity imported keys are cached under. */
  readonly keyId: string;
  /** The token's `alg`, already checked against the allowlist and the key's type. */
  readonly alg: string;
  readonly algorithms: readonly string[];
  readonly issuer: string;
  /** The issuer's config name and claim paths, for the principal. */
  readonly issuerName: string;
  readonly claims: CompiledIssuer['claims'];
  readonly audience: readonly string[];
  readonly clockToleranceSec: number;
  /** Required `typ` (normalized), or null. */
  readonly typ: string | null;
  /** The verifier's clock, so a worker judges `exp`/`nbf`/`iat` at the same instant as the main thread. */
  readonly nowMs: number;
}

/**
 * A task that verifies nothing: the verifier sends one when the pool looks stalled, to
 * learn whether a worker answers again (readiness recovers without waiting for traffic).
 */
export interface ProbeTask {
  readonly probe: true;
}

export type VerifyTaskResult =
  | { readonly ok: true; readonly principal: Principal }
  | {
      readonly ok: false;
      /** `key_unusable`: the JWK would not import (the key set's fault, not the token's). */
      readonly reason: TokenFailureReason | 'key_unusable';
      /** Error name/code for the log when jose failed in an unexpected way; never token text. */
      readonly detail?: string;
    };

/** The answer to a {@link ProbeTask}. */
export const PROBE_ANSWER = 'probe' as const;

// Imported CryptoKeys by alg + thumbprint. A WebCrypto key is bound to one algorithm
// (RSASSA-PKCS1-v1_5 vs RSA-PSS), so the same RSA JWK imports once per alg.
const imported = new Map<string, CryptoKey>();
const IMPORTED_MAX = 512;

async function keyFor(task: VerifyTask): Promise<CryptoKey> {
  const id = `${task.alg}|${task.keyId}`;
  let key = imported.get(id);
  if (key === undefined) {
    key = (await importJWK(task.jwk, task.alg)) as CryptoKey;
    // Rotations only ever add a few keys; the bound is against a key set that churns.
    if (imported.size >= IMPORTED_MAX) imported.clear();
    imported.set(id, key);
  }
  return key;
}

/**
 * Verifies one token: signature, `alg` allowlist, `iss`, `aud` (any of), `exp`
 * (required, RFC 9068 §2.2), `nbf` and `iat` with the clock tolerance, `typ` when
 * required (RFC 9068 §4: an ID token, typ `JWT`, is not an access token) and `crit`
 * (jose refuses every extension it does not implement, RFC 7515 §4.1.11); then builds
 * the principal (`sub` required, claims that can be rendered). Never throws: every
 * failure is a reason from the fixed vocabulary.
 */
export default async function verifyTask(task: VerifyTask | ProbeTask): Promise<VerifyTaskResult | typeof PROBE_ANSWER> {
  if ('probe' in task) return PROBE_ANSWER;
  return verifyToken(task);
}

/** {@link verifyTask} for a real task (the main thread calls it directly with threads 0). */
export async function verifyToken(task: VerifyTask): Promise<VerifyTaskResult> {
  let key: CryptoKey;
  try {
    key = await keyFor(task);
  } catch (err) {
    return { ok: false, reason: 'key_unusable', detail: errorName(err) };
  }
  const options: JWTVerifyOptions = {
    issuer: task.issuer,
    audience: task.audience as string[],
    algorithms: task.algorithms as string[],
    clockTolerance: task.clockToleranceSec,
    requiredClaims: ['exp'],
    currentDate: new Date(task.nowMs),
  };
  if (task.typ !== null) options.typ = task.typ;
  let payload: Record<string, unknown>;
  try {
    payload = (await jwtVerify(task.token, key, options)).payload;
  } catch (err) {
    const reason = reasonFor(err, task.token);
    return reason === null ? { ok: false, reason: 'malformed', detail: errorName(err) } : { ok: false, reason };
  }
  // RFC 7519 §4.1.6: `iat` is when the token was issued; one issued later than now (past
  // the tolerance) is refused like an `nbf` in the future, with the same reason: it
  // becomes acceptable by the passage of time alone, so, like nbf, it is never
  // negative-cached. (jose checks a non-number `iat`, claim_invalid, but its future only
  // with maxTokenAge, which would make `iat` required.)
  const iat = payload['iat'];
  if (typeof iat === 'number' && iat > Math.floor(task.nowMs / 1000) + task.clockToleranceSec) return { ok: false, reason: 'not_yet_valid' };
  const principal = principalFrom(payload, { name: task.issuerName, claims: task.claims });
  return typeof principal === 'string' ? { ok: false, reason: principal } : { ok: true, principal };
}

/** Maps jose's error `code` (and `claim`/`reason` for claim failures) onto the vocabulary; null = unexpected. */
function reasonFor(err: unknown, token: string): TokenFailureReason | null {
  const e = err as { code?: unknown; claim?: unknown; reason?: unknown };
  switch (e?.code) {
    case 'ERR_JWT_EXPIRED':
      return 'expired';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      switch (e.claim) {
        case 'exp':
          return e.reason === 'missing' ? 'exp_missing' : 'claim_invalid';
        case 'nbf':
          return e.reason === 'check_failed' ? 'not_yet_valid' : 'claim_invalid';
        case 'aud':
          return 'wrong_audience';
        case 'typ':
          return 'wrong_typ';
        case 'iss':
          // The issuer was chosen by this very `iss`, so this cannot differ; kept for completeness.
          return 'unknown_issuer';
        default:
          return 'claim_invalid';
      }
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'bad_signature';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'alg_not_allowed';
    // jose validates `crit` first of all (RFC 7515 §4.1.11): an unknown extension is
    // JOSENotSupported, a malformed `crit` list JWSInvalid.
    case 'ERR_JOSE_NOT_SUPPORTED':
      return hasCrit(token) ? 'crit_unsupported' : 'alg_not_allowed';
    case 'ERR_JWS_INVALID':
      return hasCrit(token) ? 'crit_unsupported' : 'malformed';
    case 'ERR_JWT_INVALID':
      return 'malformed';
    default:
      return null;
  }
}

function hasCrit(token: string): boolean {
  try {
    return decodeProtectedHeader(token).crit !== undefined;
  } catch {
    return false;
  }
}

function errorName(err: unknown): string {
  const e = err as { name?: unknown; code?: unknown };
  return `${typeof e?.name === 'string' ? e.name : 'Error'}${typeof e?.code === 'string' ? ` ${e.code}` : ''}`;
}
