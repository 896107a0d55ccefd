/**
 * The Redis password (README "Running several instances"): from a file, an environment
 * variable or the URL, it reaches Redis and nothing else: no log line, no /readyz body,
 * no `check --print`. A wrong one keeps the store down with Redis's own refusal as the
 * cause, while the gateway serves.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseConfig, runCli, startGatewayProcess, startUpstream, tempDir, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';
import { startRedisServer, waitFor, type RedisServer } from './redis-server.js';

const PASSWORD = 'pw-7d1f0c9e-redis-only';
let redis: RedisServer;
let up: Upstream;
const started: GatewayProcess[] = [];

beforeAll(async () => {
  [redis, up] = await Promise.all([startRedisServer(['--requirepass', PASSWORD], PASSWORD), startUpstream()]);
});

afterAll(async () => {
  await Promise.all(started.map((g) => g.stop()));
  await Promise.all([up?.close(), redis?.close()]);
});

const config = (redisKeys: Record<string, unknown>) =>
  baseConfig({ upstreams: { app: { url: up.url } }, routes: [{ path: '/', upstream: 'app', auth: 'none' }], state: { store: 'redis', redis: { keyPrefix: 'cred-test:', ...redisKeys } } });

async function gateway(redisKeys: Record<string, unknown>, env: Record<string, string> = {}): Promise<GatewayProcess> {
  const gw = await startGatewayProcess(writeConfig(config(redisKeys)), env);
  started.push(gw);
  return gw;
}

const state = async (gw: GatewayProcess) => ((await (await fetch(`${gw.adminUrl}/readyz`)).json()) as { state: Record<string, unknown> }).state;
const everything = async (gw: GatewayProcess) => `${gw.stdout()}${gw.stderr()}${JSON.stringify(await state(gw))}${await (await fetch(`${gw.adminUrl}/metrics`)).text()}`;

describe('the Redis password', () => {
  it('is read from passwordFile, passwordEnv or the URL, and shown nowhere', async () => {
    const dir = tempDir('mfa-gw-redis-pass-');
    writeFileSync(join(dir, 'redis.password'), `${PASSWORD}\n`);
    const fromFile = await gateway({ url: redis.url, passwordFile: join(dir, 'redis.password') });
    const fromEnv = await gateway({ url: redis.url, passwordEnv: 'GW_REDIS_PASSWORD' }, { GW_REDIS_PASSWORD: PASSWORD });
    const fromUrl = await gateway({ url: `redis://:${PASSWORD}@127.0.0.1:${redis.port}` });
    for (const gw of [fromFile, fromEnv, fromUrl]) {
      await waitFor(() => state(gw), (s) => s['up'] === true, 15_000, 'the store up');
      expect((await state(gw))['redis']).toBe(redis.url);
      expect(await everything(gw)).not.toContain(PASSWORD);
      expect((await fetch(`${gw.url}/anything`)).status).toBe(200);
    }
  });

  it('keeps the store down when refused, naming Redis’s refusal, never the password', async () => {
    const wrong = 'not-the-password-5c2a';
    const gw = await gateway({ url: redis.url, passwordEnv: 'GW_REDIS_PASSWORD' }, { GW_REDIS_PASSWORD: wrong });
    const s = await state(gw);
    expect(s).toMatchObject({ store: 'redis', up: false });
    expect(String(s['error'])).toMatch(/WRONGPASS|NOAUTH|invalid/i);
    expect(await everything(gw)).not.toContain(wrong);
    expect(gw.logLines().some((l) => String(l['msg']).startsWith('state store unreachable at start'))).toBe(true);
    expect((await fetch(`${gw.adminUrl}/readyz`)).status).toBe(200);
    expect((await fetch(`${gw.url}/anything`)).status).toBe(200);
  });

  it('stops the start with a line naming the variable when passwordEnv is not set', async () => {
    const r = await runCli(['start', '--config', writeConfig(config({ url: redis.url, passwordEnv: 'GW_REDIS_UNSET' }))]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('state.redis.passwordEnv: the environment variable GW_REDIS_UNSET is not set');
  });

  it('is redacted by check --print when it is in the URL', async () => {
    const r = await runCli(['check', '--print', '--config', writeConfig(config({ url: `redis://gw:${PASSWORD}@127.0.0.1:${redis.port}/0` }))]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`url: redis://gw:[redacted]@127.0.0.1:${redis.port}/0`);
    expect(r.stdout).not.toContain(PASSWORD);
  });
});
