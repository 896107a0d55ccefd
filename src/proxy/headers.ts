import type { IdentityHeaderNames } from '../config/state.js';
import { shared as sharedText, type Principal } from '../authz/claims.js';
import { memoOf } from '../authz/memo.js';

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1), plus the legacy ones every proxy strips
 * (Keep-Alive, Proxy-Connection, Proxy-Authorization/Authenticate: RFC 7230 §6.1 / RFC 2616 §13.5.1).
 * Names listed in a message's own `Connection` header are removed too.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Request headers the gateway owns. A client-sent copy never reaches the upstream on any
 * route, because each one changes what the request means there (README, "Paths and
 * headers"): the gateway checked one method, one path and one client, and the upstream
 * must see exactly those.
 *
 * - `gatewaySet`: headers the gateway writes itself (RFC 9110 §7.2 Host for the
 *   upstream; X-Forwarded-* and, with `server.forwardedHeader`, Forwarded per RFC 7239).
 * - `methodOverride`: frameworks (Express method-override, Rails, Symfony, Spring's
 *   HiddenHttpMethodFilter) let these turn a POST the route allowed into a DELETE it did not.
 * - `pathOverride`: IIS URL Rewrite, Symfony and some PHP stacks route by these instead of
 *   the request line, past every path rule the gateway applied.
 * - `clientClaims`: claims about the client address or the scheme that upstream
 *   frameworks trust for logging, rate limits, redirects and "is this HTTPS" checks.
 *
 * `headers.keep` lets a named one of `methodOverride` / `pathOverride` / `clientClaims`
 * through for an operator who needs it; `headers.remove` adds names. `gatewaySet`, the
 * hop-by-hop headers and the identity headers can never be kept.
 */
export const GATEWAY_OWNED = Object.freeze({
  gatewaySet: Object.freeze(['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id', 'expect']),
  methodOverride: Object.freeze(['x-http-method-override', 'x-http-method', 'x-method-override']),
  pathOverride: Object.freeze(['x-original-url', 'x-rewrite-url', 'x-override-url', 'x-original-uri']),
  clientClaims: Object.freeze([
    'forwarded',
    'x-real-ip',
    'true-client-ip',
    'cf-connecting-ip',
    'x-client-ip',
    'x-cluster-client-ip',
    'x-forwarded-port',
    'x-forwarded-prefix',
    'x-forwarded-ssl',
    'x-forwarded-scheme',
    'front-end-https',
    'x-url-scheme',
  ]),
});

/** Names `headers.keep` may let through (README "Paths and headers"). */
export const KEEPABLE: ReadonlySet<string> = new Set([...GATEWAY_OWNED.methodOverride, ...GATEWAY_OWNED.pathOverride, ...GATEWAY_OWNED.clientClaims]);

/** The `headers` config section, compiled: names lower-cased. */
export interface HeaderRules {
  /** Extra request header names never forwarded. */
  readonly remove: readonly string[];
  /** Names of {@link KEEPABLE} that are forwarded after all. */
  readonly keep: readonly string[];
  /** Also send `Forwarded` (RFC 7239) upstream. */
  readonly forwarded: boolean;
}

const NO_RULES: HeaderRules = Object.freeze({ remove: [], keep: [], forwarded: false });

/** What rewriteRequestHeaders needs from the request and the route. */
export interface ForwardInfo {
  readonly clientAddress: string;
  /** The peer is a trusted proxy: its `X-Forwarded-For` is appended to, not replaced. */
  readonly trustedPeer: boolean;
  readonly proto: 'http' | 'https';
  readonly requestId: string;
  readonly forwardAuthorization: boolean;
  /**
   * The client's own `Forwarded` field lines joined with `, `: kept and appended to only
   * when the peer is a trusted proxy (RFC 7239 §4), like X-Forwarded-For.
   */
  readonly forwarded?: string | undefined;
}

/**
 * Compiled once per config: the set of request header names that never pass
 * (hop-by-hop, gateway-set, identity headers), so the per-request loop is one Set
 * look-up a header.
 */
export class HeaderRewriter {
  private readonly strip: ReadonlySet<string>;
  private readonly names: IdentityHeaderNames;
  private readonly forwarded: boolean;

  constructor(names: IdentityHeaderNames, rules: HeaderRules = NO_RULES) {
    this.names = names;
    const keep = new Set(rules.keep);
    const owned = [...GATEWAY_OWNED.methodOverride, ...GATEWAY_OWNED.pathOverride, ...GATEWAY_OWNED.clientClaims].filter((n) => !keep.has(n));
    // `forwarded` is the gateway's own header when it writes one: a kept client copy would be a second list.
    if (rules.forwarded && !owned.includes('forwarded')) owned.push('forwarded');
    this.strip = new Set([...HOP_BY_HOP, ...GATEWAY_OWNED.gatewaySet, ...owned, ...rules.remove, ...Object.values(names)]);
    this.forwarded = rules.forwarded;
  }

  /** True when a client-sent request header of this (lower-case) name must not reach the upstream. */
  isStripped(name: string, connectionTokens: ReadonlySet<string> | null): boolean {
    if (this.strip.has(name)) return true;
    // Some upstream stacks (CGI, PHP, Django, nginx with underscores_in_headers) treat
    // `x_auth_subject` as `x-auth-subject`: drop those spellings of protected names too.
    if (name.includes('_') && this.strip.has(name.replaceAll('_', '-'))) return true;
    return connectionTokens !== null && connectionTokens.has(name);
  }

  /**
   * Builds the upstream request's header list (undici's flat [name, value, …] form).
   * `headers` is the client's flat list with lower-case names.
   *
   * A principal whose identity cannot be rendered (`identityFor` gives null) adds no
   * identity headers at all, never a partial set: the caller checks `identityFor`
   * first and refuses such a request with 401 invalid_token (see identityFor).
   */
  rewrite(headers: readonly string[], connection: string | undefined, xff: string | undefined, host: string | undefined, info: ForwardInfo, principal: Principal | null): string[] {
    const tokens = connection ? connectionTokens(connection) : null;
    const out: string[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      if (this.isStripped(name, tokens)) continue;
      // A DPoP proof (RFC 9449 §4) is a credential of this request, as the token is.
      if (!info.forwardAuthorization && (name === 'authorization' || name === 'dpop')) continue;
      out.push(name, headers[i + 1]!);
    }
    out.push(
      'x-forwarded-for',
      info.trustedPeer && xff ? `${xff}, ${info.clientAddress}` : info.clientAddress,
      'x-forwarded-proto',
      info.proto,
      'x-request-id',
      info.requestId,
    );
    if (host) out.push('x-forwarded-host', host);
    if (this.forwarded) {
      const element = forwardedElement(info.clientAddress, info.proto, host);
      out.push('forwarded', info.trustedPeer && info.forwarded ? `${info.forwarded}, ${element}` : element);
    }
    const values = principal === null ? null : this.identityFor(principal);
    if (values !== null) for (let i = 0; i < values.length; i++) out.push(values[i]!);
    return out;
  }

  /**
   * The identity headers of a principal (flat [name, value, …]), every value encoded
   * by encodeIdentityValue, list items one by one; computed once per cached principal.
   *
   * Never throws. Null when a claim that would become a header is not well-formed
   * UTF-16 (a lone surrogate), which no header value can carry faithfully: the caller
   * (the pipeline, before it forwards) must then refuse the request with 401
   * invalid_token (reason `claim_invalid`), so the upstream never sees an identity that
   * differs from the token's. The verifier is meant to refuse such tokens first; this
   * holds whatever it lets through, cache hits included.
   */
  identityFor(p: Principal): readonly string[] | null {
    // Kept in the principal's memo (src/authz/memo.ts) for this rewriter: a reload's
    // new rewriter, with other header names, renders its own.
    const memo = memoOf(p);
    if (memo === undefined) return renderIdentity(this.names, p);
    if (memo.identityOwner !== this) {
      memo.identity = renderIdentity(this.names, p);
      memo.identityOwner = this;
    }
    return memo.identity as readonly string[] | null;
  }
}

/**
 * One RFC 7239 §4 forwarded-element for this hop: `for` (the client, an IPv6 address
 * quoted and in brackets per §6), `proto`, and `host` (the client's Host, always a
 * quoted-string since it may carry a port).
 *
 * @example forwardedElement('2001:db8::1', 'https', 'api.example.com') === 'for="[2001:db8::1]";proto=https;host="api.example.com"'
 */
export function forwardedElement(client: string, proto: 'http' | 'https', host: string | undefined): string {
  const node = client.includes(':') ? `"[${client}]"` : client;
  let element = `for=${node};proto=${proto}`;
  if (host) element += `;host="${host.replace(/["\\]/g, '\\$&')}"`;
  return element;
}

function renderIdentity(n: IdentityHeaderNames, p: Principal): readonly string[] | null {
  const one = (value: string | undefined) => (value === undefined ? '' : encodeIdentityValue(value));
  // A list's text is one copy for every principal that shares the list (src/authz/claims.ts).
  const many = (items: readonly string[] | null | undefined, sep: string) => {
    const text = items ? encodeIdentityList(items, sep) : '';
    return text === null ? null : sharedText(text);
  };
  const rendered: readonly (readonly [string, string | null])[] = [
    [n.subject, one(p.subject)],
    [n.issuer, one(p.iss)],
    [n.roles, many(p.roles, ',')],
    [n.scopes, many(p.scopes, ' ')],
    [n.groups, many(p.groups, ',')],
    [n.amr, many(p.amr, ',')],
    [n.acr, one(p.acr)],
    [n.authTime, p.authTime === undefined ? '' : String(p.authTime)],
  ];
  const list: string[] = [];
  for (const [name, value] of rendered) {
    if (value === null) return null;
    // A header whose value would be empty is left out (README, identity headers).
    if (value !== '') list.push(name, value);
  }
  return Object.freeze(list);
}

/** The lower-case names listed in a `Connection` header (RFC 9110 §7.6.1). */
export function connectionTokens(value: string): ReadonlySet<string> {
  let set = CONNECTION_MEMO.get(value);
  if (set === undefined) {
    const names = new Set<string>();
    for (const t of value.split(',')) {
      const name = t.trim().toLowerCase();
      if (name) names.add(name);
    }
    set = names;
    // Clients send the same few values (`keep-alive`, `close`) on nearly every request:
    // parse each once. Bounded, as a client chooses what it sends.
    if (CONNECTION_MEMO.size >= CONNECTION_MEMO_MAX) CONNECTION_MEMO.clear();
    CONNECTION_MEMO.set(value, set);
  }
  return set;
}

const CONNECTION_MEMO = new Map<string, ReadonlySet<string>>();
const CONNECTION_MEMO_MAX = 256;

/** `%XX` for every byte value, upper-case hex (RFC 3986 §2.1). */
const PCT: readonly string[] = Array.from({ length: 256 }, (_, b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`);
const pct = (b: number): string => PCT[b]!;

/** Visible ASCII (VCHAR 0x21-0x7E, RFC 5234 Appendix B.1; the field-vchar of RFC 9110 §5.5 without obs-text) except `%` (the escape) and `,` (the list separator). */
const kept = (c: number): boolean => c >= 0x21 && c <= 0x7e && c !== 0x25 && c !== 0x2c;

/**
 * Encodes one claim value (or one list item) for an identity header, by one rule
 * everywhere: every UTF-8 byte that is not visible ASCII (0x21-0x7E) is
 * percent-encoded with upper-case hex (RFC 3986 §2.1), and so are `%` itself and `,`.
 * Space (outside 0x21-0x7E) becomes `%20` in every header, list or not.
 *
 * So a value can never carry CR/LF or obs-text, `é` and the text `%C3%A9` give
 * different header values, an item can never contain the `,` or ` ` that join a
 * list, and `decodeURIComponent` of the value (of each item) is exactly the claim.
 * Everything else visible (`:`, `/`, `+`, `;`, …) stays as it is, so URLs and URNs
 * read as usual.
 *
 * Returns null, never throws, for a string that is not well-formed UTF-16 (a lone
 * surrogate): it has no UTF-8 form, so no encoding of it could decode back to it.
 * The common value (visible ASCII without `%` and `,`) costs one scan and is returned
 * as the same string.
 *
 * @example encodeIdentityValue('é,x') === '%C3%A9%2Cx'
 * @example encodeIdentityValue('%C3%A9') === '%25C3%25A9'
 * @example encodeIdentityValue('urn:okta:loa:2fa:any') === 'urn:okta:loa:2fa:any'
 * @example encodeIdentityValue('alice\ud800') === null
 */
export function encodeIdentityValue(value: string): string | null {
  const n = value.length;
  let i = 0;
  while (i < n && kept(value.charCodeAt(i))) i++;
  if (i === n) return value;
  let out = value.slice(0, i);
  for (; i < n; i++) {
    const c = value.charCodeAt(i);
    if (kept(c)) out += value[i];
    else if (c < 0x80) out += pct(c);
    else if (c < 0x800) out += pct(0xc0 | (c >> 6)) + pct(0x80 | (c & 0x3f));
    else if (c < 0xd800 || c > 0xdfff) out += pct(0xe0 | (c >> 12)) + pct(0x80 | ((c >> 6) & 0x3f)) + pct(0x80 | (c & 0x3f));
    else {
      // A surrogate: only a high one (D800-DBFF) followed by a low one (DC00-DFFF) is a
      // code point (RFC 3629 §3 forbids encoding surrogates on their own).
      const low = i + 1 < n ? value.charCodeAt(i + 1) : 0;
      if (c > 0xdbff || low < 0xdc00 || low > 0xdfff) return null;
      const cp = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
      out += pct(0xf0 | (cp >> 18)) + pct(0x80 | ((cp >> 12) & 0x3f)) + pct(0x80 | ((cp >> 6) & 0x3f)) + pct(0x80 | (cp & 0x3f));
      i++;
    }
  }
  return out;
}

/**
 * A list claim (roles, groups, amr joined by `,`; scopes by ` `) for an identity
 * header: each item encoded by encodeIdentityValue, so `header.split(sep)` and a
 * decode of each piece give the list back. Empty items are left out: they mean
 * nothing, and an empty first or last scope would put a space at the edge of the
 * value, which HTTP strips (RFC 9110 §5.5). Null when any item cannot be encoded.
 *
 * @example encodeIdentityList(['viewer,admin', 'ops'], ',') === 'viewer%2Cadmin,ops'
 */
export function encodeIdentityList(items: readonly string[], sep: string): string | null {
  let out = '';
  for (let i = 0; i < items.length; i++) {
    const v = encodeIdentityValue(items[i]!);
    if (v === null) return null;
    if (v !== '') out = out === '' ? v : `${out}${sep}${v}`;
  }
  return out;
}

/** Response headers that never pass to the client: hop-by-hop, the framing and Date that uWS writes itself, and X-Request-Id (the gateway echoes its own). */
const RESPONSE_SKIP: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'content-length', 'date', 'x-request-id']);

/** True when an upstream response header must not reach the client (`tokens`: the names its Connection lists). */
export function isResponseHeaderSkipped(name: string, tokens: ReadonlySet<string> | null): boolean {
  return RESPONSE_SKIP.has(name) || (tokens !== null && tokens.has(name));
}

/** Calls `write(name, value)` for each upstream response header the client may see. */
export function forEachResponseHeader(
  headers: Record<string, string | string[] | undefined>,
  write: (name: string, value: string) => void,
): void {
  const conn = headers['connection'];
  const tokens = conn ? connectionTokens(Array.isArray(conn) ? conn.join(',') : conn) : null;
  for (const name in headers) {
    if (RESPONSE_SKIP.has(name) || (tokens !== null && tokens.has(name))) continue;
    const v = headers[name];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const one of v) write(name, one);
    else write(name, v);
  }
}
