/**
 * Validation of a `logout_token` (OpenID Connect Back-Channel Logout 1.0 §2.6), which an
 * OP POSTs to the gateway's back-channel logout URI when a user's session ends there.
 * A valid one becomes revocation-list entries (./list.ts): the session's (`sid`) or the
 * user's (`sub`) tokens issued up to the logout are refused from then on.
 *
 * Every failure is answered `400` with `{"error":"invalid_request"}` (§2.8: "If the logout
 * request was invalid … the RP MUST respond with HTTP 400 Bad Request"); a success with
 * `200` (`Cache-Control: no-store`). The caller checks `jti` for replay (§2.6 step 8; a
 * ../dpop/replay.ts store, remembered until `exp`).
 */
import { compactVerify, importJWK, type CryptoKey, type JWK } from 'jose';
import { KEY_MISMATCH, NO_KEYS, UNKNOWN_KID, type KeyStore } from '../authn/jwks.js';
import { decodeCompact, isNumericDate, typIs } from '../jwt/compact.js';
import type { RevocationInput } from './list.js';

/** §2.4: the one event a logout token carries. */
export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/** A logout token longer than this is refused unread (oidc-provider's RS256 ones are about 700 characters). */
export const MAX_LOGOUT_TOKEN_CHARS = 16_384;

export type LogoutTokenFailureReason =
  | 'too_large'
  /** Not a compact JWS with JSON header and payload objects (an encrypted one included: not supported). */
  | 'malformed'
  /** `typ` present and not `logout+jwt` (§2.4 recommends it; older OPs send none, which is accepted). */
  | 'wrong_typ'
  | 'alg_not_allowed'
  /** No key of the issuer's key set fits the header's `alg` and `kid`. */
  | 'unknown_key'
  /** §2.6 step 3. */
  | 'bad_signature'
  /** §2.6 step 3: `iss` is not the issuer. */
  | 'wrong_issuer'
  /** §2.6 step 3: `aud` names none of the accepted audiences (the gateway's client_id at the OP). */
  | 'wrong_audience'
  /** §2.6 step 3 (as for ID tokens, OIDC Core §3.1.3.7): `iat` absent or not a number. */
  | 'iat_missing'
  /** `iat` later than now (beyond the clock tolerance). */
  | 'iat_in_future'
  /** §2.4: `exp` is REQUIRED. */
  | 'exp_missing'
  | 'expired'
  /** §2.4: `jti` is REQUIRED. */
  | 'jti_missing'
  /** §2.6 step 5: no `events` object with the back-channel logout member holding an object. */
  | 'events_invalid'
  /** §2.6 step 6: neither `sub` nor `sid`. */
  | 'sub_sid_missing'
  /** §2.6 step 7: a `nonce` (which would make it an ID token). */
  | 'nonce_present'
  /** `sub` or `sid` present but not a non-empty string. */
  | 'claim_invalid';

export interface LogoutTokenFailure {
  readonly ok: false;
  readonly reason: LogoutTokenFailureReason;
  /** Public text for `error_description`; never token text. */
  readonly description: string;
}

export interface LogoutToken {
  readonly ok: true;
  /** The issuer's config name. */
  readonly issuer: string;
  /** The token's `iss`. */
  readonly iss: string;
  readonly sub?: string;
  readonly sid?: string;
  /** Seconds since the epoch (the OP's clock at logout). */
  readonly iat: number;
  readonly jti: string;
  readonly exp: number;
}

/**
 * The key for a header's `alg` and `kid`, from the issuer's configured key set (never
 * from the token, RFC 8725 §3.10), or undefined when there is none.
 */
export type KeySelector = (alg: string, kid: string | undefined) => JWK | undefined | Promise<JWK | undefined>;

export interface LogoutTokenOptions {
  /** The issuer's config name (what revocation entries name). */
  readonly issuerName: string;
  /** The exact `iss` expected. */
  readonly issuer: string;
  /** `aud` must contain one of these: the client_id the OP knows the gateway by. */
  readonly audiences: readonly string[];
  /** Signature algorithms accepted (the issuer's allowlist). */
  readonly algorithms: readonly string[];
  readonly selectKey: KeySelector;
  readonly nowMs: number;
  /** Allowed clock skew, seconds (for `exp` and a future `iat`). */
  readonly clockToleranceSec: number;
}

const DESCRIPTIONS: Readonly<Record<LogoutTokenFailureReason, string>> = Object.freeze({
  too_large: 'The logout token is too large.',
  malformed: 'The logout token is not a signed JWT.',
  wrong_typ: 'The logout token typ is not logout+jwt.',
  alg_not_allowed: 'The logout token algorithm is not allowed.',
  unknown_key: 'The logout token is signed with an unknown key.',
  bad_signature: 'The logout token signature is invalid.',
  wrong_issuer: 'The logout token issuer is not accepted.',
  wrong_audience: 'The logout token audience is not accepted.',
  iat_missing: 'The logout token has no valid iat.',
  iat_in_future: 'The logout token iat is in the future.',
  exp_missing: 'The logout token has no valid exp.',
  expired: 'The logout token has expired.',
  jti_missing: 'The logout token has no jti.',
  events_invalid: 'The logout token has no back-channel logout event.',
  sub_sid_missing: 'The logout token has neither sub nor sid.',
  nonce_present: 'The logout token must not contain a nonce.',
  claim_invalid: 'The logout token sub or sid is not a string.',
});

const FAILURES = Object.fromEntries(
  (Object.keys(DESCRIPTIONS) as LogoutTokenFailureReason[]).map((reason) => [reason, Object.freeze({ ok: false as const, reason, description: DESCRIPTIONS[reason] })]),
) as unknown as Readonly<Record<LogoutTokenFailureReason, LogoutTokenFailure>>;

/**
 * Validates a logout token (§2.6): signature with the issuer's key, `iss`, `aud`, `iat`,
 * `exp`, `jti`, the event, `sub` and/or `sid`, no `nonce`, `typ`. Never throws.
 *
 * @example
 * const lt = await validateLogoutToken(form.get('logout_token'), { issuerName: 'corp', issuer: 'https://idp',
 *   audiences: ['gateway'], algorithms: ['RS256'], selectKey: keyStoreSelector(store), nowMs: now(), clockToleranceSec: 30 });
 * if (lt.ok) for (const e of revocationsForLogout(lt, 'session')) list.add(e);
 */
export async function validateLogoutToken(token: unknown, o: LogoutTokenOptions): Promise<LogoutToken | LogoutTokenFailure> {
  const decoded = decodeCompact(token, MAX_LOGOUT_TOKEN_CHARS);
  if (typeof decoded === 'string') return FAILURES[decoded];
  const { header, payload: c } = decoded;
  if (header['typ'] !== undefined && !typIs(header['typ'], 'logout+jwt')) return FAILURES.wrong_typ;
  const alg = header['alg'];
  // Asymmetric only: a MAC would need a secret shared with the OP, which the gateway has not.
  if (typeof alg !== 'string' || alg === 'none' || alg.startsWith('HS') || !o.algorithms.includes(alg)) return FAILURES.alg_not_allowed;
  const kid = header['kid'];
  if (kid !== undefined && typeof kid !== 'string') return FAILURES.malformed;

  let jwk: JWK | undefined;
  try {
    jwk = await o.selectKey(alg, kid);
  } catch {
    jwk = undefined;
  }
  if (jwk === undefined) return FAILURES.unknown_key;
  let key: CryptoKey;
  try {
    key = (await importJWK(jwk, alg)) as CryptoKey;
  } catch {
    return FAILURES.unknown_key;
  }
  try {
    await compactVerify(token as string, key, { algorithms: [alg] });
  } catch (err) {
    return (err as { code?: unknown }).code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' ? FAILURES.bad_signature : FAILURES.malformed;
  }

  // From here on the claims are the OP's own.
  if (c['iss'] !== o.issuer) return FAILURES.wrong_issuer;
  const aud = c['aud'];
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  if (!audiences.some((a) => typeof a === 'string' && o.audiences.includes(a))) return FAILURES.wrong_audience;
  const nowSec = o.nowMs / 1000;
  const iat = c['iat'];
  if (!isNumericDate(iat)) return FAILURES.iat_missing;
  // Both comparisons are written so that a NaN clock or tolerance refuses instead of accepting.
  if (!(iat <= nowSec + o.clockToleranceSec)) return FAILURES.iat_in_future;
  const exp = c['exp'];
  if (!isNumericDate(exp)) return FAILURES.exp_missing;
  if (!(exp > nowSec - o.clockToleranceSec)) return FAILURES.expired;
  const jti = c['jti'];
  if (typeof jti !== 'string' || jti.length === 0) return FAILURES.jti_missing;
  const events = c['events'];
  if (events === null || typeof events !== 'object' || Array.isArray(events)) return FAILURES.events_invalid;
  const event = (events as Record<string, unknown>)[BACKCHANNEL_LOGOUT_EVENT];
  if (!Object.prototype.hasOwnProperty.call(events, BACKCHANNEL_LOGOUT_EVENT) || event === null || typeof event !== 'object' || Array.isArray(event)) {
    return FAILURES.events_invalid;
  }
  const sub = c['sub'];
  const sid = c['sid'];
  if (sub === undefined && sid === undefined) return FAILURES.sub_sid_missing;
  if ((sub !== undefined && (typeof sub !== 'string' || sub.length === 0)) || (sid !== undefined && (typeof sid !== 'string' || sid.length === 0))) {
    return FAILURES.claim_invalid;
  }
  if (c['nonce'] !== undefined) return FAILURES.nonce_present;
  return {
    ok: true,
    issuer: o.issuerName,
    iss: o.issuer,
    ...(sub !== undefined ? { sub } : {}),
    ...(sid !== undefined ? { sid } : {}),
    iat,
    jti,
    exp,
  };
}

/**
 * A {@link KeySelector} over an issuer's key store (src/authn/jwks.ts): a `kid` it does
 * not know triggers the store's refresh (single flight, bounded by its cooldown), as a
 * token signed with a freshly rotated key does.
 */
export function keyStoreSelector(store: Pick<KeyStore, 'select' | 'refresh'>): KeySelector {
  return async (alg, kid) => {
    let selected = store.select(alg, kid);
    if (selected === UNKNOWN_KID || selected === NO_KEYS) {
      await store.refresh();
      selected = store.select(alg, kid);
    }
    return selected === UNKNOWN_KID || selected === NO_KEYS || selected === KEY_MISMATCH ? undefined : selected.jwk;
  };
}

/**
 * What a logout revokes (§2.7):
 * - `session` (default): the logged-out session's tokens (`sid`); the user's (`sub`) only
 *   when the OP names no session;
 * - `subject`: every token of the user, in every session (also access tokens that carry
 *   no `sid`, which a `session` logout cannot find).
 * Cutoff: the logout token's `iat`, on the OP's clock like the tokens' own `iat`.
 */
export function revocationsForLogout(lt: LogoutToken, scope: 'session' | 'subject' = 'session'): RevocationInput[] {
  const out: RevocationInput[] = [];
  if (lt.sid !== undefined && scope === 'session') out.push({ issuer: lt.issuer, kind: 'sid', value: lt.sid, cutoffSec: lt.iat });
  if (lt.sub !== undefined && (scope === 'subject' || lt.sid === undefined)) out.push({ issuer: lt.issuer, kind: 'sub', value: lt.sub, cutoffSec: lt.iat });
  // A subject-wide logout with only a sid still ends that session.
  if (lt.sid !== undefined && scope === 'subject' && lt.sub === undefined) out.push({ issuer: lt.issuer, kind: 'sid', value: lt.sid, cutoffSec: lt.iat });
  return out;
}
