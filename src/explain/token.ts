/**
 * The token checks of `explain`, one by one: what the verifier decides in one jose
 * `jwtVerify` (src/authn/worker/verify.ts), taken apart so that every check is reported,
 * not only the first that fails. The verdict stays the verifier's own (explain.ts runs
 * the real token stage); these lines say why, with the same rules: the canonical JWS form
 * and nesting cap (src/authn/extract.ts, jws.ts), the issuer by exact `iss`, the
 * algorithm allowlist (RFC 8725 §3.1), the key by `kid` and type (src/authn/jwks.ts),
 * the signature, `exp` / `nbf` / `iat` with the issuer's clock tolerance (RFC 7519
 * §4.1.4-6, jose's comparisons), `aud`, `typ` (RFC 9068 §2.1), the subject and the
 * claims the identity headers carry (src/authz/claims.ts).
 */
import { compactVerify, importJWK } from 'jose';
import type { CompiledIssuer, GatewayState } from '../config/state.js';
import { jwsForm } from '../authn/extract.js';
import { decodeJsonSegment } from '../authn/jws.js';
import { KEY_MISMATCH, NO_KEYS, UNKNOWN_KID, type KeyStore, type StoredKey } from '../authn/jwks.js';
import { principalFrom, type Principal } from '../authz/claims.js';
import type { TokenFailureReason } from '../reasons.js';

export type Mark = 'ok' | 'FAIL' | '--';

/** One line of the breakdown: a check, its outcome, what was seen. */
export interface Check {
  readonly name: string;
  mark: Mark;
  detail: string;
  /** The reason this check fails with (the vocabulary's word), when it fails. */
  readonly reason?: TokenFailureReason | 'verifier_unavailable';
}

/** What explain knows of an issuer's key set once it was loaded. */
export interface KeySetView {
  readonly store: KeyStore;
  /** Where the keys came from (the key-set URL, or the file). */
  readonly from: string;
  /** The kids of the loaded keys. */
  readonly kids: readonly (string | null)[];
}

/** The breakdown, and what it found on the way (the claims, unverified, and their issuer). */
export interface TokenBreakdown {
  readonly checks: Check[];
  readonly issuer: CompiledIssuer | null;
  /** The principal the claims give, when they give one (verified or not: the checks say). */
  readonly principal: Principal | null;
}

const utc = (sec: number): string => new Date(sec * 1000).toISOString().replace('.000Z', 'Z');
const list = (xs: readonly unknown[]): string => (xs.length === 0 ? '(none)' : xs.map(String).join(', '));
const text = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));

/** Every check, in the order the verifier meets them; those that cannot run say what they wait for. */
export async function tokenBreakdown(
  token: string,
  state: GatewayState,
  keys: (issuer: CompiledIssuer) => Promise<KeySetView>,
  nowMs: number,
): Promise<TokenBreakdown> {
  const checks: Check[] = [];
  const ok = (name: string, detail: string) => checks.push({ name, mark: 'ok', detail });
  const none = (name: string, detail: string) => checks.push({ name, mark: '--', detail });
  const fail = (name: string, reason: Check['reason'], detail: string) => checks.push({ name, mark: 'FAIL', detail: `${detail} (${reason})`, ...(reason ? { reason } : {}) });
  const skipRest = (names: readonly string[], why: string) => names.forEach((n) => none(n, why));
  const AFTER_STRUCTURE = ['issuer', 'algorithm', 'key', 'signature', 'exp', 'nbf', 'iat', 'aud', 'typ', 'sub', 'claims'];

  const form = jwsForm(token);
  const dot1 = token.indexOf('.');
  const dot2 = token.indexOf('.', dot1 + 1);
  const header = form === 'jws' ? decodeJsonSegment(token, 0, dot1) : null;
  const payload = header !== null ? decodeJsonSegment(token, dot1 + 1, dot2) : null;
  if (header === null || payload === null) {
    const why =
      form === 'opaque'
        ? 'not a JWS in compact form (three base64url parts, RFC 7515 §7.1): an opaque token'
        : form === 'non_canonical'
          ? 'a part is not canonical base64url (RFC 7515 §2, RFC 4648 §3.5)'
          : 'the header or the claims are not a JSON object, or are nested deeper than 32 levels';
    fail('structure', 'malformed', why);
    skipRest(AFTER_STRUCTURE, 'not reached');
    return { checks, issuer: null, principal: null };
  }
  const headerText = ['alg', 'kid', 'typ'].map((k) => `${k} ${header[k] === undefined ? '(none)' : text(header[k])}`).join(', ');
  if (header['crit'] !== undefined) fail('structure', 'crit_unsupported', `a JWS; header ${headerText}; crit ${text(header['crit'])} names extensions the gateway does not implement (RFC 7515 §4.1.11)`);
  else ok('structure', `a JWS (RFC 7515 compact form); header ${headerText}`);

  const iss = payload['iss'];
  const issuer = typeof iss === 'string' ? state.issuerByIss.get(iss) : undefined;
  if (issuer === undefined) {
    const configured = state.issuers.map((i) => i.issuer);
    fail('issuer', 'unknown_issuer', `iss ${iss === undefined ? '(none)' : text(iss)} is no configured issuer (configured: ${list(configured)})`);
    skipRest(AFTER_STRUCTURE.slice(1), 'needs a known issuer');
    return { checks, issuer: null, principal: null };
  }
  ok('issuer', `iss ${issuer.issuer} is issuer ${issuer.name}`);

  const alg = header['alg'];
  const algOk = typeof alg === 'string' && alg !== 'none' && !alg.startsWith('HS') && issuer.algorithms.includes(alg);
  if (algOk) ok('algorithm', `${alg} (allowed: ${list(issuer.algorithms)})`);
  else fail('algorithm', 'alg_not_allowed', `${alg === undefined ? '(none)' : text(alg)}; allowed: ${list(issuer.algorithms)} (never none or HS*, RFC 8725 §3.1)`);

  let key: StoredKey | null = null;
  const kid = header['kid'];
  if (!algOk) none('key', 'needs an allowed algorithm');
  else if (kid !== undefined && typeof kid !== 'string') fail('key', 'malformed', `kid ${text(kid)} is not a string`);
  else {
    const view = await keys(issuer);
    const picked = view.store.select(alg, kid);
    const status = view.store.status();
    if (picked === NO_KEYS) fail('key', 'verifier_unavailable', `no key set loaded: ${status.error ?? 'the key set is empty'}`);
    else if (picked === UNKNOWN_KID) {
      const why = kid === undefined ? `no kid, and not exactly one key fits ${alg}` : `no key has kid ${kid}`;
      fail('key', 'unknown_kid', `${why}; keys from ${view.from}: kid ${list(view.kids.map((k) => k ?? '(none)'))}`);
    } else if (picked === KEY_MISMATCH) fail('key', 'alg_not_allowed', `the key with kid ${String(kid)} does not fit ${alg} (its type or its own alg differ, RFC 7517 §4.4)`);
    else {
      key = picked;
      ok('key', `kid ${picked.kid ?? '(none)'}, ${picked.kty}${picked.crv ? ` ${picked.crv}` : ''}, from ${view.from}`);
    }
  }

  if (key === null) none('signature', 'needs a key');
  else {
    try {
      await compactVerify(token, await importJWK(key.jwk, alg as string), { algorithms: [alg as string] });
      ok('signature', 'verifies with that key');
    } catch {
      fail('signature', 'bad_signature', 'does not verify with that key');
    }
  }

  // jose compares whole seconds: now = floor(ms / 1000); `exp` must be > now - tolerance.
  const now = Math.floor(nowMs / 1000);
  const tol = issuer.clockToleranceSec;
  const tolText = `clock tolerance ${tol} s`;
  const exp = payload['exp'];
  if (exp === undefined) fail('exp', 'exp_missing', 'absent; access tokens must carry one (RFC 9068 §2.2)');
  else if (typeof exp !== 'number') fail('exp', 'claim_invalid', `${text(exp)} is not a number`);
  else if (exp <= now - tol) fail('exp', 'expired', `${utc(exp)}, ${now - exp} s ago (${tolText})`);
  else ok('exp', `${utc(exp)}, ${exp >= now ? `in ${exp - now} s` : `${now - exp} s ago, within the ${tolText}`}`);

  for (const name of ['nbf', 'iat'] as const) {
    const v = payload[name];
    if (v === undefined) none(name, 'absent');
    else if (typeof v !== 'number') fail(name, 'claim_invalid', `${text(v)} is not a number`);
    else if (v > now + tol) fail(name, 'not_yet_valid', `${utc(v)}, ${v - now} s ahead (${tolText})`);
    else ok(name, utc(v));
  }

  const aud = payload['aud'];
  const auds = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  if (auds.some((a) => typeof a === 'string' && issuer.audience.includes(a))) ok('aud', `${list(auds)} (accepted: ${list(issuer.audience)})`);
  else fail('aud', 'wrong_audience', `${aud === undefined ? '(none)' : list(auds.length > 0 ? auds : [text(aud)])}; accepted: ${list(issuer.audience)}`);

  // RFC 9068 §2.1 / RFC 7515 §4.1.9: `application/` may be left out, case-insensitively (jose's normalization).
  const typ = typeof header['typ'] === 'string' ? header['typ'].toLowerCase().replace(/^application\//, '') : undefined;
  if (issuer.typ === null) none('typ', `not required (the token says ${header['typ'] === undefined ? 'none' : text(header['typ'])})`);
  else if (typ === issuer.typ) ok('typ', `${text(header['typ'])} (required: ${issuer.typ})`);
  else fail('typ', 'wrong_typ', `${header['typ'] === undefined ? '(none)' : text(header['typ'])}; required: ${issuer.typ}`);

  const principal = principalFrom(payload, issuer);
  const subjectPath = issuer.claims.subject.join('.');
  if (principal === 'sub_missing') fail('sub', 'sub_missing', `nothing at ${subjectPath}`);
  else if (principal === 'claim_invalid') fail('sub', 'claim_invalid', `the claim at ${subjectPath} is neither a string nor a number`);
  else if (principal === 'claim_unrenderable') none('sub', 'see claims');
  else if (principal === 'binding_unsupported') fail('sub', 'binding_unsupported', 'the token is bound (cnf) by a method other than a DPoP key (jkt)');
  else ok('sub', `${principal.subject}${subjectPath === 'sub' ? '' : ` (at ${subjectPath})`}`);

  const usable = typeof principal === 'string' ? null : principal;
  if (principal === 'claim_unrenderable' || (usable !== null && state.rewriter.identityFor(usable) === null)) {
    fail('claims', 'claim_unrenderable', 'a claim the policy or the identity headers use is not valid Unicode text (a lone surrogate)');
  } else if (usable !== null) ok('claims', 'every claim the policy and the identity headers use is valid Unicode text');
  else none('claims', 'needs a subject');
  return { checks, issuer, principal: usable };
}

/** Which check a verifier reason belongs to (to mark the verdict's own reason where the breakdown has it). */
export const CHECK_OF: Readonly<Record<string, string>> = Object.freeze({
  malformed: 'structure',
  crit_unsupported: 'structure',
  unknown_issuer: 'issuer',
  alg_not_allowed: 'algorithm',
  unknown_kid: 'key',
  verifier_unavailable: 'key',
  bad_signature: 'signature',
  expired: 'exp',
  exp_missing: 'exp',
  not_yet_valid: 'nbf',
  wrong_audience: 'aud',
  wrong_typ: 'typ',
  claim_invalid: 'sub',
  sub_missing: 'sub',
  claim_unrenderable: 'claims',
});
