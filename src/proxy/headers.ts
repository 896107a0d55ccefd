import type { IdentityHeaderNames } from '../config/types.js';
import type { Principal } from '../authz/claims.js';

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
  private readonly identityValues = new WeakMap<Principal, readonly string[]>();
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
   */
  rewrite(headers: readonly string[], connection: string | undefined, xff: string | undefined, host: string | undefined, info: ForwardInfo, principal: Principal | null): string[] {
    const tokens = connection ? connectionTokens(connection) : null;
    const out: string[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      if (this.isStripped(name, tokens)) continue;
      if (name === 'authorization' && !info.forwardAuthorization) continue;
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
    if (principal !== null) {
      const values = this.identityFor(principal);
      for (let i = 0; i < values.length; i++) out.push(values[i]!);
    }
    return out;
  }

  /** Identity headers of a principal, computed once per cached principal. */
  identityFor(p: Principal): readonly string[] {
    let v = this.identityValues.get(p);
    if (v === undefined) {
      const n = this.names;
      const list: string[] = [];
      const add = (name: string, value: string | undefined) => {
        if (value !== undefined && value !== '') list.push(name, headerSafe(value));
      };
      add(n.subject, p.subject);
      add(n.issuer, p.iss);
      add(n.roles, p.roles?.join(','));
      add(n.scopes, p.scopes?.join(' '));
      add(n.groups, p.groups?.join(','));
      add(n.amr, p.amr?.join(','));
      add(n.acr, p.acr);
      add(n.authTime, p.authTime === undefined ? undefined : String(p.authTime));
      v = Object.freeze(list);
      this.identityValues.set(p, v);
    }
    return v;
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

/** The lower-case names listed in a `Connection` header (RFC 9110 §7.6.1). */
export function connectionTokens(value: string): ReadonlySet<string> {
  const set = new Set<string>();
  for (const t of value.split(',')) {
    const name = t.trim().toLowerCase();
    if (name) set.add(name);
  }
  return set;
}

/**
 * Claim values become header values: anything outside visible ASCII and space
 * (RFC 9110 §5.5 field-vchar, minus obs-text) is percent-encoded, so a claim can
 * never smuggle CR/LF or bytes an upstream parser reads differently.
 */
export function headerSafe(value: string): string {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return encodeURIComponent(value);
  }
  return value;
}

/** Response headers that never pass to the client: hop-by-hop, the framing and Date that uWS writes itself, and X-Request-Id (the gateway echoes its own). */
const RESPONSE_SKIP: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'content-length', 'date', 'x-request-id']);

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
