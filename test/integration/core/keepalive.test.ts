/**
 * Upstream connection reuse against a server that advertises a short keep-alive
 * (`Keep-Alive: timeout=2`, what many frameworks send). undici subtracts a safety
 * margin from that hint (2 s by default, which would leave nothing: a new connection
 * per request); the gateway's pools keep one second (src/proxy/pools.ts).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { baseConfig, startGatewayProcess, writeConfig, type GatewayProcess } from '../harness.js';

let upstream: Server;
const sockets = new Set<Socket>();
let gw: GatewayProcess;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    sockets.add(req.socket);
    res.end('ok');
  });
  // Node sends `Keep-Alive: timeout=2` for this setting.
  upstream.keepAliveTimeout = 2_000;
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const port = (upstream.address() as AddressInfo).port;
  gw = await startGatewayProcess(
    writeConfig(baseConfig({ upstreams: { u: { url: `http://127.0.0.1:${port}`, connections: 1 } }, routes: [{ path: '/', upstream: 'u', auth: 'none' }] })),
  );
});

afterAll(async () => {
  await gw?.stop();
  upstream?.closeAllConnections();
  await new Promise((r) => upstream?.close(r));
});

describe('upstream keep-alive', () => {
  it('reuses one upstream connection for consecutive requests when the upstream advertises timeout=2', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await request(`${gw.url}/n${i}`);
      expect(r.statusCode).toBe(200);
      expect(await r.body.text()).toBe('ok');
    }
    expect(sockets.size).toBe(1);
  });
});
