import { describe, expect, it } from 'vitest';
import { bearerCandidate, extractToken, isB64Token, MALFORMED_TOKEN } from '../../../src/authn/extract.js';

// The pipeline's two-step extraction (candidate, cache look-up, then the character
// check on a miss) must agree with extractToken() on every input.
const VALUES = [
  'Bearer abc.def.ghi',
  'bearer abc==',
  'Bearer a=b',
  'Bearer abc def',
  'Bearer ab\u00e9',
  'Bearer =',
  'Bearer ',
  'Basic dXNlcjpwdw==',
  'Bearer\tabc',
  'Bearer a/b+c~d_e-f.g',
];

describe('bearerCandidate + isB64Token', () => {
  it.each(VALUES)('agree with extractToken on %j', (value) => {
    const full = extractToken(value, 1, 8192);
    const cand = bearerCandidate(value, 1, 8192);
    const twoStep = cand.kind === 'token' && !isB64Token(cand.token) ? MALFORMED_TOKEN : cand;
    expect(twoStep).toEqual(full);
  });

  it('leaves the character check to isB64Token (RFC 6750 §2.1 b64token)', () => {
    expect(bearerCandidate('Bearer ab cd', 1, 8192)).toEqual({ kind: 'token', token: 'ab cd' });
    expect(isB64Token('ab cd')).toBe(false);
    expect(isB64Token('abc==')).toBe(true);
    expect(isB64Token('==')).toBe(false);
    expect(isB64Token('a=b')).toBe(false);
    expect(isB64Token('a\u0100')).toBe(false);
  });
});
