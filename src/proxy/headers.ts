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

/** Request headers the gateway sets itself; client-sent copies never pass. */
const GATEWAY_SET = ['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'x-request-id', 'expect'];

/** What rewriteRequestHeaders needs from the request and the route. */
export interface ForwardInfo {
  readonly clientAddress: string;
  /** The peer is a trusted proxy: its `X-Forwarded-For` is appended to, not replaced. */
  readonly trustedPeer: boolean;
  readonly proto: 'http' | 'https';
  readonly requestId: string;
  readonly forwardAuthorization: boolean;
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

  constructor(names: IdentityHeaderNames) {
    this.names = names;
    this.strip = new Set([...HOP_BY_HOP, ...GATEWAY_SET, ...Object.values(names)]);
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
