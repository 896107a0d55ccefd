import { afterEach, describe, expect, it } from 'vitest';
import { request as httpRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { REFUSED_PORT } from '../authn/idp.js';
import { baseConfig, startGatewayProcess, startUpstream, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';

// Upstream failures: refused → 502, timeouts → 504, death mid-body → closed
// connection, client abort → upstream request aborted, full queue → 503.
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function gatewayFor(url: string, upstream: Record<string, unknown> = {}): Promise<GatewayProcess> {
  const gw = await startGatewayProcess(
    writeConfig(baseConfig({ upstreams: { u: { url, ...upstream } }, routes: [{ path: '/', upstream: 'u', auth: 'none' }] })),
  );
  cleanups.push(() => gw.stop());
  return gw;
}

async function up(handler: Parameters<typeof startUpstream>[0], readBody = true): Promise<Upstream> {
  const u = await startUpstream(handler, { readBody });
  cleanups.push(() => u.close());
  return u;
}

describe('upstream failures', () => {
  it('answers 502 when the upstream refuses the connection', async () => {
    const gw = await gatewayFor(`http://127.0.0.1:${REFUSED_PORT}`);
    const res = await request(`${gw.url}/x`);
    const body = (await res.body.json()) as Record<string, string>;
    expect(res.statusCode).toBe(502);
    expect(body['error']).toBe('bad_gateway');
    expect(body['request_id']).toBe(res.headers['x-request-id']);
  });

  it('answers 502 when the upstream resets the connection before answering', async () => {
    const u = await up((req) => req.socket.destroy());
    const gw = await gatewayFor(u.url);
    const res = await request(`${gw.url}/x`);
    await res.body.text();
    expect(res.statusCode).toBe(502);
  });

  it('answers 504 when the upstream does not send headers in time', async () => {
    const u = await up(() => {
      /* never answers */
    });
    const gw = await gatewayFor(u.url, { timeouts: { headers: '300ms' } });
    const res = await request(`${gw.url}/x`);
    const body = (await res.body.json()) as Record<string, string>;
    expect(res.statusCode).toBe(504);
    expect(body['error']).toBe('gateway_timeout');
  });

  it('closes the client connection when the upstream dies mid-body, never ending it cleanly', async () => {
    const u = await up((_req, res) => {
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(1000, 1));
      setTimeout(() => res.socket!.destroy(), 50);
    });
    const gw = await gatewayFor(u.url);
    const outcome = await new Promise<string>((resolve) => {
      httpRequest(`${gw.url}/x`, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('end', () => resolve(`end after ${bytes}`));
        res.on('error', () => resolve('error'));
        res.on('aborted', () => resolve('error'));
      }).end();
    });
    expect(outcome).toBe('error');
  });

  it('aborts the upstream request when the client goes away', async () => {
    let sawClose!: () => void;
    const closed = new Promise<void>((r) => (sawClose = r));
    const u = await up((req, res) => {
      res.writeHead(200);
      res.write('started');
      // Never silent, so no body timeout can be what ends it: only the abort reaching the upstream.
      const tick = setInterval(() => res.write('.'), 100);
      res.on('close', () => {
        clearInterval(tick);
        sawClose();
      });
      void req;
    });
    const gw = await gatewayFor(u.url, { timeouts: { body: '1h', headers: '1h' } });
    await new Promise<void>((resolve) => {
      const req = httpRequest(`${gw.url}/x`, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.end();
    });
    await closed; // the upstream saw its connection end before it finished answering
    expect(u.received.at(-1)!.aborted).toBe(true);
    // And the audit line says so: the answer had started (200), the client went away.
    let line: Record<string, unknown> | undefined;
    for (let i = 0; i < 150 && line === undefined; i++) {
      await sleep(20);
      line = gw.stdout().split('\n').filter((l) => l.includes('"client_aborted"')).map((l) => JSON.parse(l) as Record<string, unknown>)[0];
    }
    expect(line).toMatchObject({ reason: 'client_aborted', status: 200, decision: 'allow', path: '/x' });
  });

  it('answers 503 with Retry-After when the bounded upstream queue is full', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const u = await up((_req, res) => void gate.then(() => res.end('late')));
    const gw = await gatewayFor(u.url, { connections: 1, maxQueue: 0 });
    const first = request(`${gw.url}/slow`);
    // Wait until the first request holds the only slot.
    for (let i = 0; i < 100 && u.received.length === 0; i++) await sleep(10);
    const second = await request(`${gw.url}/x`);
    await second.body.text();
    expect(second.statusCode).toBe(503);
    expect(second.headers['retry-after']).toBe('1');
    release();
    const r1 = await first;
    expect(await r1.body.text()).toBe('late');
  });
});
