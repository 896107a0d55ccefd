import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../src/config/load.js';
import type { RawConfig } from '../../src/config/schema.js';
import { RESTART_ONLY, compactChanges, configChanges, restartOnlyProblems, unchanged } from '../../src/reload.js';

const base = {
  listen: { host: '127.0.0.1', port: 8080 },
  issuers: [
    { name: 'corp', issuer: 'https://idp.example', jwksUri: 'https://idp.example/certs', audience: ['api'] },
    { name: 'other', issuer: 'https://other.example', jwksUri: 'https://other.example/certs', audience: ['api'] },
  ],
  upstreams: { a: { url: 'http://127.0.0.1:3001' }, b: { url: 'http://127.0.0.1:3002' } },
  routes: [
    { path: '/a/', upstream: 'a', auth: 'token' },
    { name: 'named', path: '/n/', upstream: 'b', auth: 'none' },
  ],
};

/** The effective settings of a config, as the gateway holds them (every default filled in). */
const effective = (data: unknown): RawConfig => validateConfig(data, tmpdir(), {}).effective;

describe('restartOnlyProblems', () => {
  it('names each setting a running gateway cannot follow, with both values', () => {
    const dir = mkdtempSync(join(tmpdir(), 'reload-tls-'));
    for (const f of ['gw.crt', 'gw.key']) writeFileSync(join(dir, f), 'not read here');
    const next = effective({
      ...base,
      listen: { host: '0.0.0.0', port: 9090, tls: { cert: join(dir, 'gw.crt'), key: join(dir, 'gw.key'), passphrase: 'hunter2' } },
      admin: { port: 9902 },
      verifier: { threads: 4 },
      server: { pidFile: '/run/gw.pid' },
    });
    expect(restartOnlyProblems(effective(base), next)).toEqual([
      'listen.host: cannot change on reload (127.0.0.1 → 0.0.0.0); restart the gateway',
      'listen.port: cannot change on reload (8080 → 9090); restart the gateway',
      `listen.tls: cannot change on reload (none → {"cert":"${join(dir, 'gw.crt')}","key":"${join(dir, 'gw.key')}","passphrase":"[redacted]"}); restart the gateway`,
      'admin.port: cannot change on reload (9901 → 9902); restart the gateway',
      'server.pidFile: cannot change on reload (none → /run/gw.pid); restart the gateway',
      'verifier.threads: cannot change on reload (1 → 4); restart the gateway',
    ]);
  });

  it('finds nothing when only live settings change, and lists the front-end threads ahead of their key', () => {
    const next = effective({ ...base, server: { realm: 'other', drainTimeout: '1s' }, verifier: { jwksCooldown: '1m' }, admin: { host: '127.0.0.1', port: 9901 } });
    expect(restartOnlyProblems(effective(base), next)).toEqual([]);
    expect(RESTART_ONLY).toContain('server.threads');
  });
});

describe('configChanges', () => {
  it('names routes, issuers and upstreams added, removed and changed, and every other setting by its path', () => {
    const next = effective({
      ...base,
      issuers: [{ ...base.issuers[0], audience: ['api', 'billing'] }, { name: 'third', issuer: 'https://third.example', jwksUri: 'https://third.example/certs', audience: ['api'] }],
      upstreams: { a: { url: 'http://127.0.0.1:3001' }, b: { url: 'http://127.0.0.1:4002' }, c: { url: 'http://127.0.0.1:3003' } },
      routes: [{ path: '/a/', upstream: 'a', auth: 'mfa' }, { path: '/c/', upstream: 'c', auth: 'none' }],
      server: { realm: 'corp', timeouts: { requestBodyIdle: '5s' } },
      rateLimit: { address: { points: 10, duration: '1m' } },
      log: { level: 'debug' },
    });
    const c = configChanges(effective(base), next);
    expect(c).toEqual({
      routes: { added: ['/c/'], removed: ['named'], changed: ['/a/'] },
      issuers: { added: ['third'], removed: ['other'], changed: ['corp'] },
      upstreams: { added: ['c'], removed: [], changed: ['b'] },
      settings: ['server.realm', 'server.timeouts.requestBodyIdle', 'rateLimit.address', 'log.level'],
    });
    expect(unchanged(c)).toBe(false);
    expect(compactChanges(c)).toEqual({
      routes: { added: ['/c/'], removed: ['named'], changed: ['/a/'] },
      issuers: { added: ['third'], removed: ['other'], changed: ['corp'] },
      upstreams: { added: ['c'], changed: ['b'] },
      settings: ['server.realm', 'server.timeouts.requestBodyIdle', 'rateLimit.address', 'log.level'],
    });
  });

  it('an unchanged file changes nothing, whatever the order of its routes', () => {
    const reordered = { ...base, routes: [...base.routes].reverse() };
    const c = configChanges(effective(base), effective(reordered));
    expect(unchanged(c)).toBe(true);
    expect(compactChanges(c)).toEqual({});
  });
});
