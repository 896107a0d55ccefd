/**
 * Reading RFC 7662 introspection answers (status, media type, body → result), and the
 * client secret's sources. The client against a real OP: test/integration/introspection/.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseClaimPath } from '../../../src/authz/claims.js';
import { readClientSecret, readIntrospectionAnswer, type AnswerContext } from '../../../src/introspection/client.js';

const NOW = 1_800_000_000_000;
const ISS = 'https://idp.example.com';
const issuer = {
  name: 'corp',
  issuer: ISS,
  claims: { subject: parseClaimPath('sub'), roles: parseClaimPath('realm_access.roles'), scopes: parseClaimPath('scope'), groups: parseClaimPath('groups') },
};
const ctx = (over: Partial<AnswerContext> = {}): AnswerContext => ({ issuer, nowMs: NOW, clockToleranceSec: 0, requireTokenType: true, ...over });
const active = { active: true, sub: 'alice', exp: NOW / 1000 + 300, iat: NOW / 1000 - 10, iss: ISS, token_type: 'Bearer', client_id: 'app', sid: 's1' };
const read = (body: unknown, over: Partial<AnswerContext> = {}, status = 200, type: string | null = 'application/json; charset=utf-8') =>
  readIntrospectionAnswer(status, type, typeof body === 'string' ? body : JSON.stringify(body), ctx(over));

describe('readIntrospectionAnswer', () => {
  it('turns an active answer into the principal a JWT payload with the same claims gives', () => {
    const r = read({ ...active, amr: ['pwd', 'otp'], acr: 'gold', auth_time: NOW / 1000 - 60, realm_access: { roles: ['reader'] }, scope: 'a b', cnf: { jkt: 'thumb' } });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.principal).toEqual({
      issuer: 'corp', iss: ISS, subject: 'alice', exp: NOW / 1000 + 300, amr: ['pwd', 'otp'], acr: 'gold', authTime: NOW / 1000 - 60,
      roles: ['reader'], scopes: ['a', 'b'], groups: [], sub: 'alice', sid: 's1', jti: undefined, iat: NOW / 1000 - 10, cnfJkt: 'thumb', clientId: 'app',
    });
    expect(Object.isFrozen(r.principal)).toBe(true);
    expect(r.claims['cnf']).toEqual({ jkt: 'thumb' });
  });

  it('takes the issuer as iss when the answer names none, and accepts DPoP as the token type', () => {
    const { iss: _iss, ...noIss } = active;
    const r = read({ ...noIss, token_type: 'DPoP' });
    expect(r.ok && r.principal.iss).toBe(ISS);
  });

  it.each([
    ['inactive', 'inactive', { active: false }],
    ['inactive', 'expired', { ...active, exp: NOW / 1000 }],
    ['inactive', 'not_yet_valid', { ...active, nbf: NOW / 1000 + 1 }],
    // A refresh token introspects active too; oidc-provider leaves token_type out for it.
    ['inactive', 'not_an_access_token', { ...active, token_type: undefined }],
    ['inactive', 'not_an_access_token', { ...active, token_type: 'refresh_token' }],
    ['invalid_response', 'active_missing', { sub: 'alice', exp: NOW / 1000 + 300 }],
    ['invalid_response', 'active_missing', { ...active, active: 'true' }],
    ['invalid_response', 'wrong_issuer', { ...active, iss: 'https://other.example.com' }],
    ['invalid_response', 'sub_missing', { ...active, sub: undefined }],
    ['invalid_response', 'sub_missing', { ...active, sub: 7 }],
    ['invalid_response', 'exp_missing', { ...active, exp: undefined }],
    ['invalid_response', 'exp_missing', { ...active, exp: '2030' }],
    ['invalid_response', 'claim_unrenderable', { ...active, sub: '\ud800' }],
    ['invalid_response', 'not_json', '{"active":tru'],
    ['invalid_response', 'not_json', '[true]'],
    ['invalid_response', 'not_json', `${'['.repeat(40)}${']'.repeat(40)}`],
  ] as const)('%s (%s)', (reason, detail, body) => {
    expect(read(body)).toEqual({ ok: false, reason, detail });
  });

  it('applies the clock tolerance, the optional audience, and lets a token type be optional', () => {
    expect(read({ ...active, exp: NOW / 1000 - 5 }, { clockToleranceSec: 10 }).ok).toBe(true);
    expect(read({ ...active, aud: ['orders', 'x'] }, { audience: ['orders'] }).ok).toBe(true);
    expect(read({ ...active, aud: 'billing' }, { audience: ['orders'] })).toEqual({ ok: false, reason: 'inactive', detail: 'wrong_audience' });
    expect(read({ ...active, token_type: undefined }, { requireTokenType: false }).ok).toBe(true);
    expect(read({ ...active, token_type: 'refresh_token' }, { requireTokenType: false }).ok).toBe(false);
  });

  it.each([
    [401, 'unavailable', 'client_auth_failed'],
    [403, 'unavailable', 'client_auth_failed'],
    [429, 'unavailable', 'http_429'],
    [500, 'unavailable', 'http_500'],
    [503, 'unavailable', 'http_503'],
    [302, 'invalid_response', 'http_302'],
    [404, 'invalid_response', 'http_404'],
  ] as const)('HTTP %i → %s (%s)', (status, reason, detail) => {
    expect(read(active, {}, status)).toEqual({ ok: false, reason, detail });
  });

  it('wants application/json (RFC 7662 §2.2)', () => {
    expect(read(active, {}, 200, 'application/JSON').ok).toBe(true);
    for (const type of [null, 'text/html', 'application/token-introspection+jwt', 'application/jsonx']) {
      expect(read(active, {}, 200, type)).toEqual({ ok: false, reason: 'invalid_response', detail: 'not_json' });
    }
  });
});

describe('readClientSecret', () => {
  const dir = mkdtempSync(join(tmpdir(), 'secret-'));

  it('reads a file (without its final line break) or an environment variable', () => {
    writeFileSync(join(dir, 's1'), 'top secret value\n');
    expect(readClientSecret({ file: join(dir, 's1') })).toBe('top secret value');
    expect(readClientSecret({ env: 'GW_SECRET' }, { GW_SECRET: 'from-env' })).toBe('from-env');
  });

  it('says where it looked, never what it found', () => {
    writeFileSync(join(dir, 's2'), 'bad\u0001secret-content');
    const attempts: [() => string, RegExp][] = [
      [() => readClientSecret({ file: join(dir, 'missing') }), /cannot read the client secret file .*missing: ENOENT/],
      [() => readClientSecret({ file: join(dir, 's2') }), /client secret in .*s2 is empty or holds characters other than printable ASCII/],
      [() => readClientSecret({ env: 'GW_SECRET' }, {}), /environment variable GW_SECRET \(client secret\) is not set/],
      [() => readClientSecret({ env: 'GW_SECRET' }, { GW_SECRET: '' }), /\$GW_SECRET is empty/],
      [() => readClientSecret({}), /exactly one of file or env/],
      [() => readClientSecret({ file: 'a', env: 'B' }), /exactly one of file or env/],
    ];
    for (const [attempt, message] of attempts) {
      expect(attempt).toThrow(message);
      try {
        attempt();
      } catch (err) {
        expect((err as Error).message).not.toContain('secret-content');
      }
    }
  });
});
