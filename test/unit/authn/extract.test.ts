import { describe, expect, it } from 'vitest';
import { extractToken, type Extracted } from '../../../src/authn/extract.js';

const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';
const MAX = 8192;

const token = (t: string): Extracted => ({ kind: 'token', token: t });
const none: Extracted = { kind: 'none' };
const bad = (description: string): Extracted => ({ kind: 'invalid_request', description });

// [Authorization value, header count, expected]
const cases: ReadonlyArray<readonly [string | undefined, number, Extracted]> = [
  [`Bearer ${JWT}`, 1, token(JWT)],
  // RFC 9110 §11.1: the scheme is case-insensitive
  [`bearer ${JWT}`, 1, token(JWT)],
  [`BEARER ${JWT}`, 1, token(JWT)],
  [`bEaReR ${JWT}`, 1, token(JWT)],
  // 1*SP between scheme and token; surrounding whitespace a parser may leave
  [`Bearer    ${JWT}`, 1, token(JWT)],
  [`  Bearer ${JWT} \t`, 1, token(JWT)],
  // every b64token character, and trailing padding (RFC 6750 §2.1)
  ['Bearer aZ09-._~+/==', 1, token('aZ09-._~+/==')],
  // no header, or another scheme: 401 with a bare realm challenge (RFC 6750 §3.1)
  [undefined, 0, none],
  ['Basic YWxpY2U6cHdk', 1, none],
  ['Digest username="a"', 1, none],
  ['Bearerx abc', 1, none],
  ['Bear abc', 1, none],
  ['', 1, none],
  [`Token ${JWT}`, 1, none],
  // empty bearer token → 400 invalid_request
  ['Bearer', 1, bad('empty bearer token')],
  ['Bearer ', 1, bad('empty bearer token')],
  ['bearer     ', 1, bad('empty bearer token')],
  // two Authorization headers → 400, whatever they hold
  [`Bearer ${JWT}`, 2, bad('multiple Authorization headers')],
  [undefined, 2, bad('multiple Authorization headers')],
  // not a b64token → 400
  ['Bearer a b', 1, bad('malformed bearer token')],
  ['Bearer abc=def', 1, bad('malformed bearer token')],
  ['Bearer ===', 1, bad('malformed bearer token')],
  ['Bearer realm="x"', 1, bad('malformed bearer token')],
  ['Bearer abc,def', 1, bad('malformed bearer token')],
  ['Bearer é', 1, bad('malformed bearer token')],
  ['Bearer abc\u0000', 1, bad('malformed bearer token')],
];

describe('extractToken', () => {
  for (const [value, count, expected] of cases) {
    it(`${JSON.stringify(value)} ×${count} → ${expected.kind}`, () => {
      expect(extractToken(value, count, MAX)).toEqual(expected);
    });
  }

  it('refuses a token over maxTokenBytes before looking at its characters', () => {
    expect(extractToken(`Bearer ${'a'.repeat(1024)}`, 1, 1024)).toEqual(token('a'.repeat(1024)));
    expect(extractToken(`Bearer ${'a'.repeat(1025)}`, 1, 1024)).toEqual({ kind: 'too_large' });
    // Too large wins over malformed: the characters are never scanned.
    expect(extractToken(`Bearer ${' x'.repeat(600)}x`, 1, 1024)).toEqual({ kind: 'too_large' });
  });

  it('returns the same frozen object for every refusal (nothing allocated)', () => {
    const a = extractToken('Basic x', 1, MAX);
    expect(extractToken(undefined, 0, MAX)).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    expect(extractToken('Bearer', 1, MAX)).toBe(extractToken('Bearer ', 1, MAX));
  });
});
