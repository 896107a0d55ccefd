import { describe, expect, it } from 'vitest';
import { bearerChallenge } from '../../../src/authz/challenge.js';

describe('bearerChallenge (RFC 6750 §3, RFC 9470 §3, RFC 9110 §11.2)', () => {
  it.each([
    ['no parameters', {}, 'Bearer'],
    ['realm only: the no-credentials challenge (RFC 6750 §3.1)', { realm: 'mfa-gateway' }, 'Bearer realm="mfa-gateway"'],
    [
      'invalid_token with a description',
      { realm: 'r', error: 'invalid_token', description: 'The access token expired' },
      'Bearer realm="r", error="invalid_token", error_description="The access token expired"',
    ],
    [
      'insufficient_scope with scope',
      { realm: 'r', error: 'insufficient_scope', description: 'd', scope: 'orders:read orders:write' },
      'Bearer realm="r", error="insufficient_scope", error_description="d", scope="orders:read orders:write"',
    ],
    [
      'RFC 9470 step-up with acr_values and max_age, in a fixed order',
      { maxAge: 300, acrValues: 'phrh phr', description: 'd', error: 'insufficient_user_authentication', realm: 'r' },
      'Bearer realm="r", error="insufficient_user_authentication", error_description="d", acr_values="phrh phr", max_age="300"',
    ],
    ['max_age 0 is sent (a fresh login every time)', { maxAge: 0 }, 'Bearer max_age="0"'],
    ['max_age is whole seconds', { maxAge: 12.7 }, 'Bearer max_age="12"'],
    ['a negative max_age is clamped to 0', { maxAge: -5 }, 'Bearer max_age="0"'],
    ['a non-finite max_age is left out', { realm: 'r', maxAge: Number.NaN }, 'Bearer realm="r"'],
    ['empty values are left out', { realm: 'r', error: '', description: '', scope: '', acrValues: '' }, 'Bearer realm="r"'],
  ])('%s', (_name, params, want) => {
    expect(bearerChallenge(params)).toBe(want);
  });

  it('escapes " and \\ as quoted-pairs', () => {
    expect(bearerChallenge({ description: 'role "a\\b" missing' })).toBe('Bearer error_description="role \\"a\\\\b\\" missing"');
  });

  it('never lets CR, LF, other controls or non-ASCII into the header', () => {
    const v = bearerChallenge({ realm: 'r', description: 'x\r\nSet-Cookie: a=b\u0000\u007f\té' });
    expect(v).toBe('Bearer realm="r", error_description="x??Set-Cookie: a=b????"');
    expect(v).toMatch(/^[\x20-\x7e]+$/);
  });
});
