/**
 * Live reload on the built gateway (README "Reload"): SIGHUP, POST /reload, `--watch`
 * and the `reload` command. Under steady traffic no request fails and no connection is
 * dropped, the new route is live, an unchanged issuer keeps its cached tokens and a
 * changed one loses them; a refused reload keeps the old config and says why (log,
 * POST /reload, metrics); SIGHUP never ends the process; the admin token guards
 * POST /reload.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool, request } from 'undici';
import { CLI, baseConfig, runCli, startGatewayProcess, startUpstream, tempDir, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';
import { startIdp, type TestIdp } from '../auth/tokens.js';
import { freePort } from '../authn/idp.js';

let up: Upstream;
let corp: TestIdp;
let other: TestIdp;

beforeAll(async () => {
  [up, corp, other] = await Promise.all([startUpstream(), startIdp('/realms/corp'), startIdp('/realms/other')]);
});

afterAll(async () => {
  await Promise.all([up?.close(), corp?.close(), other?.close()]);
});

type Route = Record<string, unknown>;

/** A gateway config: two issuers (the second one's audiences given), the upstream, these routes. */
function config(routes: Route[], extra: Record<string, unknown> = {}, otherAudience: string[] = ['orders-api']): Record<string, unknown> {
  return baseConfig({
    verifier: { threads: 1 },
    issuers: [
      { name: 'corp', issuer: corp.issuer, jwksUri: corp.jwksUri, audience: ['orders-api'] },
      { name: 'other', issuer: other.issuer, jwksUri: other.jwksUri, audience: otherAudience },
    ],
    upstreams: { u: { url: up.url } },
    routes,
    ...extra,
  });
}

const A: Route = { path: '/a/', upstream: 'u', auth: 'token' };
const B: Route = { path: '/b/', upstream: 'u', auth: 'token' };

/** Waits for the n-th log line with this msg (1-based) and returns it. */
async function logLine(gw: GatewayProcess, msg: string, n = 1): Promise<Record<string, unknown>> {
  for (let i = 0; i < 300; i++) {
    const lines = gw.logLines().filter((l) => l['msg'] === msg);
    if (lines.length >= n) return lines[n - 1]!;
    await sleep(20);
  }
  throw new Error(`no ${n}. "${msg}" line in:\n${gw.stdout()}`);
}

async function get(gw: GatewayProcess, path: string, token?: string): Promise<number> {
  const res = await request(`${gw.url}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  await res.body.text();
  return res.statusCode;
}

async function metric(gw: GatewayProcess, series: string): Promise<number | undefined> {
  const res = await request(`${gw.adminUrl}/metrics`);
  const line = (await res.body.text()).split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const audits = (gw: GatewayProcess) => gw.logLines().filter((l) => l['msg'] === 'audit');

describe('reload under steady traffic', () => {
  it('fails no request, drops no connection, puts the new route live, and keeps the cached tokens of unchanged issuers only', async () => {
    const dir = tempDir('mfa-reload-');
    const file = writeConfig(config([A]), dir);
    const gw = await startGatewayProcess(file);
    const pool = new Pool(gw.url, { connections: 3 });
    let connects = 0;
    pool.on('connect', () => connects++);
    try {
      const [tCorp, tOther] = await Promise.all([corp.mint({}), other.mint({})]);
      // Both verified once before the reload: each is a cache entry now.
      for (const t of [tCorp, tOther]) expect(await get(gw, '/a/warm', t)).toBe(200);

      const statuses: number[] = [];
      const errors: unknown[] = [];
      let running = true;
      const loop = async () => {
        while (running) {
          try {
            const res = await pool.request({ path: '/a/steady', method: 'GET', headers: { authorization: `Bearer ${tCorp}` } });
            await res.body.text();
            statuses.push(res.statusCode);
          } catch (err) {
            errors.push(err);
          }
        }
      };
      const loops = [loop(), loop(), loop()];
      while (statuses.length < 30) await sleep(5);

      // The second issuer accepts one more audience: changed; the first is untouched.
      writeFileSync(file, JSON.stringify(config([A, B], {}, ['orders-api', 'billing-api'])));
      gw.proc.kill('SIGHUP');
      const reloaded = await logLine(gw, 'config reloaded');
      const atReload = statuses.length;
      while (statuses.length < atReload + 30) await sleep(5);
      running = false;
      await Promise.all(loops);

      expect(errors).toEqual([]);
      expect(statuses.every((s) => s === 200)).toBe(true);
      expect(connects).toBeLessThanOrEqual(3); // the kept-alive connections served throughout
      expect(reloaded).toMatchObject({ level: 'info', trigger: 'SIGHUP', unchanged: false, routes: { added: ['/b/'] }, issuers: { changed: ['other'] } });
      expect(reloaded).not.toHaveProperty('upstreams');

      expect(await get(gw, '/b/new', tCorp)).toBe(200);
      expect(up.received.at(-1)!.url).toBe('/b/new');
      expect(await get(gw, '/a/after', tOther)).toBe(200);
      await sleep(1200); // audit lines are flushed at least every second
      const lines = audits(gw);
      const corpHash = lines.find((l) => l['path'] === '/a/warm' && l['issuer'] === 'corp')!['token_hash'];
      // The unchanged issuer's token: verified once, a cache hit on every request since, the reload included.
      const caches = lines.filter((l) => l['token_hash'] === corpHash).map((l) => l['cache']);
      expect(caches.length).toBeGreaterThan(60);
      expect(caches[0]).toBe('miss');
      expect(caches.slice(1).every((c) => c === 'hit')).toBe(true);
      // The changed issuer's token was dropped with its settings: verified again.
      expect(lines.find((l) => l['path'] === '/a/after')).toMatchObject({ issuer: 'other', status: 200, cache: 'miss' });
      expect(await metric(gw, 'mfa_gateway_config_reload_total{result="success"}')).toBe(1);
      expect(await metric(gw, 'mfa_gateway_config_last_reload_success')).toBe(1);
    } finally {
      await pool.close();
      expect(await gw.stop()).toBe(0);
    }
  });
});

describe('a refused reload', () => {
  it('keeps the old config, logs and answers every problem, and the metrics say so', async () => {
    const dir = tempDir('mfa-reload-bad-');
    const file = writeConfig(config([A]), dir);
    const gw = await startGatewayProcess(file);
    try {
      const token = await corp.mint({});
      const startedAt = await metric(gw, 'mfa_gateway_config_last_reload_success_timestamp_seconds');
      expect(startedAt).toBeGreaterThan(1e9);
      expect(await metric(gw, 'mfa_gateway_config_last_reload_success')).toBe(1);

      // Not a valid file: the problems of `check`, in its words.
      writeFileSync(file, JSON.stringify(config([A, { path: '/b/', upstrem: 'u', auth: 'token' }])));
      gw.proc.kill('SIGHUP');
      const failed = await logLine(gw, 'config reload failed; the running config stays');
      expect(failed).toMatchObject({
        level: 'error',
        trigger: 'SIGHUP',
        problems: ['routes[1].upstrem: unknown key; did you mean "upstream"? (routes[1].upstream is required)'],
      });

      // Valid, but a listener would have to move: named with both values.
      writeFileSync(file, JSON.stringify({ ...config([A, B]), listen: { host: '127.0.0.1', port: 9090 }, verifier: { threads: 2 } }));
      const res = await request(`${gw.adminUrl}/reload`, { method: 'POST' });
      expect(res.statusCode).toBe(422);
      expect(await res.body.json()).toEqual({
        error: 'reload_refused',
        error_description: 'The config was not reloaded; the running config stays.',
        config: file,
        problems: [
          'listen.port: cannot change on reload (0 → 9090); restart the gateway',
          'verifier.threads: cannot change on reload (1 → 2); restart the gateway',
        ],
      });
      expect(await logLine(gw, 'config reload failed; the running config stays', 2)).toMatchObject({ trigger: 'POST /reload' });

      expect(await get(gw, '/a/x', token)).toBe(200);
      expect(await get(gw, '/b/x', token)).toBe(404);
      expect(await metric(gw, 'mfa_gateway_config_reload_total{result="failure"}')).toBe(2);
      expect(await metric(gw, 'mfa_gateway_config_reload_total{result="success"}')).toBe(0);
      expect(await metric(gw, 'mfa_gateway_config_last_reload_success')).toBe(0);
      expect(await metric(gw, 'mfa_gateway_config_last_reload_success_timestamp_seconds')).toBe(startedAt);

      // Fixed: the next reload succeeds and the metrics recover.
      writeFileSync(file, JSON.stringify(config([A, B])));
      const ok = await request(`${gw.adminUrl}/reload`, { method: 'POST' });
      expect(ok.statusCode).toBe(200);
      expect(await ok.body.json()).toMatchObject({ status: 'reloaded', config: file, changes: { routes: { added: ['/b/'], removed: [], changed: [] } } });
      expect(await get(gw, '/b/x', token)).toBe(200);
      expect(await metric(gw, 'mfa_gateway_config_last_reload_success')).toBe(1);
      expect(await metric(gw, 'mfa_gateway_config_last_reload_success_timestamp_seconds')).toBeGreaterThanOrEqual(startedAt!);
    } finally {
      expect(await gw.stop()).toBe(0);
    }
  });
});

describe('SIGHUP', () => {
  it('never ends the process: a burst of them reloads the unchanged file, a success that changes nothing', async () => {
    const gw = await startGatewayProcess(writeConfig(config([A])));
    try {
      for (let i = 0; i < 5; i++) gw.proc.kill('SIGHUP');
      const first = await logLine(gw, 'config reloaded');
      expect(first).toMatchObject({ trigger: 'SIGHUP', unchanged: true });
      await sleep(300);
      // One reload at a time; those asked for meanwhile become one more.
      const reloads = gw.logLines().filter((l) => l['msg'] === 'config reloaded');
      expect(reloads.length).toBeGreaterThanOrEqual(1);
      expect(reloads.length).toBeLessThanOrEqual(2);
      expect(gw.proc.exitCode).toBeNull();
      const res = await request(`${gw.adminUrl}/healthz`);
      expect(res.statusCode).toBe(200);
      await res.body.text();
    } finally {
      expect(await gw.stop()).toBe(0);
    }
  });
});

describe('the admin token', () => {
  it('guards POST /reload when admin.tokenFile is set: 401 and no reload without it, a reload with it', async () => {
    const dir = tempDir('mfa-admin-token-');
    const secret = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
    writeFileSync(join(dir, 'admin.token'), `${secret}\n`);
    const admin = { host: '127.0.0.1', port: 0, tokenFile: 'admin.token' };
    const file = writeConfig({ ...config([A]), admin }, dir);
    const gw = await startGatewayProcess(file);
    try {
      writeFileSync(file, JSON.stringify({ ...config([A, B]), admin }));
      for (const authorization of [undefined, 'Bearer wrong-secret-of-the-same-kind', `Basic ${secret}`]) {
        const res = await request(`${gw.adminUrl}/reload`, { method: 'POST', ...(authorization ? { headers: { authorization } } : {}) });
        expect(res.statusCode, authorization).toBe(401);
        expect(res.headers['www-authenticate']).toBe('Bearer realm="mfa-gateway-admin"');
        expect(await res.body.json()).toEqual({ error: 'unauthorized', error_description: 'This endpoint needs the admin token (admin.tokenFile).' });
      }
      await sleep(100);
      expect(gw.logLines().filter((l) => l['msg'] === 'reloading the config')).toEqual([]);
      expect(await get(gw, '/b/x', await corp.mint({}))).toBe(404);

      const res = await request(`${gw.adminUrl}/reload`, { method: 'POST', headers: { authorization: `Bearer ${secret}` } });
      expect(res.statusCode).toBe(200);
      await res.body.text();
      expect(await get(gw, '/b/x', await corp.mint({}))).toBe(200);
      // Reads need no token.
      const ready = await request(`${gw.adminUrl}/readyz`);
      expect(ready.statusCode).toBe(200);
      await ready.body.text();
    } finally {
      expect(await gw.stop()).toBe(0);
    }
    expect(gw.stdout()).not.toContain(secret);
  });

  it('is required by check for an admin listener that is not on a loopback address', async () => {
    const r = await runCli(['check', '--config', writeConfig({ ...config([A]), admin: { host: '0.0.0.0', port: 0 } })]);
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n').slice(1, -1)).toEqual([
      'admin.tokenFile: is required when admin.host (0.0.0.0) is not a loopback address: state-changing admin endpoints (POST /reload) need a bearer secret',
    ]);
  });
});

describe('the reload command and the pid file', () => {
  it('checks the file, then signals the gateway the pid file names; the pid file lives as long as the gateway', async () => {
    const dir = tempDir('mfa-reload-cmd-');
    const pidFile = join(dir, 'run', 'gw.pid');
    const server = { drainTimeout: '10s', pidFile: 'run/gw.pid' };
    mkdirSync(join(dir, 'run'));
    const file = writeConfig({ ...config([A]), server }, dir);
    const gw = await startGatewayProcess(file);
    try {
      expect(readFileSync(pidFile, 'utf8')).toBe(`${gw.proc.pid}\n`);

      // A broken file is refused by the command itself: the gateway hears nothing.
      writeFileSync(file, JSON.stringify({ ...config([A, { path: '/b/', upstream: 'nope', auth: 'token' }]), server }));
      const bad = await runCli(['reload', '--config', file]);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toBe(`${file}: 1 problem\nroutes[1].upstream: unknown upstream nope; one of u\n`);

      writeFileSync(file, JSON.stringify({ ...config([A, B]), server }));
      const ok = await runCli(['reload', '--config', file]);
      expect(ok.stderr).toBe('');
      expect(ok.code).toBe(0);
      expect(ok.stdout).toBe(
        `${file}: ok (2 routes, 1 upstreams, 2 issuers); sent SIGHUP to the gateway (pid ${gw.proc.pid}): its log says "config reloaded" or "config reload failed", and mfa_gateway_config_last_reload_success is 1 or 0\n`,
      );
      expect(await logLine(gw, 'config reloaded')).toMatchObject({ trigger: 'SIGHUP', routes: { added: ['/b/'] } });
      expect(gw.logLines().filter((l) => l['msg'] === 'reloading the config')).toHaveLength(1);
      expect(await get(gw, '/b/x', await corp.mint({}))).toBe(200);

      // A second gateway with the same pid file refuses to start, and leaves the file alone.
      const second = await runCli(['start', '--config', file]);
      expect(second.code).toBe(1);
      expect(second.stderr).toContain(`mfa-gateway: server.pidFile ${pidFile} names process ${gw.proc.pid}, a running gateway: stop it first`);
      expect(readFileSync(pidFile, 'utf8')).toBe(`${gw.proc.pid}\n`);
    } finally {
      expect(await gw.stop()).toBe(0);
    }
    expect(existsSync(pidFile)).toBe(false);
    const gone = await runCli(['reload', '--config', file]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toBe(`mfa-gateway: no pid file at ${pidFile}: is the gateway running?\n`);

    // A stale pid file (a gateway killed without cleaning up) is replaced at start.
    writeFileSync(pidFile, '999999999\n');
    const again = await startGatewayProcess(file);
    try {
      expect(readFileSync(pidFile, 'utf8')).toBe(`${again.proc.pid}\n`);
      expect(again.logLines()).toContainEqual(expect.objectContaining({ msg: 'pid file named a process that is gone; replaced', stalePid: 999999999 }));
    } finally {
      expect(await again.stop()).toBe(0);
    }
  });

  it('says what to do when the config has no server.pidFile', async () => {
    const file = writeConfig(config([A]));
    const r = await runCli(['reload', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `mfa-gateway: ${file} sets no server.pidFile, so the running gateway cannot be found; set it (and restart), or send SIGHUP yourself, or POST /reload on the admin listener\n`,
    );
  });
});

describe('start --watch', () => {
  it('reloads the file whenever it changes', async () => {
    const file = writeConfig(config([A]));
    const gw = await startGatewayProcess(file, {}, [process.execPath, CLI, 'start', '--config', file, '--watch']);
    try {
      expect(await logLine(gw, 'watching the config file: every change is reloaded')).toMatchObject({ config: file });
      writeFileSync(file, JSON.stringify(config([A, B])));
      expect(await logLine(gw, 'config reloaded')).toMatchObject({ trigger: 'watch', routes: { added: ['/b/'] } });
      expect(await get(gw, '/b/x', await corp.mint({}))).toBe(200);
    } finally {
      expect(await gw.stop()).toBe(0);
    }
  });
});

describe('upstreams across a reload', () => {
  it('a request in flight to a changed or removed upstream finishes on its old pool; new requests go to the new address', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const held = await startUpstream((_req, res) => void gate.then(() => res.end('late')));
    const next = await startUpstream();
    const routes = [{ path: '/u/', upstream: 'u', auth: 'none' }, { path: '/v/', upstream: 'v', auth: 'none' }];
    const file = writeConfig(baseConfig({ upstreams: { u: { url: held.url }, v: { url: held.url } }, routes }));
    const gw = await startGatewayProcess(file);
    try {
      const inflight = ['/u/slow', '/v/slow'].map((p) => request(`${gw.url}${p}`).then(async (r) => ({ status: r.statusCode, body: await r.body.text() })));
      for (let i = 0; i < 200 && held.received.length < 2; i++) await sleep(10);
      expect(held.received.length).toBe(2);
      writeFileSync(file, JSON.stringify(baseConfig({ upstreams: { u: { url: next.url } }, routes: [routes[0]] })));
      const res = await request(`${gw.adminUrl}/reload`, { method: 'POST' });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toMatchObject({ changes: { upstreams: { added: [], removed: ['v'], changed: ['u'] }, routes: { removed: ['/v/'] } } });
      expect(await get(gw, '/u/new')).toBe(200);
      expect(next.received.map((r) => r.url)).toEqual(['/u/new']);
      expect(await get(gw, '/v/new')).toBe(404);
      release();
      expect(await Promise.all(inflight)).toEqual([
        { status: 200, body: 'late' },
        { status: 200, body: 'late' },
      ]);
    } finally {
      release();
      expect(await gw.stop()).toBe(0);
      await Promise.all([held.close(), next.close()]);
    }
  });
});

describe('live settings', () => {
  it('a reload moves the audit log, changes the log level and the admin token; an audit file that cannot be opened refuses it', async () => {
    const dir = tempDir('mfa-reload-live-');
    const tokenFile = join(dir, 'admin.token');
    const [first, second] = ['a'.repeat(32), 'b'.repeat(32)];
    writeFileSync(tokenFile, first);
    const admin = { host: '127.0.0.1', port: 0, tokenFile: 'admin.token' };
    const file = writeConfig({ ...config([A]), admin }, dir);
    const gw = await startGatewayProcess(file);
    const reload = async (secret: string) => {
      const res = await request(`${gw.adminUrl}/reload`, { method: 'POST', headers: { authorization: `Bearer ${secret}` } });
      return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
    };
    try {
      // The audit file's folder does not exist: refused before anything changed.
      writeFileSync(file, JSON.stringify({ ...config([A]), admin, audit: { destination: 'missing/audit.log' } }));
      expect(await reload(first)).toEqual({
        status: 422,
        body: expect.objectContaining({ problems: [`audit.destination: cannot open the audit log ${join(dir, 'missing/audit.log')}: ENOENT`] }),
      });

      writeFileSync(file, JSON.stringify({ ...config([A]), admin, audit: { destination: 'audit.log', flushInterval: '100ms' }, log: { level: 'debug' } }));
      writeFileSync(tokenFile, second);
      expect((await reload(first)).status).toBe(200);
      expect(await get(gw, '/a/after', await corp.mint({}))).toBe(200);
      // The new level is in force at once: the reload's own steps are logged at debug.
      expect(gw.logLines()).toContainEqual(expect.objectContaining({ level: 'debug', msg: expect.stringMatching(/^reload: upstream pools/) }));
      for (let i = 0; i < 100 && !(existsSync(join(dir, 'audit.log')) && readFileSync(join(dir, 'audit.log'), 'utf8').includes('/a/after')); i++) await sleep(20);
      expect(JSON.parse(readFileSync(join(dir, 'audit.log'), 'utf8').trim().split('\n').at(-1)!)).toMatchObject({ msg: 'audit', path: '/a/after', status: 200 });
      expect(audits(gw).filter((l) => l['path'] === '/a/after')).toEqual([]);
      // The token file was read again: the old secret no longer opens POST /reload.
      expect((await reload(first)).status).toBe(401);
      expect((await reload(second)).status).toBe(200);
    } finally {
      expect(await gw.stop()).toBe(0);
    }
  });

  it('leaves a level set by --log-level alone', async () => {
    const file = writeConfig(config([A]));
    const gw = await startGatewayProcess(file, {}, [process.execPath, CLI, 'start', '--config', file, '--log-level', 'info']);
    try {
      writeFileSync(file, JSON.stringify({ ...config([A]), log: { level: 'debug' } }));
      gw.proc.kill('SIGHUP');
      expect(await logLine(gw, 'config reloaded')).toMatchObject({ settings: ['log.level'] });
      expect(await get(gw, '/nope')).toBe(404);
      await sleep(100);
      expect(gw.logLines().filter((l) => l['level'] === 'debug')).toEqual([]);
    } finally {
      expect(await gw.stop()).toBe(0);
    }
  });
});

describe('settings that can only change with a restart', () => {
  it('are listed, each with its old and new value', async () => {
    const port = await freePort();
    const file = writeConfig({ ...config([A]), admin: { host: '127.0.0.1', port } });
    const gw = await startGatewayProcess(file);
    try {
      writeFileSync(file, JSON.stringify({ ...config([A]), admin: { host: '127.0.0.1', port: port + 1 }, server: { pidFile: 'gw.pid' } }));
      const res = await request(`${gw.adminUrl}/reload`, { method: 'POST' });
      expect(res.statusCode).toBe(422);
      expect(((await res.body.json()) as { problems: string[] }).problems).toEqual([
        `admin.port: cannot change on reload (${port} → ${port + 1}); restart the gateway`,
        'server.pidFile: cannot change on reload (none → gw.pid); restart the gateway',
      ]);
    } finally {
      expect(await gw.stop()).toBe(0);
    }
  });
});
