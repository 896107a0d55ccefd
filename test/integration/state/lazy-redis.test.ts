/**
 * ioredis is loaded only by a gateway whose `state.store` is `redis` (src/state/index.ts):
 * every module a process loads stays in its heap and is marked by every full GC. The
 * built gateway runs with a preload that reports, at exit, how many of ioredis's files
 * the process loaded.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseConfig, CLI, startGatewayProcess, writeConfig } from '../harness.js';
import { startRedisServer, type RedisServer } from './redis-server.js';

const PROBE = join(mkdtempSync(join(tmpdir(), 'mfa-lazy-redis-')), 'probe.mjs');
writeFileSync(
  PROBE,
  `import { createRequire } from 'node:module';
const cache = createRequire(import.meta.url).cache;
process.on('exit', () => {
  const n = Object.keys(cache).filter((k) => k.includes('/node_modules/ioredis/')).length;
  process.stderr.write('ioredis files loaded: ' + n + '\\n');
});
`,
);

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedisServer();
}, 30_000);
afterAll(async () => {
  await redis?.close();
});

async function ioredisFilesLoaded(state: Record<string, unknown>): Promise<number> {
  const config = baseConfig({
    upstreams: { u: { url: 'http://127.0.0.1:9' } },
    routes: [{ path: '/', upstream: 'u', auth: 'none' }],
    state,
  });
  const file = writeConfig(config);
  const gw = await startGatewayProcess(file, {}, [process.execPath, '--import', PROBE, CLI, 'start', '--config', file]);
  expect(await gw.stop()).toBe(0);
  const m = /ioredis files loaded: (\d+)/.exec(gw.stderr());
  expect(m, gw.stderr()).not.toBeNull();
  return Number(m![1]);
}

describe('the Redis client is loaded only when state.store is redis', () => {
  it('memory (the default): no file of ioredis is loaded', async () => {
    expect(await ioredisFilesLoaded({ store: 'memory' })).toBe(0);
  });

  it('redis: ioredis is loaded (so the probe does see it)', async () => {
    expect(await ioredisFilesLoaded({ store: 'redis', redis: { url: redis.url } })).toBeGreaterThan(0);
  });
});
