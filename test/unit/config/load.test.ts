import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, compileConfig, loadConfig } from '../../../src/config/load.js';
import { parseDuration } from '../../../src/config/duration.js';

const minimal = {
  upstreams: { api: { url: 'http://127.0.0.1:3001/v1/' } },
  routes: [{ path: '/', upstream: 'api', auth: 'none' }],
};

function problems(data: unknown): string[] {
  try {
    compileConfig(data, tmpdir());
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`);
    throw err;
  }
  return [];
}

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['15m', 900_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['1.5s', 1500],
    ['0s', 0],
    ['0ms', 0],
    ['1h30m', 5_400_000],
    ['2m30s', 150_000],
    ['1d12h', 129_600_000],
    ['1m500ms', 60_500],
    ['1d2h3m4s5ms', 93_784_005],
  ])('%s → %d', (text, ms) => expect(parseDuration(text)).toBe(ms));
  it.each(['', '10', 's', '10 sec', '-1s', '30m1h', '1h1h', '1h 30m', '1s2m', 'ms', '1.s', '1 ms', '1msm', '5M'])('rejects %j', (text) =>
    expect(parseDuration(text)).toBeUndefined(),
  );
});

describe('compileConfig', () => {
  it('fills defaults, parses durations and freezes the table', () => {
    const c = compileConfig(minimal, tmpdir());
    expect(c.listen).toEqual({ host: '0.0.0.0', port: 8080, tls: null });
    expect(c.admin).toEqual({ host: '127.0.0.1', port: 9901, tokenFile: null });
    expect(c.server.pidFile).toBeNull();
    expect(c.verifier.cacheMaxTtlMs).toBe(300_000);
    expect(c.verifier.jwksCooldownMs).toBe(30_000);
    expect(c.mfa.maxAgeSec).toBe(12 * 3600);
    expect(c.upstreams.get('api')).toMatchObject({ origin: 'http://127.0.0.1:3001', basePath: '/v1', connections: 128, connectTimeoutMs: 2000 });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.routes[0])).toBe(true);
    expect(c.identityHeaders.subject).toBe('x-auth-subject');
  });

  it('sorts routes longest prefix first and merges route mfa keys over the global ones', () => {
    const c = compileConfig(
      {
        issuers: [{ name: 'corp', issuer: 'https://idp', jwksUri: 'https://idp/keys', audience: ['api'] }],
        upstreams: { api: { url: 'http://127.0.0.1:1' } },
        mfa: { amr: ['mfa', 'hwk'], acr: ['gold'], maxAge: '1h' },
        routes: [
          { path: '/a/', upstream: 'api' },
          { path: '/a/b/c/', upstream: 'api', mfa: { maxAge: '5m' }, acr: ['phr'] },
          { path: '/a/b/', upstream: 'api', auth: 'token', methods: ['GET'] },
        ],
      },
      tmpdir(),
    );
    expect(c.routes.map((r) => r.prefix)).toEqual(['/a/b/c', '/a/b', '/a']);
    const deep = c.routes[0]!.policy;
    expect(deep.mfa).toEqual({ amr: ['mfa', 'hwk'], acr: ['gold'], maxAgeSec: 300 });
    expect(deep.requiredAcr).toEqual(['phr']);
    expect(c.routes[2]!.policy.mfa.maxAgeSec).toBe(3600);
    expect([...c.routes[1]!.methods!]).toEqual(['GET', 'HEAD']);
    expect(c.issuers[0]!.keys).toEqual({ kind: 'jwksUri', url: 'https://idp/keys' });
  });

  it('keeps the issuer path in the discovery URL and normalizes typ', () => {
    const c = compileConfig(
      {
        ...minimal,
        issuers: [{ name: 'kc', issuer: 'https://idp.example.com/realms/corp', discovery: true, audience: ['a'], typ: 'application/AT+JWT', profile: 'keycloak' }],
      },
      tmpdir(),
    );
    expect(c.issuers[0]!.keys).toEqual({ kind: 'discovery', url: 'https://idp.example.com/realms/corp/.well-known/openid-configuration' });
    expect(c.issuers[0]!.typ).toBe('at+jwt');
    expect(c.issuers[0]!.claims.roles).toEqual(['realm_access', 'roles']);
  });

  it('reads an escaped dot in a claim path as part of a namespaced claim name (Auth0)', () => {
    const c = compileConfig(
      {
        ...minimal,
        issuers: [
          {
            name: 'a0', issuer: 'https://tenant.auth0.com/', jwksUri: 'https://tenant.auth0.com/.well-known/jwks.json', audience: ['a'], profile: 'auth0',
            claims: { roles: 'https://example\\.com/roles', groups: 'app_metadata.groups' },
          },
        ],
      },
      tmpdir(),
    );
    expect(c.issuers[0]!.claims.roles).toEqual(['https://example.com/roles']);
    expect(c.issuers[0]!.claims.groups).toEqual(['app_metadata', 'groups']);
  });

  it('reports unknown keys at every level, with their path and the key they were probably meant to be', () => {
    expect(problems({ ...minimal, lisen: {}, routes: [{ path: '/', upstream: 'api', auth: 'none', rolse: [] }], verifier: { cache: { mx: 1, zzzzz: 1 } } })).toEqual([
      'verifier.cache.mx: unknown key; did you mean "max"?',
      'verifier.cache.zzzzz: unknown key',
      'routes[0].rolse: unknown key; did you mean "roles"?',
      'lisen: unknown key; did you mean "listen"?',
    ]);
  });

  it('refuses none and HS* algorithms, and key sources other than exactly one', () => {
    const p = problems({ ...minimal, issuers: [{ name: 'x', issuer: 'https://i', audience: ['a'], algorithms: ['RS256', 'none', 'HS512'], discovery: true, jwksUri: 'https://i/k' }] });
    expect(p).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^issuers\[0\]\.algorithms\[1\]: none is never accepted/),
        expect.stringMatching(/^issuers\[0\]\.algorithms\[2\]: HS512 is never accepted/),
        'issuers[0]: needs exactly one of discovery: true, jwksUri, jwksFile',
      ]),
    );
  });

  it('refuses auth routes without issuers, and policy keys on routes that cannot apply them', () => {
    expect(problems({ upstreams: minimal.upstreams, routes: [{ path: '/', upstream: 'api' }] })).toEqual(['routes[0].auth: auth: mfa needs at least one entry in issuers']);
    const issuers = [{ name: 'x', issuer: 'https://i', audience: ['a'], jwksUri: 'https://i/k' }];
    expect(problems({ ...minimal, issuers, routes: [{ path: '/', upstream: 'api', auth: 'none', roles: ['r'] }] })).toEqual([
      'routes[0].auth: roles / scopes / groups / issuers need auth: token or mfa',
    ]);
    expect(problems({ ...minimal, issuers, routes: [{ path: '/', upstream: 'api', auth: 'token', acr: ['phr'] }] })).toEqual([
      'routes[0].auth: mfa / acr requirements need auth: mfa',
    ]);
  });

  it('refuses route paths that are not normalized', () => {
    for (const path of ['orders', '/a//b', '/a/../b', '/a?x', '/a%2F', '/a\\b']) {
      expect(problems({ ...minimal, routes: [{ path, upstream: 'api', auth: 'none' }] }).length, path).toBe(1);
    }
  });

  it('refuses bad trusted proxies and an admin port equal to the public one', () => {
    expect(problems({ ...minimal, server: { trustedProxies: ['10.0.0.0/8', 'fd00::/8', '1.2.3.4', 'nope', '10.0.0.0/33'] } })).toEqual([
      'server.trustedProxies[3]: must be an IP address or CIDR block',
      'server.trustedProxies[4]: must be an IP address or CIDR block',
    ]);
    expect(problems({ ...minimal, listen: { host: '127.0.0.1', port: 9000 }, admin: { host: '127.0.0.1', port: 9000 } })).toEqual([
      'admin.port: must differ from listen.port (the admin listener is never proxied)',
    ]);
  });

  it('needs admin.tokenFile on an admin listener that is not loopback, and a usable secret in it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-token-'));
    for (const host of ['127.0.0.1', '127.8.0.1', '::1', 'localhost']) expect(problems({ ...minimal, admin: { host } }), host).toEqual([]);
    for (const host of ['0.0.0.0', '::', '10.0.0.7', 'admin.internal']) {
      expect(problems({ ...minimal, admin: { host } }), host).toEqual([
        `admin.tokenFile: is required when admin.host (${host}) is not a loopback address: state-changing admin endpoints (POST /reload) need a bearer secret`,
      ]);
    }
    writeFileSync(join(dir, 'short'), 'abc\n');
    writeFileSync(join(dir, 'spaced'), 'a secret with spaces in it\n');
    writeFileSync(join(dir, 'good'), `${'f'.repeat(64)}\n`);
    const tokenProblems = (tokenFile: string) => {
      try {
        compileConfig({ ...minimal, admin: { host: '0.0.0.0', tokenFile } }, dir);
        return [];
      } catch (err) {
        return (err as ConfigError).problems.map((p) => `${p.path}: ${p.message}`);
      }
    };
    expect(tokenProblems('short')).toEqual([`admin.tokenFile: ${join(dir, 'short')} holds 3 characters; the admin token needs at least 16 (e.g. openssl rand -hex 32 > ${join(dir, 'short')})`]);
    expect(tokenProblems('spaced')).toEqual([`admin.tokenFile: ${join(dir, 'spaced')} must hold one line of visible ASCII characters (no spaces), the secret itself`]);
    expect(tokenProblems('missing')).toEqual([`admin.tokenFile: cannot read ${join(dir, 'missing')}: ENOENT`]);
    expect(tokenProblems('good')).toEqual([]);
    const c = compileConfig({ ...minimal, admin: { host: '0.0.0.0', tokenFile: 'good' }, server: { pidFile: 'run/gw.pid' } }, dir);
    expect(c.admin.tokenFile).toBe(join(dir, 'good'));
    expect(c.server.pidFile).toBe(join(dir, 'run/gw.pid'));
  });

  it('loads YAML and JSON files and reports parse errors and duplicate keys at file:line:column', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    writeFileSync(join(dir, 'a.json'), JSON.stringify(minimal));
    expect(loadConfig(join(dir, 'a.json')).routes).toHaveLength(1);
    writeFileSync(join(dir, 'b.yaml'), 'routes: []\nroutes: []\n');
    expect(() => loadConfig(join(dir, 'b.yaml'))).toThrow(new RegExp(`^${dir}/b\\.yaml:2:1: YAML: Map keys must be unique$`));
    expect(() => loadConfig(join(dir, 'missing.yaml'))).toThrow(/missing\.yaml: cannot read the file: ENOENT$/);
  });
});
