import { describe, expect, it } from 'vitest';
import { normalizePath } from '../../../src/routes/normalize.js';

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
  ["/a:b@c!$&'()*+,;=-._~", "/a:b@c!$&'()*+,;=-._~"], // every pchar
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
  it('has a table of at least 35 cases', () => expect(cases.length).toBeGreaterThanOrEqual(35));

  it.each(cases)('%j → %j', (raw, expected) => {
    expect(normalizePath(raw)).toBe(expected);
  });

  it('is idempotent: a normalized path normalizes to itself', () => {
    for (const [, expected] of cases) {
      if (expected !== null) expect(normalizePath(expected), expected).toBe(expected);
    }
  });

  it('returns the input string for an already-normal path (the hot path)', () => {
    // toBe is Object.is, which compares strings by value: JavaScript cannot observe string
    // identity, so this pins the value only. That the hot path returns `rawPath` itself, with
    // no allocation, holds by construction (normalize.ts returns its argument).
    const input = ['', 'orders', '42', 'items.json'].join('/');
    expect(normalizePath(input)).toBe(input);
    const withPchars = `/a:b/@c/${'x'.repeat(3)}/`;
    expect(normalizePath(withPchars)).toBe(withPchars);
  });

  it('rejects every raw byte outside pchar and accepts every pchar', () => {
    const pchar = new Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/%");
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
