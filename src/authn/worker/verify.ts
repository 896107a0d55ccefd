/**
 * The Piscina task: jose `jwtVerify` of tokens against the keys the main thread chose,
 * and the principal built from the verified claims. Runs in a worker thread (compiled
 * to dist/authn/worker/verify.js), or on the main thread when `verifier.threads` is 0:
 * the same code either way.
 *
 * The pool sends a {@link VerifyBatch}: several tokens in one message, all verified
 * concurrently (jose's WebCrypto calls run on libuv's thread pool, so the worker keeps
 * many in flight instead of waiting on one). Keys and issuer settings travel by number:
 * the main thread numbers each key of each loaded key set and each compiled issuer
 * once, a worker keeps the definitions it was sent, and a batch naming one it does not
 * hold (a fresh worker, a new key-set version) is answered {@link MISSING}, upon which
 * the main thread sends the batch again with the definitions attached. So a JWK crosses
 * to a worker once per key-set version, not once per token.
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

/** What a verification needs of its issuer: the same for every token of one compiled issuer. */
export interface IssuerDefinition {
  readonly algorithms: readonly string[];
  readonly issuer: string;
  /** The issuer's config name and claim paths, for the principal. */
  readonly issuerName: string;
  readonly claims: CompiledIssuer['claims'];
  readonly audience: readonly string[];
  readonly clockToleranceSec: number;
  /** Required `typ` (normalized), or null. */
  readonly typ: string | null;
}

/** One public key of a loaded key set. */
export interface KeyDefinition {
  /** The public JWK, reduced to its public members by the key store. */
  readonly jwk: JWK;
  /** RFC 7638 thumbprint of `jwk`: the identity imported keys are cached under. */
  readonly keyId: string;
}

/** One self-contained verification: what `threads: 0` runs, and what a worker also accepts alone. */
export interface VerifyTask extends IssuerDefinition, KeyDefinition {
  readonly token: string;
  /** The token's `alg`, already checked against the allowlist and the key's type. */
  readonly alg: string;
  /** The verifier's clock, so a worker judges `exp`/`nbf`/`iat` at the same instant as the main thread. */
  readonly nowMs: number;
}

/** One token of a batch; `key` and `issuer` are the numbers of definitions (see the top of this file). */
export interface BatchItem {
  readonly token: string;
  readonly key: number;
  readonly issuer: number;
  readonly alg: string;
  readonly nowMs: number;
}

/** Several verifications in one message, answered by one array of results in the same order. */
export interface VerifyBatch {
  readonly items: readonly BatchItem[];
  /** Definitions this batch refers to, attached when a worker answered {@link MISSING}. */
  readonly keys?: Readonly<Record<number, KeyDefinition>>;
  readonly issuers?: Readonly<Record<number, IssuerDefinition>>;
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

/** A batch's answer when it names a key or issuer this worker was never sent: send it again with the definitions. */
export const MISSING = 'missing' as const;

export type BatchAnswer = readonly VerifyTaskResult[] | typeof MISSING;

// Imported CryptoKeys by alg + thumbprint, shared by every key-set version that holds
// the same key (a refetch that changes nothing imports nothing). A WebCrypto key is
// bound to one algorithm (RSASSA-PKCS1-v1_5 vs RSA-PSS), so an RSA JWK imports once per alg.
const imported = new Map<string, CryptoKey>();
// The definitions this thread was sent, by number.
const keyDefs = new Map<number, KeyDefinition>();
const issuerDefs = new Map<number, IssuerDefinition>();
// Rotations and reloads only ever add a few of each; the bound is against a key set that
// churns. A definition dropped here is asked for again (MISSING), never guessed.
const DEFINITIONS_MAX = 512;

function keep<K, V>(map: Map<K, V>, key: K, value: V): void {
  if (map.size >= DEFINITIONS_MAX && !map.has(key)) map.clear();
  map.set(key, value);
}

async function keyFor(key: KeyDefinition, alg: string): Promise<CryptoKey> {
  const id = `${alg}|${key.keyId}`;
  let crypto = imported.get(id);
  if (crypto === undefined) {
    crypto = (await importJWK(key.jwk, alg)) as CryptoKey;
    keep(imported, id, crypto);
  }
  return crypto;
}

/**
 * Verifies every token of a batch at once (their signature checks overlap on libuv's
 * thread pool), after taking in the definitions it carries; {@link MISSING} when an item
 * names a definition this thread does not hold.
 */
export async function verifyBatch(batch: VerifyBatch): Promise<BatchAnswer> {
  if (batch.keys !== undefined) for (const [n, def] of Object.entries(batch.keys)) keep(keyDefs, Number(n), def);
  if (batch.issuers !== undefined) for (const [n, def] of Object.entries(batch.issuers)) keep(issuerDefs, Number(n), def);
  const items = batch.items;
  const work: Promise<VerifyTaskResult>[] = new Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    const key = keyDefs.get(item.key);
    const issuer = issuerDefs.get(item.issuer);
    if (key === undefined || issuer === undefined) return MISSING;
    work[i] = verifyWith(item.token, key, item.alg, issuer, item.nowMs);
  }
  return Promise.all(work);
}

/** The worker's entry: a batch, one self-contained task, or a probe. */
export default async function verifyTask(task: VerifyBatch | VerifyTask | ProbeTask): Promise<BatchAnswer | VerifyTaskResult | typeof PROBE_ANSWER> {
  if ('items' in task) return verifyBatch(task);
  if ('probe' in task) return PROBE_ANSWER;
  return verifyToken(task);
}

/** {@link verifyTask} for one self-contained task (the main thread calls it directly with threads 0). */
export function verifyToken(task: VerifyTask): Promise<VerifyTaskResult> {
  return verifyWith(task.token, task, task.alg, task, task.nowMs);
}

/**
 * Verifies one token: signature, `alg` allowlist, `iss`, `aud` (any of), `exp`
 * (required, RFC 9068 §2.2), `nbf` and `iat` with the clock tolerance, `typ` when
 * required (RFC 9068 §4: an ID token, typ `JWT`, is not an access token) and `crit`
 * (jose refuses every extension it does not implement, RFC 7515 §4.1.11); then builds
 * the principal (`sub` required, claims that can be rendered). Never throws: every
 * failure is a reason from the fixed vocabulary.
 */
async function verifyWith(token: string, keyDef: KeyDefinition, alg: string, issuer: IssuerDefinition, nowMs: number): Promise<VerifyTaskResult> {
  let key: CryptoKey;
  try {
    key = await keyFor(keyDef, alg);
  } catch (err) {
    return { ok: false, reason: 'key_unusable', detail: errorName(err) };
  }
  const options: JWTVerifyOptions = {
    issuer: issuer.issuer,
    audience: issuer.audience as string[],
    algorithms: issuer.algorithms as string[],
    clockTolerance: issuer.clockToleranceSec,
    requiredClaims: ['exp'],
    currentDate: new Date(nowMs),
  };
  if (issuer.typ !== null) options.typ = issuer.typ;
  let payload: Record<string, unknown>;
  try {
    payload = (await jwtVerify(token, key, options)).payload;
  } catch (err) {
    const reason = reasonFor(err, token);
    return reason === null ? { ok: false, reason: 'malformed', detail: errorName(err) } : { ok: false, reason };
  }
  // RFC 7519 §4.1.6: `iat` is when the token was issued; one issued later than now (past
  // the tolerance) is refused like an `nbf` in the future, with the same reason: it
  // becomes acceptable by the passage of time alone, so, like nbf, it is never
  // negative-cached. (jose checks a non-number `iat`, claim_invalid, but its future only
  // with maxTokenAge, which would make `iat` required.)
  const iat = payload['iat'];
  if (typeof iat === 'number' && iat > Math.floor(nowMs / 1000) + issuer.clockToleranceSec) return { ok: false, reason: 'not_yet_valid' };
  const principal = principalFrom(payload, { name: issuer.issuerName, claims: issuer.claims });
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
