import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { claimAt, parseClaimPath, principalFrom, sealPrincipal, scopeValues, stringValues, type Principal, type PrincipalSource } from '../../../src/authz/claims.js';
import { compileConfig } from '../../../src/config/load.js';
import { memoOf } from '../../../src/authz/memo.js';

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

describe('claimAt: nested look-ups only (README "Overriding a profile")', () => {
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
  const config = compileConfig(
    {
      upstreams: { u: { url: 'http://127.0.0.1:1' } },
      issuers: [
        { name: 'kc', issuer: 'https://kc/realms/x', jwksUri: 'https://kc/keys', audience: ['a'], profile: 'keycloak' },
        { name: 'a0', issuer: 'https://a0/', jwksUri: 'https://a0/keys', audience: ['a'], claims: { subject: 'https://example\\.com/user.id' } },
      ],
      routes: [{ path: '/', upstream: 'u' }],
    },
    tmpdir(),
  );
  const issuer = config.issuers[0]!;
  const namespaced = config.issuers[1]!;

  /** The principal of a payload that must be accepted. */
  function accepted(payload: Record<string, unknown>, from: PrincipalSource = issuer): Principal {
    const p = principalFrom(payload, from);
    if (typeof p === 'string') throw new Error(`refused: ${p}`);
    return p;
  }

  it('reads the profile paths once and freezes the result', () => {
    const p = accepted({ iss: 'https://kc/realms/x', sub: 7, exp: 10, amr: ['pwd', 'otp'], acr: '1', auth_time: 5, realm_access: { roles: 'admin' }, scope: 'a b', groups: 3 });
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
      sub: '7',
      sid: undefined,
      jti: undefined,
      iat: undefined,
      cnfJkt: undefined,
      clientId: undefined,
    });
    expect(Object.isFrozen(p)).toBe(true);
    expect(Object.isFrozen(p.amr)).toBe(true);
    expect(Object.isFrozen(p.roles)).toBe(true);
  });

  it('carries the lifecycle claims: sub, sid, jti, iat, cnf.jkt and client_id, when of the right type', () => {
    const p = accepted({ iss: 'x', sub: 'alice', exp: 10, sid: 's-1', jti: 'j-1', iat: 5, cnf: { jkt: 'thumb' }, client_id: 'app' });
    expect(p).toMatchObject({ sub: 'alice', sid: 's-1', jti: 'j-1', iat: 5, cnfJkt: 'thumb', clientId: 'app' });
    expect(accepted({ iss: 'x', sub: 7, exp: 10 }).sub).toBe('7');
    const odd = accepted({ iss: 'x', sub: 'alice', exp: 10, sid: 3, jti: '', iat: '5', client_id: ['app'] });
    expect([odd.sid, odd.jti, odd.iat, odd.cnfJkt, odd.clientId]).toEqual([undefined, undefined, undefined, undefined, undefined]);
  });

  it('refuses a token bound by a confirmation method it cannot check, and a cnf that binds to nothing (RFC 7800 §3.1)', () => {
    const base = { iss: 'x', sub: 'alice', exp: 10 };
    // RFC 8705 §3.1 (mTLS), alone or beside jkt: it must never pass as a plain bearer token.
    expect(principalFrom({ ...base, cnf: { 'x5t#S256': 'cert' } }, issuer)).toBe('binding_unsupported');
    expect(principalFrom({ ...base, cnf: { jkt: 'thumb', 'x5t#S256': 'cert' } }, issuer)).toBe('binding_unsupported');
    expect(principalFrom({ ...base, cnf: { kid: 'k' } }, issuer)).toBe('binding_unsupported');
    for (const cnf of ['thumb', null, [], {}, { jkt: '' }, { jkt: 7 }]) expect(principalFrom({ ...base, cnf }, issuer), JSON.stringify(cnf)).toBe('claim_invalid');
    expect(accepted({ ...base, cnf: { jkt: 'thumb' } }).cnfJkt).toBe('thumb');
  });

  it('needs only the issuer name and claim paths (what a worker task carries)', () => {
    const p = accepted({ iss: 'https://kc/realms/x', sub: 'alice', exp: 10, realm_access: { roles: ['r'] } }, { name: 'kc', claims: issuer.claims });
    expect(p).toMatchObject({ issuer: 'kc', subject: 'alice', roles: ['r'] });
  });

  it.each([
    ['a string', 'mfa'],
    ['an array with a non-string', ['pwd', 1]],
    ['an object', { 0: 'mfa' }],
  ])('an amr that is %s counts as absent', (_n, amr) => {
    expect(accepted({ iss: 'x', sub: 'alice', exp: 1, amr }).amr).toBeUndefined();
  });

  it('ignores an auth_time that is not a finite number, and an acr that is not a string', () => {
    const p = accepted({ iss: 'x', sub: 'alice', exp: 1, auth_time: '5', acr: 2 });
    expect(p.authTime).toBeUndefined();
    expect(p.acr).toBeUndefined();
  });

  describe('the subject (RFC 9068 §2.2: sub is required)', () => {
    it.each([
      ['no sub', {}],
      ['sub null', { sub: null }],
      ['sub empty', { sub: '' }],
    ])('%s → sub_missing', (_n, claims) => {
      expect(principalFrom({ iss: 'x', exp: 1, ...claims }, issuer)).toBe('sub_missing');
    });

    it.each([
      ['an object', { id: 1 }],
      ['an array', ['alice']],
      ['a boolean', true],
    ])('a sub that is %s → claim_invalid', (_n, sub) => {
      expect(principalFrom({ iss: 'x', exp: 1, sub }, issuer)).toBe('claim_invalid');
    });

    it('is read at the issuer\'s subject path: a value only under `sub` does not count there', () => {
      expect(accepted({ iss: 'x', exp: 1, 'https://example.com/user': { id: 'u-1' } }, namespaced).subject).toBe('u-1');
      expect(principalFrom({ iss: 'x', exp: 1, sub: 'alice' }, namespaced)).toBe('sub_missing');
      expect(principalFrom({ iss: 'x', exp: 1, 'https://example.com/user': {} }, namespaced)).toBe('sub_missing');
    });
  });

  describe('claims that cannot be rendered as text (lone UTF-16 surrogates)', () => {
    const base = { iss: 'https://kc/realms/x', sub: 'alice', exp: 10 };
    // JSON.parse of the escapes a signed token may carry: "\ud800" is valid JSON (RFC 8259 §8.2).
    const lone = JSON.parse('"x\\ud800"') as string;
    const trail = JSON.parse('"\\udc00y"') as string;

    it('the test strings are what a token decodes to', () => {
      expect(lone.isWellFormed()).toBe(false);
      expect(trail.isWellFormed()).toBe(false);
      expect(JSON.parse('"\\ud83d\\ude00"')).toBe('😀');
    });

    it.each([
      ['sub', { sub: lone }],
      ['iss', { iss: `https://kc/${trail}` }],
      ['an amr item', { amr: ['pwd', lone] }],
      ['acr', { acr: lone }],
      ['a role (array)', { realm_access: { roles: ['ok', trail] } }],
      ['a role (one string)', { realm_access: { roles: lone } }],
      ['a scope (string)', { scope: `openid ${lone}` }],
      ['a scope (array)', { scope: [lone] }],
      ['a group', { groups: [lone] }],
    ])('%s → claim_unrenderable', (_n, claims) => {
      expect(principalFrom({ ...base, ...claims }, issuer)).toBe('claim_unrenderable');
    });

    it('a lone surrogate in a claim the principal does not carry is not looked at', () => {
      expect(accepted({ ...base, note: lone, amr: [1, lone] }).amr).toBeUndefined();
    });

    it('well-formed text outside ASCII passes, surrogate pairs included', () => {
      const p = accepted({ ...base, sub: 'Zoë 😀', realm_access: { roles: ['日本'] } });
      expect(p.subject).toBe('Zoë 😀');
      expect(p.roles).toEqual(['日本']);
    });
  });

  it('sealPrincipal freezes a structured clone again as an equal principal, lists included, with a memo of its own', () => {
    const original = accepted({ iss: 'x', sub: 'a', exp: 1, amr: ['pwd'], realm_access: { roles: ['r'] }, scope: 's', groups: ['g'] });
    const p = structuredClone(original);
    expect(Object.isFrozen(p)).toBe(false);
    expect(memoOf(p)).toBeUndefined(); // the clone carries no memo (a symbol key)
    const f = sealPrincipal(p);
    expect(f).toEqual(original);
    for (const v of [f, f.amr, f.roles, f.scopes, f.groups]) expect(Object.isFrozen(v)).toBe(true);
    expect(memoOf(f)).toBeDefined();
    expect(memoOf(f)).not.toBe(memoOf(original));
  });

  it('principals with equal lists share one frozen copy of each; unequal lists never do', () => {
    const a = sealPrincipal(structuredClone(accepted({ iss: 'x', sub: 'a', exp: 1, amr: ['pwd', 'otp'], realm_access: { roles: ['r1', 'r2'] }, scope: 'read write' })));
    const b = sealPrincipal(structuredClone(accepted({ iss: 'x', sub: 'b', exp: 1, amr: ['pwd', 'otp'], realm_access: { roles: ['r1', 'r2'] }, scope: 'read write' })));
    const c = sealPrincipal(structuredClone(accepted({ iss: 'x', sub: 'c', exp: 1, amr: ['pwd'], realm_access: { roles: ['r1,r2'] }, scope: 'read' })));
    expect(a.amr).toBe(b.amr);
    expect(a.roles).toBe(b.roles);
    expect(a.scopes).toBe(b.scopes);
    expect(c.amr).toEqual(['pwd']);
    expect(c.roles).toEqual(['r1,r2']);
    expect(c.scopes).toEqual(['read']);
    // `sub` is the subject here (the default subject path): one string, not two.
    expect(a.sub).toBe(a.subject);
  });

  it('sealPrincipal seals a principal built on this thread (verifier.threads: 0) once, and a sealed one is kept as it is', () => {
    const p = accepted({ iss: 'x', sub: 'a', exp: 1, amr: ['pwd'] });
    expect(Object.isFrozen(p)).toBe(true);
    expect(memoOf(p)).toBeUndefined(); // principalFrom makes none: a worker's would be lost to the clone
    const sealed = sealPrincipal(p);
    expect(sealed).toEqual(p);
    expect(memoOf(sealed)).toBeDefined();
    expect(sealPrincipal(sealed)).toBe(sealed);
  });
});
