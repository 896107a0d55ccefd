import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { claimAt, parseClaimPath, principalFrom, scopeValues, stringValues } from '../../../src/authz/claims.js';
import { compileConfig } from '../../../src/config/load.js';

describe('parseClaimPath', () => {
  it.each([
    ['sub', ['sub']],
    ['realm_access.roles', ['realm_access', 'roles']],
    ['resource_access.orders-api.roles', ['resource_access', 'orders-api', 'roles']],
    ['https://example\\.com/roles', ['https://example.com/roles']],
    ['https://example\\.com/claims.roles', ['https://example.com/claims', 'roles']],
    ['a\\\\.b', ['a\\', 'b']],
    ['a\\b', ['a\\b']],
  ])('%s', (text, want) => {
    expect(parseClaimPath(text)).toEqual(want);
    expect(Object.isFrozen(parseClaimPath(text))).toBe(true);
  });
});

describe('claimAt: nested look-ups only (DESIGN.md)', () => {
  const payload = {
    realm_access: { roles: ['a'] },
    'realm_access.roles': ['literal'],
    list: [{ x: 1 }],
    nul: null,
    resource_access: { 'orders-api': { roles: ['r'] } },
  };
  it.each([
    [['realm_access', 'roles'], ['a']],
    [['resource_access', 'orders-api', 'roles'], ['r']],
    [['realm_access', 'missing'], undefined],
    [['list', '0', 'x'], undefined],
    [['nul', 'x'], undefined],
    [['toString'], undefined],
    [['realm_access', 'roles', 'length'], undefined],
  ])('%j', (path, want) => {
    expect(claimAt(payload, path)).toEqual(want);
  });

  it('never matches a top-level key literally named "realm_access.roles"', () => {
    expect(claimAt({ 'realm_access.roles': ['x'] }, parseClaimPath('realm_access.roles'))).toBeUndefined();
  });
});

describe('stringValues / scopeValues', () => {
  it.each([
    [undefined, []],
    ['one', ['one']],
    [['a', 'b'], ['a', 'b']],
    [['a', 1], null],
    [42, null],
    [{ a: 1 }, null],
    [null, null],
    [true, null],
  ])('roles/groups %j', (v, want) => {
    expect(stringValues(v)).toEqual(want);
  });
  it.each([
    [undefined, []],
    ['openid  orders:read ', ['openid', 'orders:read']],
    [['orders:read'], ['orders:read']],
    [[1], null],
    [7, null],
  ])('scopes %j', (v, want) => {
    expect(scopeValues(v)).toEqual(want);
  });
});

describe('principalFrom', () => {
  const [issuer] = compileConfig(
    {
      upstreams: { u: { url: 'http://127.0.0.1:1' } },
      issuers: [{ name: 'kc', issuer: 'https://kc/realms/x', jwksUri: 'https://kc/keys', audience: ['a'], profile: 'keycloak' }],
      routes: [{ path: '/', upstream: 'u' }],
    },
    tmpdir(),
  ).issuers;

  it('reads the profile paths once and freezes the result', () => {
    const p = principalFrom(
      { iss: 'https://kc/realms/x', sub: 7, exp: 10, amr: ['pwd', 'otp'], acr: '1', auth_time: 5, realm_access: { roles: 'admin' }, scope: 'a b', groups: 3 },
      issuer!,
    );
    expect(p).toEqual({
      issuer: 'kc',
      iss: 'https://kc/realms/x',
      subject: '7',
      exp: 10,
      amr: ['pwd', 'otp'],
      acr: '1',
      authTime: 5,
      roles: ['admin'],
      scopes: ['a', 'b'],
      groups: null,
    });
    expect(Object.isFrozen(p)).toBe(true);
    expect(Object.isFrozen(p.amr)).toBe(true);
  });

  it.each([
    ['a string', 'mfa'],
    ['an array with a non-string', ['pwd', 1]],
    ['an object', { 0: 'mfa' }],
  ])('an amr that is %s counts as absent', (_n, amr) => {
    expect(principalFrom({ iss: 'x', exp: 1, amr }, issuer!).amr).toBeUndefined();
  });

  it('ignores an auth_time that is not a finite number, and an acr that is not a string', () => {
    const p = principalFrom({ iss: 'x', exp: 1, auth_time: '5', acr: 2 }, issuer!);
    expect(p.authTime).toBeUndefined();
    expect(p.acr).toBeUndefined();
  });
});
