/**
 * Issue 16, "Done when": a user following README "Running several instances" runs two
 * instances against one Redis on one machine and sees a revocation on one refused on the
 * other. This reads the walkthrough's commands from the README, starts what its first
 * block starts (a redis-server, the demo, the two gateways of config/instance-a.yaml and
 * instance-b.yaml) on free ports instead of the fixed ones, runs the second block's
 * command lines in one bash session with those ports put in, and compares the answers
 * with what the README says they are.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, startGatewayProcess, tempDir, type GatewayProcess } from '../harness.js';
import { freePort } from '../authn/idp.js';
import { recordOutput, tokensFile } from '../leaks.js';
import { spawnDemo } from '../demo/helpers.js';
import { startRedisServer, waitFor, type RedisServer } from './redis-server.js';

/** The two sh blocks under the walkthrough's heading: what to start, what to type. */
function walkthrough(): { start: string[]; commands: string[] } {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const at = readme.indexOf('#### Two instances on one machine');
  expect(at).toBeGreaterThan(0);
  const blocks = [...readme.slice(at).matchAll(/```sh\n([\s\S]*?)```/g)].slice(0, 2).map((m) => m[1]!.trim().split('\n'));
  return { start: blocks[0]!, commands: blocks[1]! };
}

let redis: RedisServer;
let demo: ChildProcess;
let a: GatewayProcess;
let b: GatewayProcess;
const ports: Record<string, number> = {};

/** An instance's config as the README starts it, with every fixed port moved to a free one. */
function instanceConfig(file: string): string {
  const text = readFileSync(join(ROOT, 'config', file), 'utf8')
    .replace('port: 8081', `port: ${ports['a']}`)
    .replace('port: 9911', `port: ${ports['aAdmin']}`)
    .replace('port: 8082', `port: ${ports['b']}`)
    .replace('port: 9912', `port: ${ports['bAdmin']}`)
    .replace('http://127.0.0.1:9000', `http://127.0.0.1:${ports['idp']}`)
    .replace('http://127.0.0.1:3001', `http://127.0.0.1:${ports['upstream']}`)
    .replace('redis://127.0.0.1:6379', redis.url);
  const out = join(tempDir('mfa-gw-walkthrough-'), 'gateway.yaml');
  writeFileSync(out, text);
  return out;
}

beforeAll(async () => {
  const { start } = walkthrough();
  // The first block, as the test runs it: each line stands for one started process below.
  expect(start.map((l) => l.replace(/\s+#.*$/, ''))).toEqual([
    "redis-server --port 6379 --save '' --appendonly no",
    'npm ci && npm run demo',
    'node dist/cli.js start --config config/instance-a.yaml',
    'node dist/cli.js start --config config/instance-b.yaml',
  ]);
  redis = await startRedisServer();
  for (const k of ['a', 'aAdmin', 'b', 'bAdmin', 'gateway', 'admin', 'idp', 'upstream']) ports[k] = await freePort();
  demo = (await spawnDemo({ gateway: ports['gateway']!, admin: ports['admin']!, idp: ports['idp']!, upstream: ports['upstream']! }, 'walkthrough-demo')).proc;
  [a, b] = await Promise.all([startGatewayProcess(instanceConfig('instance-a.yaml')), startGatewayProcess(instanceConfig('instance-b.yaml'))]);
}, 90_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  if (demo && demo.exitCode === null) {
    const exited = new Promise((r) => demo.once('exit', r));
    demo.kill('SIGINT');
    await exited;
  }
  await redis?.close();
});

describe('README: two instances on one machine', () => {
  it('shows a revocation on instance A refused by instance B, and B ready with the store up', () => {
    const { commands } = walkthrough();
    expect(commands).toHaveLength(6);
    const moved = (line: string) =>
      line
        .replaceAll('127.0.0.1:8081', `127.0.0.1:${a.port}`)
        .replaceAll('127.0.0.1:8082', `127.0.0.1:${b.port}`)
        .replaceAll('127.0.0.1:9911', `127.0.0.1:${a.adminPort}`)
        .replaceAll('127.0.0.1:9912', `127.0.0.1:${b.adminPort}`);
    const tokens = tokensFile();
    const [token, ...rest] = commands.map(moved);
    expect(token).toBe('MFA=$(node dist/demo/cli.js token --mfa)');
    // The test's own wait (not a README line): the revocation reaches B within one interval.
    const untilRefused = `for i in $(seq 100); do [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $MFA" http://127.0.0.1:${b.port}/api/hello)" = 401 ] && break; sleep 0.1; done`;
    const script = [
      token,
      ...(tokens ? ['printf \'%s\\n\' "$MFA" >> "$LEAK_TOKENS"'] : []),
      ...rest.flatMap((line, i) => [...(i === 3 ? [untilRefused] : []), `echo "@@step ${i + 1}"`, line]),
    ].join('\n');
    const run = spawnSync('bash', ['-e', '-c', script], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, DEMO_IDP_PORT: String(ports['idp']), LEAK_TOKENS: tokens ?? '' },
    });
    recordOutput('walkthrough-commands.stdout', run.stdout);
    recordOutput('walkthrough-commands.stderr', run.stderr);
    expect(run.status, run.stderr).toBe(0);
    const [, s1, s2, s3, s4, s5] = run.stdout.split(/@@step \d\n/);
    expect(s1).toBe('200\n');
    expect(s2).toBe('200\n');
    expect(JSON.parse(s3!)).toMatchObject({ issuer: 'demo', kind: 'sub', value: 'alice' });
    expect(s4).toMatch(/^HTTP\/1\.1 401 Unauthorized\r$/m);
    expect(s4).toMatch(/^www-authenticate: Bearer realm="mfa-gateway", error="invalid_token", error_description="token revoked"\r$/m);
    expect(JSON.parse(s5!)).toMatchObject({ status: 'ready', state: { store: 'redis', redis: 'redis://127.0.0.1:' + redis.port, up: true } });
  });

  it('keeps both answering while Redis is stopped, the gauge at 0, and at 1 again once it is back', async () => {
    const gauge = async (gw: GatewayProcess) => {
      const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
      return /^mfa_gateway_state_store_up (\d)$/m.exec(text)?.[1];
    };
    await redis.stop();
    for (const gw of [a, b]) await waitFor(() => gauge(gw), (v) => v === '0', 15_000, 'the gauge at 0');
    for (const gw of [a, b]) expect(gw.logLines().filter((l) => String(l['msg']).startsWith('state store down'))).toHaveLength(1);
    expect((await fetch(`${b.adminUrl}/readyz`)).status).toBe(200);
    await redis.start();
    for (const gw of [a, b]) await waitFor(() => gauge(gw), (v) => v === '1', 15_000, 'the gauge back at 1');
  });
});
