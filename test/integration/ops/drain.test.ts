/**
 * The drain on the built gateway (README "Signals"): `server.drainTimeout` is a hard
 * limit, after which what is still in flight is aborted (the client's connection closed,
 * the upstream request aborted) and the process exits 0; a second SIGINT exits at once
 * with 130. The upstream here answers only when the test releases it, so "before the
 * upstream answered" is a fact of the test, not a timing.
 */
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { baseConfig, startGatewayProcess, startUpstream, writeConfig } from '../harness.js';

/** An upstream that holds every request until `release()`. */
async function heldUpstream() {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const u = await startUpstream((_req, res) => void gate.then(() => res.end('late')));
  return { u, release };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 300 && !cond(); i++) await sleep(20);
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

describe('the drain timeout', () => {
  it('is a hard limit: what is in flight is aborted, its client sees its connection closed, and the process exits 0', async () => {
    const { u, release } = await heldUpstream();
    const gw = await startGatewayProcess(
      writeConfig({ ...baseConfig({ upstreams: { u: { url: u.url } }, routes: [{ path: '/', upstream: 'u', auth: 'none' }] }), server: { drainTimeout: '500ms' } }),
    );
    let released = false;
    try {
      const inflight = request(`${gw.url}/slow`).then(
        (res) => ({ status: res.statusCode, error: null as unknown }),
        (error: unknown) => ({ status: 0, error }),
      );
      await until(() => u.received.length === 1, 'the upstream to get the request');
      gw.proc.kill('SIGTERM');
      const code = await gw.exited;
      // The upstream never answered: it is released only now.
      expect(released).toBe(false);
      expect(code).toBe(0);
      const seen = await inflight;
      expect(seen.status).toBe(0);
      expect(seen.error).toMatchObject({ code: 'UND_ERR_SOCKET' });
      await until(() => u.received[0]!.aborted, 'the upstream request to be aborted');
      expect(u.received[0]!.aborted).toBe(true);
      const lines = gw.logLines();
      expect(lines).toContainEqual(expect.objectContaining({ level: 'info', msg: 'draining', inFlight: 1, drainTimeoutMs: 500 }));
      expect(lines).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'drain timeout: aborting the requests still in flight', inFlight: 1, drainTimeoutMs: 500 }));
      expect(lines).toContainEqual(expect.objectContaining({ msg: 'audit', path: '/slow', status: 499, reason: 'client_aborted' }));
      expect(lines.at(-1)).toMatchObject({ msg: 'stopped' });
    } finally {
      released = true;
      release();
      await gw.stop();
      await u.close();
    }
  });

  it('takes the drainTimeout a reload put in force', async () => {
    const { u, release } = await heldUpstream();
    const config = (drainTimeout: string) => ({ ...baseConfig({ upstreams: { u: { url: u.url } }, routes: [{ path: '/', upstream: 'u', auth: 'none' }] }), server: { drainTimeout } });
    const file = writeConfig(config('1h'));
    const gw = await startGatewayProcess(file);
    try {
      writeFileSync(file, JSON.stringify(config('300ms')));
      const res = await request(`${gw.adminUrl}/reload`, { method: 'POST' });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toMatchObject({ changes: { settings: ['server.drainTimeout'] } });
      const inflight = request(`${gw.url}/slow`).catch((err: unknown) => err);
      await until(() => u.received.length === 1, 'the upstream to get the request');
      gw.proc.kill('SIGTERM');
      expect(await gw.exited).toBe(0);
      expect(await inflight).toMatchObject({ code: 'UND_ERR_SOCKET' });
      expect(gw.logLines()).toContainEqual(expect.objectContaining({ msg: 'drain timeout: aborting the requests still in flight', drainTimeoutMs: 300 }));
    } finally {
      release();
      await gw.stop();
      await u.close();
    }
  });
});

describe('a second signal', () => {
  it.each([
    ['SIGINT', 'SIGINT'],
    ['SIGTERM', 'SIGTERM'],
    ['SIGTERM', 'SIGINT'],
  ] as const)('%s, then %s while draining: exits at once with 130', async (first, second) => {
    const { u, release } = await heldUpstream();
    const gw = await startGatewayProcess(
      writeConfig({ ...baseConfig({ upstreams: { u: { url: u.url } }, routes: [{ path: '/', upstream: 'u', auth: 'none' }] }), server: { drainTimeout: '1h' } }),
    );
    try {
      const inflight = request(`${gw.url}/slow`).catch((err: unknown) => err);
      await until(() => u.received.length === 1, 'the upstream to get the request');
      gw.proc.kill(first);
      await until(() => gw.stdout().includes('"msg":"draining"'), 'the drain to start');
      gw.proc.kill(second);
      expect(await gw.exited).toBe(130);
      expect(await inflight).toMatchObject({ code: 'UND_ERR_SOCKET' });
      expect(gw.logLines()).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'second signal while stopping: exiting now', signal: second, inFlight: 1 }));
    } finally {
      release();
      await gw.stop();
      await u.close();
    }
  });
});
