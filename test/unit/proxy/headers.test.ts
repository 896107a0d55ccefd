import { describe, expect, it } from 'vitest';
import { tmpdir } from 'node:os';
import { ConfigError, compileConfig } from '../../../src/config/load.js';
import { HeaderRewriter, connectionTokens, encodeIdentityList, encodeIdentityValue, forEachResponseHeader } from '../../../src/proxy/headers.js';
import type { Principal } from '../../../src/authz/claims.js';
import { hideMemo, MEMO, newMemo } from '../../../src/authz/memo.js';

const names = compileConfig({ upstreams: { a: { url: 'http://x' } }, routes: [{ path: '/', upstream: 'a', auth: 'none' }] }, tmpdir()).identityHeaders;
const info = { clientAddress: '10.1.1.1', trustedPeer: false, proto: 'http' as const, requestId: 'rid-1', forwardAuthorization: true };

function asObject(list: string[]): Record<string, string[]> {
  const o: Record<string, string[]> = {};
  for (let i = 0; i < list.length; i += 2) (o[list[i]!] ??= []).push(list[i + 1]!);
  return o;
}

/**
 * Counts reads of a principal's claims from now on (a memoized answer reads none). The
 * principal is the very object the memo is keyed by, so its properties are redefined in
 * place; test principals are built unfrozen.
 */
function countingReads(p: Principal): { reads: number } {
  const counter = { reads: 0 };
  for (const key of ['subject', 'iss', 'roles', 'scopes', 'groups', 'amr', 'acr', 'authTime'] as const) {
    const value = p[key];
    Object.defineProperty(p, key, { get: () => (counter.reads++, value) });
  }
  return counter;
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

  // With a memo (src/authz/memo.ts), where the rewriter keeps what it rendered, as the verifier's principals have (unfrozen, so reads can be counted).
  const principal = (over: Partial<Principal>): Principal => hideMemo({
    issuer: 'corp', iss: 'https://idp', subject: 'alice', exp: 2e9, amr: ['pwd', 'otp'], acr: 'phr', authTime: 1700000000, roles: ['a', 'b'], scopes: ['read', 'write'], groups: [], ...over, [MEMO]: newMemo(),
  } as Principal & { [MEMO]: ReturnType<typeof newMemo> });

  it('injects identity headers of a principal, once computed per principal', () => {
    const p = principal({});
    const out = asObject(rw.rewrite([], undefined, undefined, undefined, info, p));
    expect(out).toMatchObject({
      'x-auth-subject': ['alice'], 'x-auth-issuer': ['https://idp'], 'x-auth-roles': ['a,b'], 'x-auth-scopes': ['read write'],
      'x-auth-amr': ['pwd,otp'], 'x-auth-acr': ['phr'], 'x-auth-time': ['1700000000'],
    });
    expect(out['x-auth-groups']).toBeUndefined();
    expect(rw.identityFor(p)).toBe(rw.identityFor(p));
  });

  it('renders for each rewriter its own (a reload with other names), and afresh each time for a principal without a memo', () => {
    const p = principal({});
    const other = new HeaderRewriter({ ...names, subject: 'x-user' });
    expect(rw.identityFor(p)?.[0]).toBe('x-auth-subject');
    expect(other.identityFor(p)?.[0]).toBe('x-user');
    expect(rw.identityFor(p)?.[0]).toBe('x-auth-subject');
    const bare: Principal = { ...p };
    expect(rw.identityFor(bare)).toEqual(rw.identityFor(p));
    expect(rw.identityFor(bare)).not.toBe(rw.identityFor(bare));
  });

  it('encodes each list item on its own, so a "," inside a role or a non-ASCII role never changes the other items', () => {
    const p = principal({ subject: 'Zoë Smith', roles: ['viewer,admin', 'ops', 'prüfer'], scopes: ['read', 'a b'], groups: ['100%'], amr: ['pwd', 'otp'], acr: 'gold level' });
    expect(rw.identityFor(p)).toEqual([
      'x-auth-subject', 'Zo%C3%AB%20Smith',
      'x-auth-issuer', 'https://idp',
      'x-auth-roles', 'viewer%2Cadmin,ops,pr%C3%BCfer',
      'x-auth-scopes', 'read a%20b',
      'x-auth-groups', '100%25',
      'x-auth-amr', 'pwd,otp',
      'x-auth-acr', 'gold%20level',
      'x-auth-time', '1700000000',
    ]);
  });

  it('gives null, never throws, when any rendered claim is not well-formed UTF-16, and remembers that', () => {
    for (const over of [{ subject: 'alice\ud800' }, { roles: ['ok', '\udc00x'] }, { scopes: ['\ud83d'] }, { groups: ['g\ud800\ud800'] }, { amr: ['\udfff'] }, { acr: '\ud800' }, { iss: 'https://i\udbff' }]) {
      const p = principal(over);
      expect(rw.identityFor(p), JSON.stringify(over)).toBeNull();
      // Remembered: a second call reads no claim at all.
      const counted = countingReads(p);
      expect(rw.identityFor(p)).toBeNull();
      expect(counted.reads).toBe(0);
      // rewrite() adds no identity header at all for it, rather than a partial set.
      const out = asObject(rw.rewrite(['x-auth-subject', 'mallory'], undefined, undefined, undefined, info, p));
      expect(Object.keys(out).filter((k) => k.startsWith('x-auth'))).toEqual([]);
    }
    // A well-formed pair (U+1F600) is fine.
    expect(rw.identityFor(principal({ subject: '\ud83d\ude00' }))?.[1]).toBe('%F0%9F%98%80');
  });

  it('uses configured names', () => {
    const custom = compileConfig(
      { upstreams: { a: { url: 'http://x' } }, routes: [{ path: '/', upstream: 'a', auth: 'none' }], identityHeaders: { subject: 'X-User', roles: 'X-Roles' } },
      tmpdir(),
    ).identityHeaders;
    const r = new HeaderRewriter(custom).identityFor(principal({ amr: undefined, acr: undefined, scopes: [], authTime: undefined, iss: '' }));
    expect(r).toEqual(['x-user', 'alice', 'x-roles', 'a,b']);
  });
});

describe('encodeIdentityValue', () => {
  it('returns a value of visible ASCII without "%" and "," as the very same string', () => {
    for (const v of ['alice', 'https://idp.example.com/realms/corp', 'urn:okta:loa:2fa:any', 'auth0|123456', "!#$&'()*+-./:;<=>?@[\\]^_`{|}~"]) {
      expect(encodeIdentityValue(v)).toBe(v);
    }
    expect(encodeIdentityValue('')).toBe('');
  });

  it('percent-encodes UTF-8 bytes outside 0x21-0x7E, "%", "," and space, with upper-case hex', () => {
    expect(encodeIdentityValue('é,x')).toBe('%C3%A9%2Cx');
    expect(encodeIdentityValue('é')).toBe('%C3%A9');
    expect(encodeIdentityValue('%C3%A9')).toBe('%25C3%25A9');
    expect(encodeIdentityValue('a b')).toBe('a%20b');
    expect(encodeIdentityValue('a\r\nx-evil: 1')).toBe('a%0D%0Ax-evil:%201');
    expect(encodeIdentityValue('\u0000\t\u007f\u0080\u00ff')).toBe('%00%09%7F%C2%80%C3%BF');
    expect(encodeIdentityValue('\u0800\uffff\u2028')).toBe('%E0%A0%80%EF%BF%BF%E2%80%A8');
    expect(encodeIdentityValue('\ud800\udc00\udbff\udfff')).toBe('%F0%90%80%80%F4%8F%BF%BF');
    // Exactly what encodeURIComponent gives for the bytes both encode.
    expect(encodeIdentityValue('Zoë 😀')).toBe(encodeURIComponent('Zoë 😀'));
  });

  it('gives null for lone surrogates, wherever they are', () => {
    for (const v of ['\ud800', 'alice\ud800', '\udc00alice', 'a\ud800b', 'é\udbff', '\ud800\ud800\udc00x\udc00', '\ude00\ud83d']) {
      expect(encodeIdentityValue(v), JSON.stringify(v)).toBeNull();
    }
  });

  it('encodeIdentityList joins encoded items and fails when one item fails', () => {
    expect(encodeIdentityList(['viewer,admin', 'ops'], ',')).toBe('viewer%2Cadmin,ops');
    expect(encodeIdentityList(['a b', 'c'], ' ')).toBe('a%20b c');
    expect(encodeIdentityList([], ',')).toBe('');
    // Empty items mean nothing and would leave a stray separator (or an edge space HTTP strips).
    expect(encodeIdentityList(['', 'a', '', 'b', ''], ' ')).toBe('a b');
    expect(encodeIdentityList(['', ''], ',')).toBe('');
    expect(encodeIdentityList(['ok', 'x\ud800'], ',')).toBeNull();
  });
});

describe('identity header names in the config', () => {
  const problems = (identityHeaders: Record<string, unknown>): string[] => {
    try {
      compileConfig({ upstreams: { a: { url: 'http://x' } }, routes: [{ path: '/', upstream: 'a', auth: 'none' }], identityHeaders }, tmpdir());
      return [];
    } catch (err) {
      if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`);
      throw err;
    }
  };

  it('refuses "_", which CGI-style upstreams read as "-"', () => {
    expect(problems({ subject: 'x_auth_user' })).toEqual([
      'identityHeaders.subject: must not contain "_" (CGI, PHP and Django read x_auth_user and X-Auth-User as the same variable)',
    ]);
  });

  it('refuses names that are not RFC 9110 tokens', () => {
    const msg = "must be a header name: an RFC 9110 §5.1 token (letters, digits and ! # $ % & ' * + - . ^ ` | ~)";
    expect(problems({ roles: 'x auth roles', groups: 'x-grüppe', amr: 'x-amr:', acr: 'x-acr\r\n' })).toEqual(
      ['roles', 'groups', 'amr', 'acr'].map((k) => `identityHeaders.${k}: ${msg}`),
    );
  });

  it('refuses two keys with one name, whatever the case, defaults included', () => {
    expect(problems({ roles: 'X-Auth-Groups' })).toEqual(['identityHeaders.groups: same header name as identityHeaders.roles']);
    expect(problems({ acr: 'x-auth-subject', amr: 'X-Id', issuer: 'x-id' })).toEqual([
      'identityHeaders.acr: same header name as identityHeaders.subject',
      'identityHeaders.issuer: same header name as identityHeaders.amr',
    ]);
  });

  it('refuses names HTTP or the gateway itself controls', () => {
    expect(problems({ subject: 'Host', roles: 'x-forwarded-for', groups: 'authorization', amr: 'connection' })).toEqual([
      'identityHeaders.subject: Host is a header the gateway or HTTP itself controls; choose another name (e.g. x-auth-subject)',
      'identityHeaders.roles: x-forwarded-for is a header the gateway or HTTP itself controls; choose another name (e.g. x-auth-roles)',
      'identityHeaders.groups: authorization is a header the gateway or HTTP itself controls; choose another name (e.g. x-auth-groups)',
      'identityHeaders.amr: connection is a header the gateway or HTTP itself controls; choose another name (e.g. x-auth-amr)',
    ]);
  });

  it('accepts the defaults and other valid names', () => {
    expect(problems({})).toEqual([]);
    expect(problems({ subject: 'X-Remote-User', roles: "x-roles!#$%&'*+.^`|~" })).toEqual([]);
  });
});

describe('helpers', () => {
  it('connectionTokens lower-cases and trims', () => expect([...connectionTokens(' Keep-Alive ,X-A,, ')]).toEqual(['keep-alive', 'x-a']));
  it('forEachResponseHeader skips hop-by-hop, framing, Date and Connection-listed names', () => {
    const seen: string[] = [];
    forEachResponseHeader(
      { connection: 'x-hop', 'x-hop': '1', 'keep-alive': 'x', 'content-length': '5', 'transfer-encoding': 'chunked', date: 'd', 'x-request-id': 'u', 'set-cookie': ['a', 'b'], 'x-ok': 'y' },
      (n, v) => seen.push(`${n}=${v}`),
    );
    expect(seen).toEqual(['set-cookie=a', 'set-cookie=b', 'x-ok=y']);
  });
});
