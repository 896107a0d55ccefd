import type { ClaimPath, CompiledIssuer } from '../config/state.js';
import { hideMemo, MEMO, memoOf, newMemo } from './memo.js';

declare global {
  interface String {
    /** ES2024 (in Node.js 20): false when the string holds a lone UTF-16 surrogate. */
    isWellFormed(): boolean;
  }
}

/**
 * The verified claims the policy stage reads, extracted once when a token is
 * verified and cached with it, so a cache hit does no claim-path walking.
 * These are claims, never a decision: the decision is made per route on every request.
 */
export interface Principal {
  /** Config name of the issuer whose keys verified the token. */
  readonly issuer: string;
  /** The token's `iss`. */
  readonly iss: string;
  /**
   * The claim at the issuer's subject path (a number as text). Never empty for a
   * verified token (RFC 9068 §2.2 requires `sub`); `undefined` only in principals
   * built by hand.
   */
  readonly subject: string | undefined;
  /** `exp` in seconds since the epoch (always present: a token without `exp` is invalid). */
  readonly exp: number;
  /** `amr` when it is an array of strings; otherwise undefined (counts as absent, README "What counts as MFA"). */
  readonly amr: readonly string[] | undefined;
  readonly acr: string | undefined;
  /** `auth_time` in seconds, when it is a finite number. */
  readonly authTime: number | undefined;
  /** Values at the issuer's claim paths: [] when absent, null when of a type that denies. */
  readonly roles: readonly string[] | null;
  readonly scopes: readonly string[] | null;
  readonly groups: readonly string[] | null;
  /**
   * Claims of the token's lifecycle, each when present with the right type, else undefined:
   * `sub` itself, as text like `subject` (revocations and logout tokens name it, whatever
   * the subject path),
   * `sid` (the OP session, OpenID Connect Back-Channel Logout 1.0 §2.4), `jti` and `iat`
   * (RFC 7519 §4.1.7, §4.1.6; `iat` in seconds), `cnf.jkt` (RFC 9449 §6.1: the DPoP key the
   * token is bound to) and `client_id` (RFC 9068 §2.2, RFC 7662 §2.2).
   */
  readonly sub: string | undefined;
  readonly sid: string | undefined;
  readonly jti: string | undefined;
  readonly iat: number | undefined;
  readonly cnfJkt: string | undefined;
  readonly clientId: string | undefined;
}

/**
 * Splits a configured claim path into segments: `.` separates, `\.` is a literal dot and
 * `\\` a literal backslash. The escape is what lets a namespaced claim (Auth0 requires
 * them for roles and groups: `https://example\.com/roles`) be addressed at all.
 *
 * @example parseClaimPath('realm_access.roles') // ['realm_access', 'roles']
 * @example parseClaimPath('https://example\\.com/roles') // ['https://example.com/roles']
 */
export function parseClaimPath(text: string): ClaimPath {
  const out: string[] = [];
  let seg = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    const next = text[i + 1];
    if (ch === '\\' && (next === '.' || next === '\\')) {
      seg += next;
      i++;
    } else if (ch === '.') {
      out.push(seg);
      seg = '';
    } else {
      seg += ch;
    }
  }
  out.push(seg);
  return Object.freeze(out);
}

/** Nested look-up only: `a.b` never matches a top-level key literally named "a.b" (README "Overriding a profile"). */
export function claimAt(payload: unknown, path: ClaimPath): unknown {
  let cur: unknown = payload;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined;
    if (!Object.prototype.hasOwnProperty.call(cur, seg)) return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}

/** Roles and groups: an array of strings, or one string as one value; any other type denies (null). */
export function stringValues(value: unknown): readonly string[] | null {
  if (value === undefined) return [];
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  return null;
}

/** Scopes: a space-separated string (RFC 8693 §4.2 `scope`) or an array of strings (`scp`). */
export function scopeValues(value: unknown): readonly string[] | null {
  if (value === undefined) return [];
  if (typeof value === 'string') return value.split(' ').filter((s) => s.length > 0);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  return null;
}

/** What {@link principalFrom} needs of an issuer: its config name and claim paths (a worker gets only these). */
export type PrincipalSource = Pick<CompiledIssuer, 'name' | 'claims'>;

/**
 * Why a verified payload yields no principal:
 * - `sub_missing`: nothing (or `null`, or `""`) at the subject path; RFC 9068 §2.2
 *   makes `sub` REQUIRED in an access token;
 * - `claim_invalid`: a subject that is neither a string nor a number;
 * - `claim_unrenderable`: a string the policy or the identity headers would use holds
 *   a lone UTF-16 surrogate. JSON allows the escape (`"\ud800"`, RFC 8259 §8.2), so the
 *   token is validly signed, but no UTF-8 text (RFC 3629) encodes it: it cannot be
 *   written into a header, a log line or a comparison with configured text;
 * - `binding_unsupported`: `cnf` (RFC 7800 §3.1) names a confirmation method other than
 *   RFC 9449's `jkt` (mTLS `x5t#S256`, RFC 8705 §3.1; `jwk`; `kid`): the gateway cannot
 *   check it, and a bound token must never pass as a plain bearer token (RFC 9449 §7.2).
 */
export type PrincipalFailure = 'sub_missing' | 'claim_invalid' | 'claim_unrenderable' | 'binding_unsupported';

/**
 * Builds the principal from a verified payload, frozen, or says why the token must be
 * refused. Runs in the verifier worker, so only this small object (never the payload)
 * crosses back to the main thread, where the cache keeps it sealed ({@link sealPrincipal}).
 *
 * @example principalFrom({ iss: 'https://idp', sub: 'alice', exp: 2e9 }, issuer).subject // 'alice'
 * @example principalFrom({ iss: 'https://idp', exp: 2e9 }, issuer) // 'sub_missing'
 */
export function principalFrom(payload: Record<string, unknown>, issuer: PrincipalSource): Principal | PrincipalFailure {
  const sub = claimAt(payload, issuer.claims.subject);
  if (sub === undefined || sub === null || sub === '') return 'sub_missing';
  if (typeof sub !== 'string' && typeof sub !== 'number') return 'claim_invalid';
  const subject = typeof sub === 'string' ? sub : String(sub);
  const binding = confirmation(payload['cnf']);
  if (binding !== undefined && binding !== 'jkt') return binding;
  const iss = String(payload['iss']);
  const rawAmr = payload['amr'];
  const rawAcr = payload['acr'];
  const authTime = payload['auth_time'];
  const amr = Array.isArray(rawAmr) && rawAmr.every((v) => typeof v === 'string') ? Object.freeze([...rawAmr] as string[]) : undefined;
  const acr = typeof rawAcr === 'string' ? rawAcr : undefined;
  const roles = freezeOrNull(stringValues(claimAt(payload, issuer.claims.roles)));
  const scopes = freezeOrNull(scopeValues(claimAt(payload, issuer.claims.scopes)));
  const groups = freezeOrNull(stringValues(claimAt(payload, issuer.claims.groups)));
  if (
    !subject.isWellFormed() ||
    !iss.isWellFormed() ||
    (acr !== undefined && !acr.isWellFormed()) ||
    !allWellFormed(amr) ||
    !allWellFormed(roles) ||
    !allWellFormed(scopes) ||
    !allWellFormed(groups)
  ) {
    return 'claim_unrenderable';
  }
  return Object.freeze({
    issuer: issuer.name,
    iss,
    subject,
    exp: payload['exp'] as number,
    amr,
    acr,
    authTime: typeof authTime === 'number' && Number.isFinite(authTime) ? authTime : undefined,
    roles,
    scopes,
    groups,
    sub: typeof payload['sub'] === 'number' && Number.isFinite(payload['sub']) ? String(payload['sub']) : stringOrUndefined(payload['sub']),
    sid: stringOrUndefined(payload['sid']),
    jti: stringOrUndefined(payload['jti']),
    iat: typeof payload['iat'] === 'number' && Number.isFinite(payload['iat']) ? payload['iat'] : undefined,
    cnfJkt: stringOrUndefined(claimAt(payload, CNF_JKT)),
    clientId: stringOrUndefined(payload['client_id']),
  });
}

const CNF_JKT: ClaimPath = Object.freeze(['cnf', 'jkt']);

/**
 * What a `cnf` claim binds the token to (RFC 7800 §3.1): undefined when absent; `jkt`
 * when it holds exactly a non-empty string `jkt` (RFC 9449 §6.1); `binding_unsupported`
 * when it names any other method; `claim_invalid` when it is no object of methods.
 */
function confirmation(cnf: unknown): 'jkt' | 'binding_unsupported' | 'claim_invalid' | undefined {
  if (cnf === undefined) return undefined;
  if (cnf === null || typeof cnf !== 'object' || Array.isArray(cnf)) return 'claim_invalid';
  let jkt = false;
  for (const method of Object.keys(cnf)) {
    if (method !== 'jkt') return 'binding_unsupported';
    jkt = true;
  }
  const value = (cnf as Record<string, unknown>)['jkt'];
  return jkt && typeof value === 'string' && value.length > 0 ? 'jkt' : 'claim_invalid';
}

function stringOrUndefined(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/**
 * The principal this thread keeps and every request that presents the token shares
 * (the token cache, the introspection cache): frozen, its shared values shared, with
 * its memo (src/authz/memo.ts). One from principalFrom (a worker's, after the structured
 * clone that carries it, HTML "StructuredSerialize", or one built on this thread) is
 * sealed once; a sealed one comes back as it is.
 *
 * principalFrom itself makes no memo and shares nothing: in a verifier worker both would
 * be lost to the clone (measured: ~2.5 µs per new token).
 */
export function sealPrincipal(p: Principal): Principal {
  return memoOf(p) !== undefined ? p : seal(p);
}

/**
 * The frozen principal with its memo, built as one object literal with the fields in
 * one order, so every principal has one shape (a clone adds its properties one by one
 * and keeps most of them in a separate property array).
 *
 * On the way, what many principals share is replaced by one copy: short values (the
 * issuer, `acr`, `client_id`), whole lists (`amr`, roles, scopes, groups) and `sub` when
 * it is the subject. A clone makes a fresh copy of every value: 20,000 cached tokens
 * held 20,000 copies of `"pwd"`, of `"openid"`, of the issuer URL… (~300 bytes a
 * token), and each list is two objects (the array and its elements). Every object a
 * cached token keeps is one more the marking of each major GC visits, and on a big
 * cache that marking is what the bench's `fixed-rate` stall was (bench/README.md).
 * Equal values for equal values, frozen: nothing a policy or a header sees changes.
 */
function seal(p: Principal): Principal {
  const subject = p.subject;
  return Object.freeze(
    hideMemo({
      issuer: shared(p.issuer),
      iss: shared(p.iss),
      subject,
      exp: p.exp,
      amr: p.amr === undefined ? undefined : sharedList(p.amr),
      acr: p.acr === undefined ? undefined : shared(p.acr),
      authTime: p.authTime,
      roles: p.roles === null ? null : sharedList(p.roles),
      scopes: p.scopes === null ? null : sharedList(p.scopes),
      groups: p.groups === null ? null : sharedList(p.groups),
      sub: p.sub === subject ? subject : p.sub,
      sid: p.sid,
      jti: p.jti,
      iat: p.iat,
      cnfJkt: p.cnfJkt,
      clientId: p.clientId === undefined ? undefined : shared(p.clientId),
      [MEMO]: newMemo(),
    }),
  );
}

/**
 * One copy of each short value principals share, up to {@link SHARED_MAX} values (then
 * new ones are kept as they are): a bound whatever the tokens carry. Values only a
 * signed token can carry reach it, and a long value is rarely shared, so only short
 * ones are kept. Also for text rendered from a principal once and kept with it (the
 * identity header values of a shared role list, src/proxy/headers.ts).
 */
const sharedValues = new Map<string, string>();
const SHARED_MAX = 10_000;
const SHARED_LENGTH = 128;

export function shared(value: string): string {
  if (value.length > SHARED_LENGTH) return value;
  const known = sharedValues.get(value);
  if (known !== undefined) return known;
  if (sharedValues.size < SHARED_MAX) sharedValues.set(value, value);
  return value;
}

/**
 * One frozen copy of each list principals share, keyed by its JSON text (exact: JSON
 * writes every string unambiguously, lone surrogates as escapes), up to
 * {@link SHARED_LISTS_MAX} lists of at most {@link SHARED_LIST_CHARS} characters of
 * JSON: a bound of ~5 MB whatever the tokens carry. Users hold a handful of role and
 * scope sets between them, so most principals share theirs.
 */
const sharedLists = new Map<string, readonly string[]>();
/** Exported for the property test, which models the bound. */
export const SHARED_LISTS_MAX = 10_000;
export const SHARED_LIST_CHARS = 512;
const NO_VALUES: readonly string[] = Object.freeze([]);

function sharedList(list: readonly string[]): readonly string[] {
  if (list.length === 0) return NO_VALUES;
  const key = JSON.stringify(list);
  const known = key.length <= SHARED_LIST_CHARS ? sharedLists.get(key) : undefined;
  if (known !== undefined) return known;
  const copy = Object.freeze(list.map((v) => shared(v)));
  if (key.length <= SHARED_LIST_CHARS && sharedLists.size < SHARED_LISTS_MAX) sharedLists.set(key, copy);
  return copy;
}

function allWellFormed(values: readonly string[] | null | undefined): boolean {
  if (!values) return true;
  for (const v of values) if (!v.isWellFormed()) return false;
  return true;
}

function freezeOrNull(v: readonly string[] | null): readonly string[] | null {
  return v === null ? null : Object.freeze([...v]);
}
