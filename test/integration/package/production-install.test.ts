/**
 * The production install path (README "Production install"): `npm pack` of this
 * checkout, installed into a clean folder with `--omit=dev`, gives a binary that checks
 * a config and serves: no demo, no TypeScript, none of the demo's dependencies.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import YAML from 'yaml';
import { ROOT, startGatewayProcess, startUpstream, tempDir, type Upstream } from '../harness.js';

let dir: string;
let bin: string;
let up: Upstream;

function run(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, npm_config_update_notifier: 'false' } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

beforeAll(async () => {
  dir = tempDir('mfa-pack-');
  // dist/ was built by `npm test`; --ignore-scripts keeps `prepare` from rebuilding it under the other tests.
  const packed = JSON.parse(run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], ROOT)) as { filename: string }[];
  const tarball = join(dir, packed[0]!.filename);
  const app = join(dir, 'app');
  run('mkdir', ['-p', app], dir);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
  run('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', tarball], app);
  bin = join(app, 'node_modules', '.bin', 'mfa-gateway');
  up = await startUpstream();
}, 180_000);

afterAll(async () => {
  await up?.close();
});

describe('the packed package', () => {
  it('ships the gateway and nothing of the demo or the sources', () => {
    const pkg = join(dir, 'app', 'node_modules', 'mfa-gateway');
    expect(existsSync(join(pkg, 'dist', 'cli.js'))).toBe(true);
    expect(existsSync(join(pkg, 'dist', 'demo'))).toBe(false);
    expect(existsSync(join(pkg, 'src'))).toBe(false);
    // The systemd unit, dashboard and alert rules (deploy/) come with it.
    for (const f of ['mfa-gateway.service', 'grafana-dashboard.json', 'prometheus-rules.yaml']) expect(existsSync(join(pkg, 'deploy', f)), f).toBe(true);
    const installed = readdirSync(join(dir, 'app', 'node_modules'));
    for (const devOnly of ['oidc-provider', 'otplib', 'qrcode', 'typescript', 'vitest']) expect(installed, devOnly).not.toContain(devOnly);
  });

  it('checks the example config it ships', () => {
    const example = join(dir, 'app', 'node_modules', 'mfa-gateway', 'config', 'gateway.example.yaml');
    const out = run(bin, ['check', '--config', example], dir);
    expect(out).toMatch(/gateway\.example\.yaml: ok \(/);
  });

  it('starts and proxies with --omit=dev dependencies only', async () => {
    const config = join(dir, 'gateway.yaml');
    writeFileSync(
      config,
      YAML.stringify({
        listen: { host: '127.0.0.1', port: 0 },
        admin: { host: '127.0.0.1', port: 0 },
        upstreams: { app: { url: up.url } },
        routes: [{ path: '/', upstream: 'app', auth: 'none' }],
      }),
    );
    const gw = await startGatewayProcess(config, {}, [bin, 'start', '--config', config]);
    try {
      const res = await request(`${gw.url}/hello`);
      expect(res.statusCode).toBe(200);
      expect(((await res.body.json()) as { url: string }).url).toBe('/hello');
      expect(JSON.parse(readFileSync(join(dir, 'app', 'node_modules', 'mfa-gateway', 'package.json'), 'utf8')).name).toBe('mfa-gateway');
    } finally {
      await gw.stop();
    }
  });
});
