import { describe, expect, it } from 'vitest';
import { tmpdir } from 'node:os';
import { compileConfig } from '../../../src/config/load.js';
import { HeaderRewriter, connectionTokens, forEachResponseHeader, headerSafe } from '../../../src/proxy/headers.js';
import type { Principal } from '../../../src/authz/claims.js';

const names = compileConfig({ upstreams: { a: { url: 'http://x' } }, routes: [{ path: '/', upstream: 'a', auth: 'none' }] }, tmpdir()).identityHeaders;
const info = { clientAddress: '10.1.1.1', trustedPeer: false, proto: 'http' as const, requestId: 'rid-1', forwardAuthorization: true };

function asObject(list: string[]): Record<string, string[]> {
  const o: Record<string, string[]> = {};
  for (let i = 0; i < list.length; i += 2) (o[list[i]!] ??= []).push(list[i + 1]!);
  return o;
}

describe('HeaderRewriter', () => {
  const rw = new HeaderRewriter(names);

  it('drops hop-by-hop headers, names listed in Connection, and gateway-set headers', () => {
    const out = asObject(
      rw.rewrite(
        ['host', 'h', 'connection', 'close, X-Foo', 'x-foo', '1', 'keep-alive', 'x', 'te', 'trailers', 'upgrade', 'websocket', 'transfer-encoding', 'chunked',
          'proxy-authorization', 'Basic x', 'expect', '100-continue', 'forwarded', 'for=1', 'x-forwarded-proto', 'https', 'x-other', 'kept', 'x-other', 'twice'],
        'close, X-Foo', undefined, 'h', info, null,
      ),
    );
    expect(Object.keys(out).sort()).toEqual(['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-other', 'x-request-id']);
    expect(out['x-other']).toEqual(['kept', 'twice']);
    expect(out['x-forwarded-proto']).toEqual(['http']);
    expect(out['x-forwarded-host']).toEqual(['h']);
  });

  it('removes client copies of identity headers in every spelling, even on unauthenticated routes', () => {
    const out = asObject(rw.rewrite(['x-auth-subject', 'admin', 'x_auth_subject', 'admin', 'X_AUTH_ROLES'.toLowerCase(), 'root', 'x-auth-amr', 'mfa'], undefined, undefined, undefined, info, null));
    expect(Object.keys(out).filter((k) => k.startsWith('x-auth') || k.startsWith('x_auth'))).toEqual([]);
  });

  it('replaces X-Forwarded-For from an untrusted peer and appends for a trusted one', () => {
    expect(asObject(rw.rewrite([], undefined, '6.6.6.6', undefined, info, null))['x-forwarded-for']).toEqual(['10.1.1.1']);
    expect(asObject(rw.rewrite([], undefined, '6.6.6.6', undefined, { ...info, trustedPeer: true }, null))['x-forwarded-for']).toEqual(['6.6.6.6, 10.1.1.1']);
  });

  it('drops Authorization only when the route says so', () => {
    expect(asObject(rw.rewrite(['authorization', 'Bearer t'], undefined, undefined, undefined, info, null))['authorization']).toEqual(['Bearer t']);
    expect(asObject(rw.rewrite(['authorization', 'Bearer t'], undefined, undefined, undefined, { ...info, forwardAuthorization: false }, null))['authorization']).toBeUndefined();
  });

  it('injects identity headers of a principal, once computed per principal', () => {
    const p: Principal = { issuer: 'corp', iss: 'https://idp', subject: 'alice', exp: 2e9, amr: ['pwd', 'otp'], acr: 'phr', authTime: 1700000000, roles: ['a', 'b'], scopes: ['read', 'write'], groups: [] };
    const out = asObject(rw.rewrite([], undefined, undefined, undefined, info, p));
    expect(out).toMatchObject({
      'x-auth-subject': ['alice'], 'x-auth-issuer': ['https://idp'], 'x-auth-roles': ['a,b'], 'x-auth-scopes': ['read write'],
      'x-auth-amr': ['pwd,otp'], 'x-auth-acr': ['phr'], 'x-auth-time': ['1700000000'],
    });
    expect(out['x-auth-groups']).toBeUndefined();
    expect(rw.identityFor(p)).toBe(rw.identityFor(p));
  });
});

describe('helpers', () => {
  it('connectionTokens lower-cases and trims', () => expect([...connectionTokens(' Keep-Alive ,X-A,, ')]).toEqual(['keep-alive', 'x-a']));
  it('headerSafe percent-encodes values with control or non-ASCII characters', () => {
    expect(headerSafe('alice')).toBe('alice');
    expect(headerSafe('a\r\nx-evil: 1')).toBe('a%0D%0Ax-evil%3A%201');
    expect(headerSafe('zoë')).toBe('zo%C3%AB');
  });
  it('forEachResponseHeader skips hop-by-hop, framing, Date and Connection-listed names', () => {
    const seen: string[] = [];
    forEachResponseHeader(
      { connection: 'x-hop', 'x-hop': '1', 'keep-alive': 'x', 'content-length': '5', 'transfer-encoding': 'chunked', date: 'd', 'x-request-id': 'u', 'set-cookie': ['a', 'b'], 'x-ok': 'y' },
      (n, v) => seen.push(`${n}=${v}`),
    );
    expect(seen).toEqual(['set-cookie=a', 'set-cookie=b', 'x-ok=y']);
  });
});
