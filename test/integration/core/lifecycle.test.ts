import { describe, expect, it } from 'vitest';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { ROOT, baseConfig, runCli, startGatewayProcess, startUpstream, writeConfig } from '../harness.js';
import { freePort } from '../authn/idp.js';

describe('lifecycle', () => {
  it('serves /healthz and /readyz on the admin listener only', async () => {
    const u = await startUpstream();
    const gw = await startGatewayProcess(writeConfig(baseConfig({ upstreams: { u: { url: u.url } }, routes: [{ path: '/', upstream: 'u', auth: 'none' }] })));
    try {
      const h = await request(`${gw.adminUrl}/healthz`);
      expect(h.statusCode).toBe(200);
      expect(await h.body.json()).toEqual({ status: 'ok' });
      const r = await request(`${gw.adminUrl}/readyz`);
      expect(r.statusCode).toBe(200);
      expect(((await r.body.json()) as Record<string, unknown>)['status']).toBe('ready');
      // On the public port these paths are ordinary paths: proxied, never answered by the gateway itself.
      const p = await request(`${gw.url}/healthz`);
      await p.body.text();
      expect(u.received.at(-1)!.url).toBe('/healthz');
    } finally {
      await gw.stop();
      await u.close();
    }
  });

  it('on SIGTERM finishes in-flight requests, refuses new connections, and exits 0', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const u = await startUpstream((_req, res) => void gate.then(() => res.end('finished')));
    const gw = await startGatewayProcess(writeConfig(baseConfig({ upstreams: { u: { url: u.url } }, routes: [{ path: '/', upstream: 'u', auth: 'none' }] })));
    try {
      const inflight = request(`${gw.url}/slow`);
      for (let i = 0; i < 100 && u.received.length === 0; i++) await sleep(10);
      expect(u.received.length).toBe(1);
      gw.proc.kill('SIGTERM');
      for (let i = 0; i < 100 && !gw.stdout().includes('"msg":"draining"'); i++) await sleep(10);
      // The listen socket is closed: a new connection is refused.
      await expect(request(`${gw.url}/new`, { reset: true })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      release();
      const res = await inflight;
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('finished');
      expect(await gw.exited).toBe(0);
    } finally {
      release();
      await gw.stop();
      await u.close();
    }
  });

  it('exits 1 with one clear line when the port is in use', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const cfg = writeConfig({ ...baseConfig({ upstreams: { u: { url: 'http://127.0.0.1:1' } }, routes: [{ path: '/', upstream: 'u', auth: 'none' }] }), listen: { host: '127.0.0.1', port } });
      const r = await runCli(['start', '--config', cfg]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}`));
    } finally {
      blocker.close();
    }
  });

  it('exits 1 when another gateway already listens on the port (no silent SO_REUSEPORT sharing)', async () => {
    // A fixed port for both, as operators configure it (a port-0 bind never joins a
    // SO_REUSEPORT group, so it would not show the problem).
    const port = await freePort();
    const config = {
      ...baseConfig({ upstreams: { u: { url: 'http://127.0.0.1:1' } }, routes: [{ path: '/', upstream: 'u', auth: 'none' }] }),
      listen: { host: '127.0.0.1', port },
    };
    const first = await startGatewayProcess(writeConfig(config));
    try {
      expect(first.port).toBe(port);
      const r = await runCli(['start', '--config', writeConfig(config)]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}`));
    } finally {
      await first.stop();
    }
  });

  it('refuses to start on the pure-JS uWebSockets.js fallback', async () => {
    const cfg = writeConfig(baseConfig({ upstreams: { u: { url: 'http://127.0.0.1:1' } }, routes: [{ path: '/', upstream: 'u', auth: 'none' }] }));
    const r = await runCli(['start', '--config', cfg], { UWS_USE_FALLBACK: '1' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/mfa-gateway: uWebSockets\.js has no native build .* refusing to run on the slow pure-JS fallback/);
    expect(r.stderr).toMatch(/npm ci/);
  });
});

describe('check', () => {
  it('accepts the documented example config', async () => {
    const r = await runCli(['check', '--config', join(ROOT, 'config/gateway.example.yaml')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/ok \(3 routes, 1 upstreams, 1 issuers\)/);
  });

  it('lists every problem of a broken config as path: message, and exits 1', async () => {
    const cfg = writeConfig({
      listen: { port: 'eighty' },
      verifier: { threads: -1, cache: { maxTtl: 'forever' } },
      issuers: [{ name: 'corp', issuer: 'https://idp', audience: [], algorithms: ['none', 'HS256'], jwksFile: 'missing.json' }],
      upstreams: { api: { url: 'ftp://x' } },
      routes: [
        { path: '/a/', upstream: 'nope', roels: ['x'] },
        { path: '/a', upstream: 'api', issuers: ['other'] },
      ],
    });
    const r = await runCli(['check', '--config', cfg]);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n').slice(1);
    expect(lines).toEqual(
      expect.arrayContaining([
        'listen.port: must be a whole number from 0 to 65535',
        'verifier.threads: must be a whole number from 0 to 64',
        'verifier.cache.maxTtl: "forever" is not a duration; use a duration such as 5s, 1m, 1h30m',
        'issuers[0].audience: must list at least one audience',
        expect.stringMatching(/^issuers\[0\]\.algorithms\[0\]: none is never accepted/),
        expect.stringMatching(/^issuers\[0\]\.algorithms\[1\]: HS256 is never accepted/),
        expect.stringMatching(/^issuers\[0\]\.jwksFile: file not found: .*missing\.json$/),
        'upstreams.api.url: must be an http:// or https:// URL',
        'routes[0].roels: unknown key; did you mean "roles"?',
        'routes[0].upstream: unknown upstream nope; one of api',
        'routes[1].path: duplicate route path (same as routes[0])',
        'routes[1].issuers[0]: unknown issuer other',
      ]),
    );
    expect(r.stderr.split('\n')[0]).toMatch(/: \d+ problems$/);
  });
});
