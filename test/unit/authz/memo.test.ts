/**
 * The principal memo (src/authz/memo.ts): what the gateway renders from a verified
 * principal lives on it, out of sight of everything that reads or copies the claims.
 */
import { describe, expect, it } from 'vitest';
import { principalFrom, sealPrincipal, type Principal } from '../../../src/authz/claims.js';
import { MEMO, memoOf } from '../../../src/authz/memo.js';
import { parseClaimPath } from '../../../src/authz/claims.js';

const issuer = { name: 'corp', claims: { subject: parseClaimPath('sub'), roles: parseClaimPath('roles'), scopes: parseClaimPath('scope'), groups: parseClaimPath('groups') } };

function verified(): Principal {
  const p = principalFrom({ iss: 'https://idp', sub: 'alice', exp: 2e9, amr: ['pwd', 'otp'], roles: ['admin'], scope: 'read' }, issuer);
  if (typeof p === 'string') throw new Error(p);
  return sealPrincipal(p);
}

describe('principal memo', () => {
  it('every verified principal has an empty one, and it stays writable on the frozen principal', () => {
    const p = verified();
    expect(Object.isFrozen(p)).toBe(true);
    const memo = memoOf(p)!;
    expect(memo).toEqual({ tokenHash: undefined, auditPart: undefined, identity: undefined, identityOwner: undefined, assertions: undefined, assertionsOwner: undefined });
    memo.tokenHash = 'abc';
    expect(memoOf(p)!.tokenHash).toBe('abc');
    expect(memoOf(verified())!.tokenHash).toBeUndefined(); // one per principal
  });

  it('is invisible to JSON, to key listings, to a structured clone and to deep equality', () => {
    const p = verified();
    memoOf(p)!.auditPart = ',"subject":"alice"';
    expect(JSON.stringify(p)).not.toContain('auditPart');
    expect(Reflect.ownKeys(p).filter((k) => typeof k === 'symbol' && Object.prototype.propertyIsEnumerable.call(p, k))).toEqual([]);
    const clone = structuredClone(p);
    expect(memoOf(clone)).toBeUndefined();
    expect(clone).toEqual(p);
    expect({ ...p }).toEqual(p);
  });

  it('cannot be replaced or removed on a verified principal', () => {
    const p = verified();
    const memo = memoOf(p);
    expect(() => Object.defineProperty(p, MEMO, { value: {} })).toThrow(TypeError);
    expect(Reflect.deleteProperty(p, MEMO)).toBe(false);
    expect(memoOf(p)).toBe(memo);
  });

  it('is absent on a principal built without it', () => {
    expect(memoOf({ subject: 'a' })).toBeUndefined();
  });
});
