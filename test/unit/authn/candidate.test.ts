import { describe, expect, it } from 'vitest';
import { bearerCandidate, dpopCandidate, extractToken, isB64Token, MALFORMED_TOKEN } from '../../../src/authn/extract.js';

// The pipeline looks the bare candidate up in the token cache first and runs the
// b64token check on a miss only (src/pipeline/stages/token.ts; what it answers is tested
// through the built gateway in test/integration/auth/gateway-auth.test.ts). Here: the two
// halves each do their own part, and together they are extractToken().
describe('bearerCandidate + isB64Token', () => {
  it.each([
    ['Bearer abc.def.ghi', { kind: 'token', token: 'abc.def.ghi' }],
    ['bearer abc==', { kind: 'token', token: 'abc==' }],
    ['Bearer a=b', MALFORMED_TOKEN],
    ['Bearer abc def', MALFORMED_TOKEN],
    ['Bearer ab\u00e9', MALFORMED_TOKEN],
    ['Bearer =', MALFORMED_TOKEN],
    ['Bearer ', { kind: 'invalid_request', description: 'empty bearer token' }],
    ['Basic dXNlcjpwdw==', { kind: 'none' }],
    ['Bearer\tabc', { kind: 'none' }],
    ['Bearer a/b+c~d_e-f.g', { kind: 'token', token: 'a/b+c~d_e-f.g' }],
  ] as const)('extractToken(%j) → %j', (value, expected) => {
    expect(extractToken(value, 1, 8192)).toEqual(expected);
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

describe('dpopCandidate (RFC 9449 §7.1: Authorization: DPoP <token>)', () => {
  it('finds the token after the DPoP scheme, in any case, and only there', () => {
    expect(dpopCandidate('DPoP abc.def.ghi', 1, 8192)).toEqual({ kind: 'token', token: 'abc.def.ghi' });
    expect(dpopCandidate('dpop  abc', 1, 8192)).toEqual({ kind: 'token', token: 'abc' });
    expect(dpopCandidate('Bearer abc', 1, 8192)).toEqual({ kind: 'none' });
    expect(dpopCandidate('DPoPX abc', 1, 8192)).toEqual({ kind: 'none' });
    expect(bearerCandidate('DPoP abc', 1, 8192)).toEqual({ kind: 'none' });
    expect(dpopCandidate('DPoP', 1, 8192)).toMatchObject({ kind: 'invalid_request' });
    expect(dpopCandidate('DPoP abc', 2, 8192)).toMatchObject({ kind: 'invalid_request', description: 'multiple Authorization headers' });
    expect(dpopCandidate(`DPoP ${'a'.repeat(300)}`, 1, 256)).toEqual({ kind: 'too_large' });
  });
});
