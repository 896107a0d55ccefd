/**
 * Request-path normalization (DESIGN.md "Details of the contract", Paths).
 *
 * The gateway matches routes, judges policy and builds the upstream target from one
 * normalized path, so that no two spellings of a path can reach different routes,
 * or the same route with a different meaning upstream (the classic `/public/..%2Fprivate`
 * confusion between a proxy and its backend).
 */

const SLASH = 0x2f;
const DOT = 0x2e;
const PERCENT = 0x25;

/** Raw characters that may appear in a path: RFC 3986 §3.3 `pchar` and `/` (but not `%`, which is handled apart). */
const PATH_CHAR = buildTable(
  'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789' + // ALPHA DIGIT
    "-._~" + // the rest of unreserved (RFC 3986 §2.3)
    "!$&'()*+,;=" + // sub-delims (RFC 3986 §2.2)
    ':@/',
);

/** Characters that are decoded when percent-encoded: RFC 3986 §2.3 unreserved (§6.2.2.2). */
const UNRESERVED = buildTable('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~');

function buildTable(chars: string): Uint8Array {
  const t = new Uint8Array(256);
  for (let i = 0; i < chars.length; i++) t[chars.charCodeAt(i)] = 1;
  return t;
}

const HEX_UPPER = '0123456789ABCDEF';

/** Value of one hex digit, or -1. */
function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/**
 * Normalizes a request path as uWebSockets.js `req.getUrl()` returns it (no query, not
 * percent-decoded). Returns the normalized path, or null when the gateway must answer 400.
 *
 * - decodes percent-encoded unreserved characters and upper-cases the hex of every other
 *   percent-encoding (RFC 3986 §6.2.2.1, §6.2.2.2);
 * - rejects an encoded `/`, `\` or NUL, invalid percent-encoding, and any raw character
 *   outside `pchar` / `/` (RFC 3986 §3.3), `\` and NUL included;
 * - resolves `.` and `..` segments (RFC 3986 §5.2.4), also those spelled with `%2E`,
 *   but rejects `..` above the root instead of clamping it;
 * - merges duplicate slashes and keeps a trailing slash.
 *
 * An already-normal path (the common case) is returned as the very same string, without
 * allocating.
 */
export function normalizePath(rawPath: string): string | null {
  const len = rawPath.length;
  if (len === 0 || rawPath.charCodeAt(0) !== SLASH) return null;
  // Fast path: one charCodeAt scan. A disallowed raw character can be rejected right
  // here, since nothing the slow path does can make it acceptable.
  let prev = SLASH;
  for (let i = 1; i < len; i++) {
    const c = rawPath.charCodeAt(i);
    if (c === PERCENT) return slowPath(rawPath);
    if (c > 0xff || PATH_CHAR[c] === 0) return null;
    const atSegmentStart = prev === SLASH;
    prev = c;
    if (!atSegmentStart) continue;
    // c begins a segment (or is a second slash).
    if (c === SLASH) return slowPath(rawPath);
    if (c === DOT) {
      const n1 = i + 1 < len ? rawPath.charCodeAt(i + 1) : SLASH;
      if (n1 === SLASH) return slowPath(rawPath); // "."
      if (n1 === DOT && (i + 2 >= len || rawPath.charCodeAt(i + 2) === SLASH)) return slowPath(rawPath); // ".."
    }
  }
  return rawPath;
}

/** Decodes, validates and resolves dot segments; only reached for paths that need it. */
function slowPath(raw: string): string | null {
  const decoded = decodeUnreserved(raw);
  if (decoded === null) return null;
  // Dot segments are resolved after decoding, so `%2E%2E` is `..` (RFC 3986 §6.2.2.3 runs
  // after §6.2.2.2). Decoding cannot create a `/`: `%2F` was rejected above.
  const segments = decoded.split('/');
  const out: string[] = [];
  let trailingSlash = false;
  // segments[0] is the empty string before the leading '/'.
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i]!;
    const last = i === segments.length - 1;
    if (seg === '' || seg === '.') {
      // Empty segments are duplicate slashes; `.` is the current directory. Either,
      // at the end, leaves a directory path: `/a/.` → `/a/`.
      if (last) trailingSlash = true;
    } else if (seg === '..') {
      // RFC 3986 §5.2.4 would quietly drop a `..` above the root; the contract answers 400,
      // since such a path is an attack or a client bug, never a request worth routing.
      if (out.length === 0) return null;
      out.pop();
      if (last) trailingSlash = true;
    } else {
      out.push(seg);
    }
  }
  if (out.length === 0) return '/';
  const joined = '/' + out.join('/');
  return trailingSlash ? joined + '/' : joined;
}

/**
 * Validates characters and percent-encodings, decodes the unreserved ones and upper-cases
 * the hex of the rest. Returns null for anything the contract answers 400.
 */
function decodeUnreserved(raw: string): string | null {
  let out = '';
  let from = 0; // start of the run of raw characters not yet copied to `out`
  const len = raw.length;
  for (let i = 0; i < len; i++) {
    const c = raw.charCodeAt(i);
    if (c !== PERCENT) {
      if (c > 0xff || PATH_CHAR[c] === 0) return null;
      continue;
    }
    if (i + 2 >= len) return null; // `%` or `%4` at the end (RFC 3986 §2.1: two hex digits)
    const hi = hexValue(raw.charCodeAt(i + 1));
    const lo = hexValue(raw.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return null;
    const v = (hi << 4) | lo;
    // An encoded `/` would be one segment here and two segments at a backend that decodes
    // it; an encoded `\` is a separator to some backends; NUL ends strings in others.
    if (v === SLASH || v === 0x5c || v === 0) return null;
    out += raw.slice(from, i);
    out += UNRESERVED[v] === 1 ? String.fromCharCode(v) : '%' + HEX_UPPER[hi]! + HEX_UPPER[lo]!;
    i += 2;
    from = i + 1;
  }
  return out + raw.slice(from);
}
