import type { ClaimPath, CompiledIssuer } from '../config/types.js';

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
  readonly subject: string | undefined;
  /** `exp` in seconds since the epoch (always present: a token without `exp` is invalid). */
  readonly exp: number;
  /** `amr` when it is an array of strings; otherwise undefined (counts as absent, DESIGN.md). */
  readonly amr: readonly string[] | undefined;
  readonly acr: string | undefined;
  /** `auth_time` in seconds, when it is a finite number. */
  readonly authTime: number | undefined;
  /** Values at the issuer's claim paths: [] when absent, null when of a type that denies. */
  readonly roles: readonly string[] | null;
  readonly scopes: readonly string[] | null;
  readonly groups: readonly string[] | null;
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

/** Nested look-up only: `a.b` never matches a top-level key literally named "a.b" (DESIGN.md). */
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

/** Builds the cached principal from a verified payload. */
export function principalFrom(payload: Record<string, unknown>, issuer: CompiledIssuer): Principal {
  const amr = payload['amr'];
  const acr = payload['acr'];
  const authTime = payload['auth_time'];
  const sub = claimAt(payload, issuer.claims.subject);
  return Object.freeze({
    issuer: issuer.name,
    iss: String(payload['iss']),
    subject: typeof sub === 'string' ? sub : typeof sub === 'number' ? String(sub) : undefined,
    exp: payload['exp'] as number,
    amr: Array.isArray(amr) && amr.every((v) => typeof v === 'string') ? Object.freeze([...amr] as string[]) : undefined,
    acr: typeof acr === 'string' ? acr : undefined,
    authTime: typeof authTime === 'number' && Number.isFinite(authTime) ? authTime : undefined,
    roles: freezeOrNull(stringValues(claimAt(payload, issuer.claims.roles))),
    scopes: freezeOrNull(scopeValues(claimAt(payload, issuer.claims.scopes))),
    groups: freezeOrNull(stringValues(claimAt(payload, issuer.claims.groups))),
  });
}

function freezeOrNull(v: readonly string[] | null): readonly string[] | null {
  return v === null ? null : Object.freeze([...v]);
}
