import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileConfig } from '../../../src/config/load.js';
import { problemLines } from './schema-walk.js';

// The token-lifecycle keys (DPoP, back-channel logout, revocation, introspection,
// identity assertions) through the real config schema and compiler, as `check` and
// `start` see them.
const ISSUER = { name: 'corp', issuer: 'https://idp.example', jwksUri: 'https://idp.example/certs', audience: ['api'] };
const BASE = { upstreams: { app: { url: 'http://127.0.0.1:9' } } };
// The folder of the config: the files it names are found there.
const DIR = mkdtempSync(join(tmpdir(), 'mfa-gw-lifecycle-'));
mkdirSync(join(DIR, 'keys'));
writeFileSync(join(DIR, 'nonce.key'), 'n'.repeat(32));
writeFileSync(join(DIR, 'keys/a.pem'), '(a key)');
const compile = (extra: Record<string, unknown>, routes: unknown[] = [{ path: '/', upstream: 'app' }]) =>
  compileConfig({ ...BASE, issuers: [ISSUER], routes, ...extra }, DIR, {});

/** Every problem of a config as `path: message` ([] when it compiles). */
const problems = (extra: Record<string, unknown>, routes?: unknown[]): string[] => problemLines(() => compile(extra, routes));

describe('lifecycle config', () => {
  it('fills every default: DPoP optional without nonces, logout on, no introspection, no assertion', () => {
    const c = compile({});
    expect(c.dpop).toEqual({ algorithms: ['ES256', 'ES384', 'EdDSA', 'PS256', 'RS256'], iatWindowSec: 60, replayMax: 100_000, nonceSecretFile: null, anyRequired: false });
    expect(c.logoutPath).toBe('/.well-known/mfa-gateway/backchannel-logout');
    expect(c.revocation).toEqual({ max: 100_000, maxTokenLifetimeMs: 86_400_000 });
    expect(c.identityAssertion).toBeNull();
    expect(c.assertionHeader).toBe('x-mfa-gateway-assertion');
    expect(c.server.publicOrigin).toBeNull();
    expect(c.issuers[0]).toMatchObject({ dpop: 'optional', dpopNonce: false, logoutAudience: ['api'], logoutScope: 'session', introspection: null });
    expect(c.routes[0]!.introspection).toBeNull();
    // The assertion header is stripped from client requests even while assertions are off.
    expect(c.rewriter.isStripped('x-mfa-gateway-assertion', null)).toBe(true);
  });

  it('compiles what is set: durations, files against the config folder, the challenge with the algorithms', () => {
    const c = compile({
      server: { publicOrigin: 'https://api.example.com/' },
      issuers: [{ ...ISSUER, dpop: 'required', dpopNonce: true, logoutAudience: ['gw-client'], logoutScope: 'subject', introspection: { clientId: 'gw', clientSecretEnv: 'GW_SECRET', timeout: '500ms', cacheTtl: '30s', maxConcurrent: 4 } }],
      dpop: { algorithms: ['ES256'], iatWindow: '30s', replayMax: 5000, nonceSecretFile: 'nonce.key' },
      backchannelLogout: { path: '/logout/bc' },
      revocation: { max: 500, maxTokenLifetime: '2h' },
      identityAssertion: { enabled: true, header: 'X-Gateway-Identity', issuer: 'https://gw.example', keyFile: 'keys/a.pem', lifetime: '2m' },
    });
    expect(c.server.publicOrigin).toBe('https://api.example.com');
    expect(c.issuers[0]).toMatchObject({
      dpop: 'required',
      dpopNonce: true,
      logoutAudience: ['gw-client'],
      logoutScope: 'subject',
      introspection: { endpoint: null, clientId: 'gw', secret: { env: 'GW_SECRET' }, timeoutMs: 500, cacheTtlMs: 30_000, maxConcurrent: 4 },
    });
    expect(c.routes[0]!.introspection).toBe('corp');
    expect(c.dpop).toEqual({ algorithms: ['ES256'], iatWindowSec: 30, replayMax: 5000, nonceSecretFile: join(DIR, 'nonce.key'), anyRequired: true });
    expect(c.logoutPath).toBe('/logout/bc');
    expect(c.revocation).toEqual({ max: 500, maxTokenLifetimeMs: 7_200_000 });
    expect(c.identityAssertion).toEqual({ header: 'x-gateway-identity', issuer: 'https://gw.example', keyFile: join(DIR, 'keys/a.pem'), lifetimeSec: 120 });
    expect(c.answers.dpop.dpop_htm_mismatch).toEqual({
      reason: 'dpop_htm_mismatch',
      challenge: 'DPoP error="invalid_dpop_proof", error_description="The DPoP proof htm does not match the request method.", algs="ES256"',
    });
    expect(c.answers.dpop.dpop_bound_as_bearer.challenge).toMatch(/^DPoP error="invalid_token", /);
    expect(Object.isFrozen(c.answers.dpop.dpop_replayed)).toBe(true);
    expect(compile({ backchannelLogout: { enabled: false } }).logoutPath).toBeNull();
  });

  it('refuses what would not do what it says', () => {
    expect(problems({ server: { publicOrigin: 'https://api.example.com/v1' } })).toEqual([
      'server.publicOrigin: must be an origin: http(s)://host[:port], without path, query or fragment',
    ]);
    expect(problems({ dpop: { algorithms: ['HS256'] } })[0]).toMatch(/^dpop\.algorithms\[0\]: /);
    expect(problems({ backchannelLogout: { path: '/a/../logout' } })[0]).toMatch(/^backchannelLogout\.path: must be a normalized path/);
    expect(problems({ issuers: [{ ...ISSUER, dpop: 'always' }] })[0]).toMatch(/^issuers\[0\]\.dpop: /);
    expect(problems({ issuers: [{ ...ISSUER, introspection: { clientId: 'gw' } }] })).toEqual([
      'issuers[0].introspection: needs exactly one of clientSecretFile, clientSecretEnv (a secret is never written into the config)',
    ]);
    expect(problems({ issuers: [{ ...ISSUER, introspection: { clientId: 'gw', clientSecretEnv: 'A', clientSecretFile: '/nope' } }] }).sort()).toEqual([
      'issuers[0].introspection.clientSecretFile: file not found: /nope',
      'issuers[0].introspection: needs exactly one of clientSecretFile, clientSecretEnv (a secret is never written into the config)',
    ]);
    expect(problems({ identityAssertion: { header: 'x-auth-subject' } })).toEqual(['identityAssertion.header: same header name as identityHeaders.subject']);
    expect(problems({ identityAssertion: { header: 'authorization' } })).toEqual(['identityAssertion.header: authorization is a header the gateway or HTTP itself controls; choose another name']);
    expect(problems({ identityAssertion: { header: 'x_assertion' } })[0]).toMatch(/^identityAssertion\.header: must be a header name/);
    expect(problems({ identityAssertion: { keyFile: '/nope.pem' } })).toEqual(['identityAssertion.keyFile: file not found: /nope.pem']);
  });

  it('refuses a route that could send an opaque token to two introspecting issuers, and accepts one that names one of them', () => {
    const a = { ...ISSUER, introspection: { clientId: 'gw', clientSecretEnv: 'A' } };
    const b = { ...a, name: 'other', issuer: 'https://other.example' };
    const routes = [
      { path: '/all/', upstream: 'app' },
      { path: '/one/', upstream: 'app', issuers: ['other'] },
      { path: '/public/', upstream: 'app', auth: 'none' },
    ];
    expect(problems({ issuers: [a, b] }, routes)).toEqual([
      'routes[0].issuers: an opaque token on this route could go to 2 issuers with introspection (corp, other); list at most one of them in issuers',
    ]);
    const c = compile({ issuers: [a, b] }, routes.slice(1));
    expect(c.routes.map((r) => [r.name, r.introspection])).toEqual([
      ['/public/', null],
      ['/one/', 'other'],
    ]);
  });
});
