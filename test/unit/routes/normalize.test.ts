import { describe, expect, it } from 'vitest';
import { normalizePath, type ParameterPath } from '../../../src/routes/normalize.js';

// [raw path as req.getUrl() returns it, expected normalized path or null (→ 400)]
const cases: ReadonlyArray<readonly [string, string | null]> = [
  // already normal
  ['/', '/'],
  ['/a', '/a'],
  ['/a/', '/a/'],
  ['/Orders/A', '/Orders/A'], // case-sensitive: left as it is
  ['/a/b.json', '/a/b.json'],
  ['/.well-known/x', '/.well-known/x'],
  ['/a/...', '/a/...'], // three dots is an ordinary segment
  ['/a/..b/.c', '/a/..b/.c'],
  ["/a:b@c!$&'()*+,=-._~", "/a:b@c!$&'()*+,=-._~"], // every pchar but `;`
  // `;` starts path parameters, which servlet containers drop before resolving `..`: refused
  // by default, wherever it is (fast path and slow path alike)
  ["/a:b@c!$&'()*+,;=-._~", null],
  ['/public/..;/orders/1', null],
  ['/api/admin;x=1/users', null],
  ['/a;', null],
  ['/;x', null],
  ['/a/;x/b', null],
  ['/%41;x', null],
  ['/a//b;x', null],
  ['/a/./;', null],
  // `%3B` is data (RFC 3986 §2.2), not a delimiter: kept, encoded, in the segment name
  ['/a%3Bb', '/a%3Bb'],
  ['/a%3bb', '/a%3Bb'],
  ['/public/..%3B/orders/1', '/public/..%3B/orders/1'],
  ['/public/%2e%2e%3b/orders', '/public/..%3B/orders'],
  // not starting with /
  ['', null],
  ['a/b', null],
  ['*', null],
  ['http://host/x', null],
  // percent-decoding of unreserved characters only (RFC 3986 §6.2.2.2)
  ['/%41', '/A'],
  ['/%61%7a%30%2d%5F%7e', '/az0-_~'],
  ['/%7E', '/~'],
  ['/a%2Eb', '/a.b'],
  // other percent-encodings stay, with upper-case hex (RFC 3986 §6.2.2.1)
  ['/%20', '/%20'],
  ['/a%20b', '/a%20b'],
  ['/%2a', '/%2A'],
  ['/%c3%a9t%C3%A9', '/%C3%A9t%C3%A9'],
  ['/%3f%23', '/%3F%23'], // encoded ? and # are data, not delimiters
  ['/%25', '/%25'], // encoded % is not decoded (that would be double decoding)
  ['/%2541', '/%2541'],
  ['/%ff', '/%FF'],
  // invalid percent-encoding
  ['/%', null],
  ['/a%', null],
  ['/%4', null],
  ['/%zz', null],
  ['/%g1', null],
  ['/%1g', null],
  // encoded separators and NUL
  ['/a%2Fb', null],
  ['/a%2fb', null],
  ['/a%5Cb', null],
  ['/a%5cb', null],
  ['/a%00b', null],
  ['/public%2F..%2Fprivate', null],
  ['/a/..%2F', null],
  // raw characters outside pchar
  ['/a\\b', null],
  ['/a\0b', null],
  ['/a b', null],
  ['/a"b', null],
  ['/a<b>', null],
  ['/a^b', null],
  ['/a`b', null],
  ['/a{b}', null],
  ['/a|b', null],
  ['/a#b', null],
  ['/a?b', null],
  ['/a[b]', null],
  ['/a\tb', null],
  ['/a\nb', null],
  ['/a\x7f', null],
  ['/caf\u00e9', null],
  ['/\u0100', null],
  ['/\u{1F600}', null],
  ['/%41\u00e9', null], // also rejected on the slow path
  ['/./a b', null],
  // dot segments (RFC 3986 §5.2.4)
  ['/.', '/'],
  ['/./', '/'],
  ['/..', null],
  ['/../', null],
  ['/../a', null],
  ['/a/..', '/'],
  ['/a/../', '/'],
  ['/a/../..', null],
  ['/a/../../b', null],
  ['/a/./b', '/a/b'],
  ['/a/b/../c', '/a/c'],
  ['/a/b/..', '/a/'],
  ['/a/.', '/a/'],
  ['/a/./', '/a/'],
  ['/a/b/c/../../d', '/a/d'],
  ['/public/../private', '/private'],
  // dot segments that appear only after decoding
  ['/%2e%2e', null],
  ['/%2E%2E/', null],
  ['/%2e/', '/'],
  ['/%2E', '/'],
  ['/.%2e/', null],
  ['/%2e./', null],
  ['/a/%2e%2e/b', '/b'],
  ['/public/%2e%2e/private', '/private'],
  ['/public/%2e%2e/%2e%2e/x', null],
  ['/a/%2e%2e%2e', '/a/...'],
  // duplicate slashes
  ['//', '/'],
  ['///', '/'],
  ['/a//b', '/a/b'],
  ['//a///b', '/a/b'],
  ['/a//', '/a/'],
  ['//..', null],
  ['/a//..', '/'], // the empty segment is merged first, so .. removes `a`
  // combinations
  ['/a/%41//y/./z/../', '/a/A/y/'],
  ['/public/x/../%41//y/./z', '/public/A/y/z'],
];

describe('normalizePath', () => {
  it.each(cases)('%j → %j', (raw, expected) => {
    expect(normalizePath(raw)).toBe(expected);
  });

  it('is idempotent: a normalized path normalizes to itself', () => {
    for (const [, expected] of cases) {
      if (expected !== null) expect(normalizePath(expected), expected).toBe(expected);
    }
  });

  it('rejects every raw byte outside pchar, and `;`, and accepts every other pchar', () => {
    // `;` is pchar (RFC 3986 §3.3) but refused unless path parameters are allowed.
    const pchar = new Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@/%");
    for (let c = 0; c < 0x100; c++) {
      const ch = String.fromCharCode(c);
      if (ch === '%' || ch === '.' || ch === '/') continue; // covered by the table above
      const result = normalizePath(`/x${ch}y`);
      if (pchar.has(ch)) expect(result, `0x${c.toString(16)}`).toBe(`/x${ch}y`);
      else expect(result, `0x${c.toString(16)}`).toBeNull();
    }
  });

  it('decodes exactly the unreserved characters among all 256 encodings', () => {
    const unreserved = /^[A-Za-z0-9\-._~]$/;
    for (let v = 0; v < 0x100; v++) {
      const hex = v.toString(16).padStart(2, '0');
      const ch = String.fromCharCode(v);
      const result = normalizePath(`/x%${hex}y`);
      if (v === 0x2f || v === 0x5c || v === 0) expect(result, hex).toBeNull();
      else if (unreserved.test(ch)) expect(result, hex).toBe(`/x${ch}y`);
      else expect(result, hex).toBe(`/x%${hex.toUpperCase()}y`);
    }
  });
});

// [raw path, expected result with parameters allowed: null (→ 400), a string (no `;` in the
// raw path: match and upstream are one path) or [match view, upstream view]]
const withParameters: ReadonlyArray<readonly [string, string | readonly [string, string] | null]> = [
  // the servlet reading of dot segments with parameters: they are dot segments, and their
  // parameters vanish with them
  ['/public/..;/orders/1', ['/orders/1', '/orders/1']],
  ['/public/..;x=1/orders/1', ['/orders/1', '/orders/1']],
  ['/a/.;x/b', ['/a/b', '/a/b']],
  ['/a/b/..;x', ['/a/', '/a/']],
  ['/a/b/.;x', ['/a/b/', '/a/b/']],
  ['/a/%2e%2e;x/b', ['/b', '/b']],
  ['/a/%2E;x/b', ['/a/b', '/a/b']],
  ['/a;x/..', ['/', '/']], // `..` removes the segment before it, parameters and all
  ['/a;x/../b;y', ['/b', '/b;y']],
  ['/..;/x', null], // above the root, as `/../x` is
  ['/a/..;/..;/x', null],
  // parameters of surviving segments are kept upstream, and never seen by matching
  ['/api/admin;x=1/users', ['/api/admin/users', '/api/admin;x=1/users']],
  ['/a;x', ['/a', '/a;x']],
  ['/a;x/', ['/a/', '/a;x/']],
  ['/a;', ['/a', '/a;']],
  ['/a;x;y=2/b;z', ['/a/b', '/a;x;y=2/b;z']],
  ['/a;x/./b', ['/a/b', '/a;x/b']],
  ['/a//b;x', ['/a/b', '/a/b;x']],
  ['/a;jsessionid=ABC123/b', ['/a/b', '/a;jsessionid=ABC123/b']],
  // parameters are normalized like the rest of the path (unreserved decoded, hex upper-cased)
  ['/a;%2e%2e/b', ['/a/b', '/a;../b']],
  ['/a;x=%c3%a9/b', ['/a/b', '/a;x=%C3%A9/b']],
  ['/a;b%3Bc/d', ['/a/d', '/a;b%3Bc/d']],
  ['/a%3Bb;c', ['/a%3Bb', '/a%3Bb;c']],
  // a segment that is only parameters is an empty segment to a servlet: merged like `//`
  ['/a/;x/b', ['/a/b', '/a/b']],
  ['/a/;/b', ['/a/b', '/a/b']],
  ['/a/;x', ['/a/', '/a/']],
  ['/;x', ['/', '/']],
  ['/;x/a', ['/a', '/a']],
  ['/a/;x/..', ['/', '/']], // the empty segment is merged first, so `..` removes `a` (as for `/a//..`)
  ['/;x/..', null],
  // still 400: whatever is wrong elsewhere in the path is wrong in parameters too
  ['/a;x%2Fy/b', null],
  ['/a;x%5Cy', null],
  ['/a;x%00', null],
  ['/a;x y', null],
  ['/a;x?y', null],
  ['/a;x%', null],
  ['/a;x\u00e9', null],
  ['a;x', null],
  // no raw `;`: the same result as with parameters refused, and a string
  ['/a/b', '/a/b'],
  ['/a%3Bb', '/a%3Bb'],
  ['/public/..%3B/orders/1', '/public/..%3B/orders/1'],
  ['/a/../b', '/b'],
];

describe('normalizePath with path parameters allowed', () => {
  it.each(withParameters)('%j → %j', (raw, expected) => {
    const result = normalizePath(raw, true);
    if (expected === null || typeof expected === 'string') expect(result).toBe(expected);
    else expect(result).toEqual({ match: expected[0], upstream: expected[1] } satisfies ParameterPath);
  });

  it('returns both views exactly when the raw path has a `;`, and refuses every such path by default', () => {
    for (const [raw, expected] of withParameters) {
      if (expected === null) continue;
      expect(typeof normalizePath(raw, true) === 'object', raw).toBe(raw.includes(';'));
      if (raw.includes(';')) expect(normalizePath(raw), raw).toBeNull();
      else expect(normalizePath(raw), raw).toBe(expected);
    }
  });

  it('is idempotent: each view normalizes to itself', () => {
    for (const [, expected] of withParameters) {
      if (expected === null) continue;
      if (typeof expected === 'string') {
        expect(normalizePath(expected, true)).toBe(expected);
        continue;
      }
      const [match, upstream] = expected;
      expect(normalizePath(match), match).toBe(match);
      const again = normalizePath(upstream, true);
      if (upstream.includes(';')) expect(again, upstream).toEqual({ match, upstream });
      else expect(again, upstream).toBe(upstream);
    }
  });

  it('keeps the fast path: an already-normal path without `;` comes back as a string', () => {
    const input = ['', 'orders', '42', 'items.json'].join('/');
    expect(normalizePath(input, true)).toBe(input);
  });
});
