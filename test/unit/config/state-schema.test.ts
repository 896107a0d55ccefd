import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileConfig, redactSecrets, validateConfig } from '../../../src/config/load.js';
import { problemLines } from './schema-walk.js';
import { restartOnlyProblems } from '../../../src/reload.js';

// The `state` keys (README "Running several instances") through the real config schema
// and compiler, as `check` and `start` see them.
const BASE = { upstreams: { app: { url: 'http://127.0.0.1:9' } }, routes: [{ path: '/', upstream: 'app', auth: 'none' }] };
const DIR = mkdtempSync(join(tmpdir(), 'mfa-gw-state-'));
writeFileSync(join(DIR, 'redis.pass'), 's3cret\n');
writeFileSync(join(DIR, 'ca.pem'), '(a CA)');
const compile = (extra: Record<string, unknown>) => compileConfig({ ...BASE, ...extra }, DIR, {});

const problems = (extra: Record<string, unknown>): string[] => problemLines(() => compile(extra));

describe('state config', () => {
  it('defaults to memory: nothing shared, no Redis settings compiled', () => {
    expect(compile({}).state).toEqual({ store: 'memory', syncIntervalMs: 250, onStoreDown: 'closed', redis: null });
  });

  it('compiles redis with its defaults, files resolved against the config folder', () => {
    expect(compile({ state: { store: 'redis' } }).state).toEqual({
      store: 'redis',
      syncIntervalMs: 250,
      onStoreDown: 'closed',
      redis: { url: 'redis://127.0.0.1:6379', password: null, keyPrefix: 'mfa-gateway:', connectTimeoutMs: 2000, commandTimeoutMs: 500, tls: null },
    });
    const c = compile({
      state: { store: 'redis', syncInterval: '100ms', onStoreDown: 'open', redis: { url: 'rediss://cache.internal:6380/2', passwordFile: 'redis.pass', keyPrefix: 'eu1:', commandTimeout: '200ms', tls: { ca: 'ca.pem' } } },
    }).state;
    expect(c).toMatchObject({ syncIntervalMs: 100, onStoreDown: 'open' });
    expect(c.redis).toEqual({
      url: 'rediss://cache.internal:6380/2',
      password: { file: join(DIR, 'redis.pass') },
      keyPrefix: 'eu1:',
      connectTimeoutMs: 2000,
      commandTimeoutMs: 200,
      tls: { ca: join(DIR, 'ca.pem'), cert: null, key: null, servername: null },
    });
    expect(compile({ state: { store: 'redis', redis: { passwordEnv: 'REDIS_PASSWORD' } } }).state.redis?.password).toEqual({ env: 'REDIS_PASSWORD' });
  });

  it('refuses what cannot work, each at its key', () => {
    expect(problems({ state: { store: 'valkey' } })).toEqual(['state.store: "valkey" is not one of memory, redis']);
    expect(problems({ state: { store: 'redis', redis: { url: 'http://cache:6379' } } })).toEqual(['state.redis.url: must be a redis:// or rediss:// (TLS) URL with a host']);
    expect(problems({ state: { syncInterval: '5ms' } })[0]).toMatch(/^state\.syncInterval: /);
    expect(problems({ state: { redis: { url: 'redis://:pw@cache:6379', passwordEnv: 'X' } } })).toEqual(['state.redis: give the password one way only: in url, passwordFile or passwordEnv']);
    expect(problems({ state: { redis: { passwordFile: 'missing.pass' } } })).toEqual([`state.redis.passwordFile: file not found: ${join(DIR, 'missing.pass')}`]);
    expect(problems({ state: { redis: { tls: { cert: 'ca.pem' } } } })).toEqual(['state.redis.tls: cert and key go together (a client certificate and its private key)']);
    expect(problems({ state: { redis: { passwrd: 'x' } } })[0]).toMatch(/^state\.redis\.passwrd: unknown key/);
  });

  it('names state.store when the old rateLimit.store is used', () => {
    expect(problems({ rateLimit: { store: 'memory' } })).toEqual(['rateLimit.store: is replaced by state.store (state: { store: memory | redis }); move the setting there']);
    expect(problems({ rateLimit: { store: 'redis' } })).toEqual(['rateLimit.store: is replaced by state.store (state: { store: memory | redis }); move the setting there']);
  });

  it('redacts a password in the URL in the effective config (check --print)', () => {
    const effective = validateConfig({ ...BASE, state: { store: 'redis', redis: { url: 'redis://gw:hunter2@cache:6379/0' } } }, DIR, {}).effective;
    const shown = JSON.stringify(redactSecrets(effective));
    expect(shown).toContain('"url":"redis://gw:[redacted]@cache:6379/0"');
    expect(shown).not.toContain('hunter2');
  });

  it('is restart-only: a reload that changes it is refused naming the key', () => {
    const running = validateConfig({ ...BASE }, DIR, {}).effective;
    const next = validateConfig({ ...BASE, state: { store: 'redis' } }, DIR, {}).effective;
    expect(restartOnlyProblems(running, next)).toEqual([expect.stringMatching(/^state: cannot change on reload \(.*"store":"memory".*→.*"store":"redis".*\); restart the gateway$/)]);
  });
});
