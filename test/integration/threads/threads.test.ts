/**
 * `server.threads` on the built gateway (README "Threads"): one uWS app per front-end
 * thread on one port, every thread serving; /metrics summing every thread's counters,
 * with the spread per thread; audit lines whole from every thread; limits counted per
 * process; a thread that dies replaced while the others keep serving; SIGTERM draining
 * every thread; and the port check of the single loop kept.
 *
 * Which thread serves a connection is the kernel's choice (SO_REUSEPORT), so the tests
 * open many fresh connections, or learn a kept-alive connection's thread from the
 * per-thread counter, instead of assuming a spread.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { baseConfig, runCli, startGatewayProcess, startUpstream, tempDir, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';
import { makeKey, sign, startIdp, type IdpServer, type TestKey } from '../authn/idp.js';
import { connectionPerThread, fresh, metricsText, onConnection, samples, total, until } from './helpers.js';

const SYNC_MS = 100;
const SUBJECT_LIMIT = 10;
const HOUR = 3_600_000;


describe('server.threads: 2', () => {
  let key: TestKey;
  let idp: IdpServer;
  let up: Upstream;
  let gw: GatewayProcess;
  let dir: string;
  const now = () => Math.floor(Date.now() / 1000);

  beforeAll(async () => {
    key = await makeKey('ES256', 'k1');
    idp = await startIdp([key.jwk]);
    up = await startUpstream();
    up.server.keepAliveTimeout = 5000;
    dir = tempDir('mfa-threads-');
    gw = await startGatewayProcess(
      writeConfig(
        baseConfig({
          server: { threads: 2, drainTimeout: '5s' },
          issuers: [{ name: 'corp', issuer: idp.issuer, discovery: true, audience: ['api'], algorithms: ['ES256'] }],
          upstreams: { app: { url: up.url } },
          audit: { destination: 'audit.log', flushInterval: '20ms' },
          state: { syncInterval: `${SYNC_MS}ms` },
          routes: [
            { path: '/public/', name: 'public', upstream: 'app', auth: 'none' },
            { path: '/subject/', name: 'subject', upstream: 'app', auth: 'token', rateLimit: { subject: { points: SUBJECT_LIMIT, duration: '1h' } } },
          ],
        }),
        dir,
      ),
      { MFA_GATEWAY_FAILPOINTS: 'thread-exit' },
    );
  });

  afterAll(async () => {
    await gw?.stop();
    await up?.close();
    await idp?.close();
  });

  it('serves on every thread, and /metrics sums them: requests_total is the number sent', async () => {
    const sent = 40;
    for (let i = 0; i < sent; i++) expect((await fresh(`${gw.url}/public/spread-${i}`)).status).toBe(200);
    const text = await metricsText(gw);
    const perThread = samples(text, 'mfa_gateway_thread_requests_total');
    expect([...perThread.keys()].sort()).toEqual(['{thread="0"}', '{thread="1"}']);
    for (const n of perThread.values()) expect(n).toBeGreaterThan(0);
    expect(total(perThread)).toBe(sent);
    expect(samples(text, 'mfa_gateway_requests_total')).toEqual(new Map([['{route="public",status="200",reason="ok"}', sent]]));
    // The histogram is merged too: one count per request, whichever thread timed it.
    expect(samples(text, 'mfa_gateway_request_duration_seconds_count').get('{route="public",decision="allow"}')).toBe(sent);
    // One process: build_info is 1, not one per thread.
    expect(total(samples(text, 'mfa_gateway_build_info'))).toBe(1);
    expect(samples(text, 'mfa_gateway_thread_restarts_total')).toEqual(new Map([['', 0]]));
    expect(up.received.filter((r) => r.url.startsWith('/public/spread-'))).toHaveLength(sent);
  });

  it('writes every audit line whole: many concurrent requests over both threads, each line one JSON object', async () => {
    const n = 200;
    const tag = randomUUID();
    const answers = await Promise.all(Array.from({ length: n }, (_, i) => fresh(`${gw.url}/public/audit-${tag}-${i}`)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const file = join(dir, 'audit.log');
    const mine = (): Record<string, unknown>[] =>
      readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.length > 0)
        // Every line of the file parses, not only this test's.
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((e) => String(e['path']).startsWith(`/public/audit-${tag}-`));
    await until(() => mine().length === n, 'every audit line');
    const lines = mine();
    expect(new Set(lines.map((e) => e['path'])).size).toBe(n);
    expect(lines.every((e) => e['msg'] === 'audit' && e['status'] === 200 && e['reason'] === 'ok')).toBe(true);
  });

  it('counts a per-subject limit per process: the other thread refuses once it synced, after the one request of the documented slack', async () => {
    // Windows are aligned to the hour (README "Threads"): start well inside one, so the test never straddles two.
    const left = HOUR - (Date.now() % HOUR);
    if (left < 30_000) await sleep(left + 100);
    const token = await sign(key, { iss: idp.issuer, aud: 'api', sub: `limited-${randomUUID()}`, iat: now(), exp: now() + 600 });
    const auth = { authorization: `Bearer ${token}` };
    const syncs = async () => samples(await metricsText(gw), 'mfa_gateway_thread_syncs_total').get('') ?? 0;
    const [x, y] = await connectionPerThread(gw, '/public/');
    try {
      const before = await syncs();
      // The limit, all on thread X: every one admitted.
      for (let i = 0; i < SUBJECT_LIMIT; i++) expect(await onConnection(x, `/subject/x-${i}`, auth)).toBe(200);
      expect(await onConnection(x, '/subject/x-over', auth)).toBe(429);
      // X's counts reached the hub: it synced at least once since, and then had nothing left to send.
      await until(async () => (await syncs()) > before, 'a sync of thread X');
      let quiet = -1;
      await until(async () => {
        const n = await syncs();
        await sleep(SYNC_MS * 10);
        return n === (quiet = await syncs());
      }, 'thread X to have nothing left to sync');
      // Thread Y has never synced this key: it judges on its own count, 0, and admits one
      // (the slack: a thread learns the others' counts of a key when it syncs that key).
      expect(await onConnection(y, '/subject/y-1', auth)).toBe(200);
      await until(async () => (await syncs()) > quiet, 'the sync of thread Y');
      // Now Y knows the process's total: refused, as X refuses.
      for (let i = 0; i < 3; i++) expect(await onConnection(y, `/subject/y-over-${i}`, auth)).toBe(429);
      expect(await onConnection(x, '/subject/x-over-2', auth)).toBe(429);
      // Counted per thread, Y would have admitted SUBJECT_LIMIT of its own; the process admitted SUBJECT_LIMIT + 1.
    } finally {
      await Promise.all([x.destroy(), y.destroy()]);
    }
  }, 60_000);

  it('refuses a revoked token on every thread: the admin listener\'s revocation reaches each replica', async () => {
    const sub = `revoked-${randomUUID()}`;
    const token = await sign(key, { iss: idp.issuer, aud: 'api', sub, iat: now() - 5, exp: now() + 600 });
    const auth = { authorization: `Bearer ${token}` };
    // Cached on both threads first (a revocation must refuse cached tokens too).
    const before = await Promise.all(Array.from({ length: 20 }, (_, i) => fresh(`${gw.url}/subject/r-${i}`, auth)));
    expect(before.filter((a) => a.status === 200).length).toBeGreaterThan(0);
    const res = await request(`${gw.adminUrl}/revocations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ issuer: 'corp', sub }) });
    expect(res.statusCode).toBe(201);
    await res.body.text();
    // The change reaches each replica as a message between threads: by the time the answer has crossed loopback, in practice.
    await until(async () => (await fresh(`${gw.url}/subject/probe`, auth)).status === 401, 'the revocation on a thread');
    const after = await Promise.all(Array.from({ length: 20 }, (_, i) => fresh(`${gw.url}/subject/s-${i}`, auth)));
    expect(after.map((a) => a.status)).toEqual(Array.from({ length: 20 }, () => 401));
    expect(JSON.parse(after[0]!.body)).toMatchObject({ error: 'invalid_token' });
    const text = await metricsText(gw);
    // Every thread refused some of them (the spread), and the process counts each once.
    expect(total(samples(text, 'mfa_gateway_revoked_requests_total'))).toBe(20 + 1);
  });

  it('replaces a thread that dies; requests on the other thread never fail; the process keeps serving', async () => {
    const [victim, survivor] = await connectionPerThread(gw, '/public/');
    try {
      // The failpoint throws outside every request boundary on the victim's thread.
      await victim.request({ method: 'GET', path: '/public/failpoint/thread-exit' }).then(
        (r) => r.body.text(),
        () => '',
      );
      const statuses: number[] = [];
      for (let i = 0; i < 30; i++) {
        statuses.push(await onConnection(survivor, `/public/survivor-${i}`));
      }
      expect(statuses).toEqual(Array.from({ length: 30 }, () => 200));
      await until(async () => samples(await metricsText(gw), 'mfa_gateway_thread_restarts_total').get('') === 1, 'the restart to be counted');
      expect(gw.logLines()).toContainEqual(expect.objectContaining({ level: 'error', msg: 'front-end thread died; starting another' }));
      // Both threads serve again: fresh connections reach both (each thread's count grows
      // from what it was once the restart was counted, so a series the dead thread left
      // behind cannot pass for the replacement).
      const base = samples(await metricsText(gw), 'mfa_gateway_thread_requests_total');
      await until(async () => {
        await fresh(`${gw.url}/public/again`);
        const t = samples(await metricsText(gw), 'mfa_gateway_thread_requests_total');
        return t.size === 2 && [...t].every(([k, v]) => v > (base.get(k) ?? 0));
      }, 'both threads to serve');
      for (let i = 0; i < 20; i++) expect((await fresh(`${gw.url}/public/after-${i}`)).status).toBe(200);
      expect(gw.proc.exitCode).toBe(null);
    } finally {
      await Promise.all([victim.destroy(), survivor.destroy()]);
    }
  });
});

describe('server.threads: 2, reloading', () => {
  it('puts a reloaded config in force on every thread, and refuses a change of server.threads, naming it', async () => {
    const up = await startUpstream();
    const dir = tempDir('mfa-threads-reload-');
    const config = (routes: object[], threads = 2) =>
      baseConfig({ server: { threads, drainTimeout: '5s' }, upstreams: { u: { url: up.url } }, routes });
    const file = writeConfig(config([{ path: '/a/', name: 'a', upstream: 'u', auth: 'none' }]), dir);
    const gw = await startGatewayProcess(file);
    try {
      expect((await fresh(`${gw.url}/b/x`)).status).toBe(404);
      writeConfig(config([{ path: '/a/', name: 'a', upstream: 'u', auth: 'none' }, { path: '/b/', name: 'b', upstream: 'u', auth: 'none' }]), dir);
      const ok = await request(`${gw.adminUrl}/reload`, { method: 'POST' });
      expect(ok.statusCode).toBe(200);
      await ok.body.text();
      const before = samples(await metricsText(gw), 'mfa_gateway_thread_requests_total');
      const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => fresh(`${gw.url}/b/x-${i}`)));
      expect(answers.map((a) => a.status)).toEqual(Array.from({ length: 30 }, () => 200));
      const after = samples(await metricsText(gw), 'mfa_gateway_thread_requests_total');
      // Both threads answered some of them with the new route.
      for (const [k, v] of after) expect(v).toBeGreaterThan(before.get(k) ?? 0);

      writeConfig(config([{ path: '/a/', name: 'a', upstream: 'u', auth: 'none' }], 3), dir);
      const refused = await request(`${gw.adminUrl}/reload`, { method: 'POST' });
      expect(refused.statusCode).toBe(422);
      expect(((await refused.body.json()) as { problems: string[] }).problems).toEqual(['server.threads: cannot change on reload (2 → 3); restart the gateway']);
      expect((await fresh(`${gw.url}/b/y`)).status).toBe(200);
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});

describe('server.threads: 2, stopping and starting', () => {
  it('SIGTERM drains every thread: a request in flight to a slow upstream completes with 200, then the process exits 0', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const up = await startUpstream((_req, res) => void gate.then(() => res.end('late')));
    const gw = await startGatewayProcess(
      writeConfig(baseConfig({ server: { threads: 2, drainTimeout: '10s' }, upstreams: { u: { url: up.url } }, routes: [{ path: '/', upstream: 'u', auth: 'none' }] })),
    );
    try {
      const inflight = Promise.all(Array.from({ length: 6 }, (_, i) => fresh(`${gw.url}/slow-${i}`)));
      await until(() => up.received.length === 6, 'the upstream to get every request');
      gw.proc.kill('SIGTERM');
      await until(() => gw.logLines().some((l) => l['msg'] === 'draining'), 'the drain to start');
      release();
      const answers = await inflight;
      expect(answers.map((a) => [a.status, a.body])).toEqual(Array.from({ length: 6 }, () => [200, 'late']));
      expect(await gw.exited).toBe(0);
      expect(gw.logLines().at(-1)).toMatchObject({ msg: 'stopped' });
    } finally {
      release();
      await gw.stop();
      await up.close();
    }
  });

  it('refuses to start when another process holds the port, with the single loop\'s message', async () => {
    const holder: Server = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as { port: number }).port;
    const up = await startUpstream();
    try {
      const file = writeConfig({ ...baseConfig({ upstreams: { u: { url: up.url } }, routes: [{ path: '/', upstream: 'u', auth: 'none' }] }), server: { threads: 2 }, listen: { host: '127.0.0.1', port } });
      const r = await runCli(['start', '--config', file]);
      expect(r.code).not.toBe(0);
      expect(r.stdout + r.stderr).toContain(`cannot listen on 127.0.0.1:${port} for the public listener (address in use or not available)`);
    } finally {
      await new Promise<void>((r) => holder.close(() => r()));
      await up.close();
    }
  });
});
