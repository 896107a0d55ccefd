/**
 * Request-path normalization (README.md "Paths and headers").
 *
 * The gateway matches routes, judges policy and builds the upstream target from one
 * normalization result, so that no two spellings of a path can reach different routes,
 * or the same route with a different meaning upstream (the classic `/public/..%2Fprivate`
 * confusion between a proxy and its backend).
 *
 * `;` is the one sub-delim that backends read as structure: servlet containers (Tomcat,
 * Jetty, Undertow) cut every segment at its first `;` and drop the rest (the segment's
 * parameters, RFC 3986 §3.3 "often used to delimit parameters") before they resolve
 * dot segments, so `/public/..;/orders/1` is `/orders/1` to them and an ordinary segment
 * named `..;` to a reader of RFC 3986 alone. A raw `;` is therefore refused unless
 * parameters are allowed, and then matching sees the path the way a servlet does.
 * `%3B` is data, not a delimiter (RFC 3986 §2.2: an encoded reserved character is not
 * acting as one), and servlets agree: Tomcat strips parameters before it percent-decodes,
 * so `%3B` becomes a literal `;` inside a segment name. It is kept and forwarded as `%3B`.
 */

const SLASH = 0x2f;
const DOT = 0x2e;
const PERCENT = 0x25;
const SEMICOLON = 0x3b;

/**
 * Raw characters that may appear in a path: RFC 3986 §3.3 `pchar` and `/`, but not `%`
 * (handled apart) and not `;` (accepted only when path parameters are allowed).
 */
const PATH_CHAR = buildTable(
  'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789' + // ALPHA DIGIT
    "-._~" + // the rest of unreserved (RFC 3986 §2.3)
    "!$&'()*+,=" + // sub-delims (RFC 3986 §2.2) but `;`
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
 * A normalized path that had `;` path parameters (only produced when they are allowed).
 * Both views have the same segments, one for one, and the same trailing slash.
 */
export interface ParameterPath {
  /** Every segment without its `;…` parameters: what routes and policy see (a servlet's view). */
  readonly match: string;
  /** The same segments with their parameters: what is sent upstream. */
  readonly upstream: string;
}

/**
 * The one normalization result of a request path: a string when routes and upstream see
 * the same path (every path without `;`), else both views. A result is an object exactly
 * when the raw path had a `;`, even one whose parameters all vanished with dot segments.
 */
export type NormalizedPath = string | ParameterPath;

/** The path routes and policy see. */
export function matchView(path: NormalizedPath): string {
  return typeof path === 'string' ? path : path.match;
}

/**
 * Normalizes a request path as uWebSockets.js `req.getUrl()` returns it (no query, not
 * percent-decoded). Returns the normalized path, or null when the gateway must answer 400.
 *
 * - decodes percent-encoded unreserved characters and upper-cases the hex of every other
 *   percent-encoding (RFC 3986 §6.2.2.1, §6.2.2.2);
 * - rejects an encoded `/`, `\` or NUL, invalid percent-encoding, and any raw character
 *   outside `pchar` / `/` (RFC 3986 §3.3), `\` and NUL included;
 * - rejects a raw `;`, unless `parameters` is true: then each segment is split at its
 *   first `;`, and only the part before it decides what the segment is (see ParameterPath);
 * - resolves `.` and `..` segments (RFC 3986 §5.2.4), also those spelled with `%2E`,
 *   but rejects `..` above the root instead of clamping it;
 * - merges duplicate slashes and keeps a trailing slash.
 *
 * An already-normal path (the common case) is returned as the very same string, without
 * allocating.
 */
export function normalizePath(rawPath: string): string | null;
export function normalizePath(rawPath: string, parameters: boolean): NormalizedPath | null;
export function normalizePath(rawPath: string, parameters = false): NormalizedPath | null {
  const len = rawPath.length;
  if (len === 0 || rawPath.charCodeAt(0) !== SLASH) return null;
  // Fast path: one charCodeAt scan. A disallowed raw character can be rejected right
  // here, since nothing the slow path does can make it acceptable.
  let prev = SLASH;
  for (let i = 1; i < len; i++) {
    const c = rawPath.charCodeAt(i);
    if (c === PERCENT) return slowPath(rawPath, parameters);
    if (c > 0xff || PATH_CHAR[c] === 0) return c === SEMICOLON && parameters ? slowPath(rawPath, true) : null;
    const atSegmentStart = prev === SLASH;
    prev = c;
    if (!atSegmentStart) continue;
    // c begins a segment (or is a second slash).
    if (c === SLASH) return slowPath(rawPath, parameters);
    if (c === DOT) {
      const n1 = i + 1 < len ? rawPath.charCodeAt(i + 1) : SLASH;
      if (n1 === SLASH) return slowPath(rawPath, parameters); // "."
      if (n1 === DOT && (i + 2 >= len || rawPath.charCodeAt(i + 2) === SLASH)) return slowPath(rawPath, parameters); // ".."
    }
  }
  return rawPath;
}

/** Decodes, validates and resolves dot segments; only reached for paths that need it. */
function slowPath(raw: string, parameters: boolean): NormalizedPath | null {
  const decoded = decodeUnreserved(raw, parameters);
  if (decoded === null) return null;
  // Decoding creates no `;` (it is not unreserved), so every `;` here was a raw one.
  const withParams = parameters && decoded.includes(';');
  // Dot segments are resolved after decoding, so `%2E%2E` is `..` (RFC 3986 §6.2.2.3 runs
  // after §6.2.2.2). Decoding cannot create a `/`: `%2F` was rejected above.
  const segments = decoded.split('/');
  const out: string[] = [];
  // With parameters: the surviving segments as they came, parameters included.
  const full: string[] | null = withParams ? [] : null;
  let trailingSlash = false;
  // segments[0] is the empty string before the leading '/'.
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i]!;
    const last = i === segments.length - 1;
    // A servlet container reads a segment up to its first `;` (Tomcat, Jetty and Undertow
    // drop parameters before resolving dot segments), so that part alone says whether
    // the segment is `.`, `..` or empty. Parameters of a removed segment go with it.
    const semi = withParams ? seg.indexOf(';') : -1;
    const name = semi < 0 ? seg : seg.slice(0, semi);
    if (name === '' || name === '.') {
      // Empty segments are duplicate slashes; `.` is the current directory. Either,
      // at the end, leaves a directory path: `/a/.` → `/a/`. A segment that is only
      // parameters (`/a/;x/b`) is empty to a servlet, so it is merged like `//` is.
      if (last) trailingSlash = true;
    } else if (name === '..') {
      // RFC 3986 §5.2.4 would quietly drop a `..` above the root; the contract answers 400,
      // since such a path is an attack or a client bug, never a request worth routing.
      if (out.length === 0) return null;
      out.pop();
      full?.pop();
      if (last) trailingSlash = true;
    } else {
      out.push(name);
      full?.push(seg);
    }
  }
  const match = joinSegments(out, trailingSlash);
  return full === null ? match : { match, upstream: joinSegments(full, trailingSlash) };
}

function joinSegments(segments: readonly string[], trailingSlash: boolean): string {
  if (segments.length === 0) return '/';
  const joined = '/' + segments.join('/');
  return trailingSlash ? joined + '/' : joined;
}

/**
 * Validates characters and percent-encodings, decodes the unreserved ones and upper-cases
 * the hex of the rest. Returns null for anything the contract answers 400.
 */
function decodeUnreserved(raw: string, parameters: boolean): string | null {
  let out = '';
  let from = 0; // start of the run of raw characters not yet copied to `out`
  const len = raw.length;
  for (let i = 0; i < len; i++) {
    const c = raw.charCodeAt(i);
    if (c !== PERCENT) {
      if (c > 0xff || (PATH_CHAR[c] === 0 && !(c === SEMICOLON && parameters))) return null;
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
