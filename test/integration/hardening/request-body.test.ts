/**
 * Slow request bodies cannot starve an upstream: bodies up to `server.requestBuffering`
 * bytes are read whole before an upstream connection is claimed; larger ones stream;
 * a body that goes silent for `server.timeouts.requestBodyIdle` gets 408 and its
 * upstream request is aborted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { request } from 'undici';
import { baseConfig, startGatewayProcess, startUpstream, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';

let up: Upstream;
let gw: GatewayProcess;
const sockets: Socket[] = [];

beforeAll(async () => {
  up = await startUpstream();
  gw = await startGatewayProcess(
    writeConfig(
      baseConfig({
        server: { requestBuffering: 4096, timeouts: { requestBodyIdle: '400ms' } },
        // Two connections and no queue: a third request that needs one is refused 503 at once.
        upstreams: { app: { url: up.url, connections: 2, maxQueue: 0 } },
        routes: [{ path: '/', upstream: 'app', auth: 'none' }],
      }),
    ),
  );
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await gw?.stop();
  await up?.close();
});

/** Opens a connection and sends the head of a POST that promises `length` bytes, and `first` of them. */
function startPost(path: string, length: number, first: Buffer): Promise<{ socket: Socket; answer: Promise<string> }> {
  return new Promise((resolve) => {
    const socket = connect(gw.port, '127.0.0.1', () => {
      socket.write(`POST ${path} HTTP/1.1\r\nHost: t\r\nContent-Length: ${length}\r\n\r\n`);
      socket.write(first);
      resolve({ socket, answer });
    });
    sockets.push(socket);
    let text = '';
    socket.setEncoding('latin1');
    const answer = new Promise<string>((r) => {
      socket.on('data', (d: string) => (text += d));
      socket.on('close', () => r(text));
      socket.on('error', () => r(text));
    });
  });
}

describe('request bodies', () => {
  it('four clients trickling small bodies hold no upstream connection: other requests still get through', async () => {
    const before = up.received.length;
    const slow = await Promise.all([1, 2, 3, 4].map((i) => startPost(`/slow/${i}`, 1000, Buffer.from('x'))));
    // Keep them alive: one more byte each, well inside the idle timeout.
    await new Promise((r) => setTimeout(r, 150));
    for (const s of slow) s.socket.write('y');
    for (let i = 0; i < 3; i++) {
      const res = await request(`${gw.url}/fast/${i}`);
      await res.body.text();
      expect(res.statusCode).toBe(200);
    }
    // None of the trickling requests reached the upstream: their bodies are still incomplete.
    expect(up.received.slice(before).filter((r) => r.url.startsWith('/slow/'))).toEqual([]);
    for (const s of slow) s.socket.destroy();
  });

  it('a buffered body reaches the upstream whole once it is complete', async () => {
    const body = randomBytes(3000);
    const before = up.received.length;
    const { socket, answer } = await startPost('/buffered', body.length, body.subarray(0, 1000));
    await new Promise((r) => setTimeout(r, 100));
    expect(up.received.length).toBe(before); // not dispatched while incomplete
    socket.write(body.subarray(1000));
    await new Promise<void>((r) => {
      const t = setInterval(() => {
        if (up.received.length > before && up.received[before]!.bodySha256 !== '') {
          clearInterval(t);
          r();
        }
      }, 10);
    });
    socket.end();
    expect(await answer).toMatch(/^HTTP\/1\.1 200 /);
    const got = up.received[before]!;
    expect(got.url).toBe('/buffered');
    expect(got.bodyBytes).toBe(3000);
    expect(got.bodySha256).toBe(createHash('sha256').update(body).digest('hex'));
  });

  it('a small body that goes silent gets 408 and never reaches the upstream', async () => {
    const before = up.received.length;
    const { answer } = await startPost('/silent-small', 100, Buffer.from('0123456789'));
    const text = await answer;
    expect(text).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(text.toLowerCase()).toContain('connection: close');
    expect(text).toContain('"error":"request_timeout"');
    expect(up.received.slice(before).filter((r) => r.url === '/silent-small')).toEqual([]);
  });

  it('a large body streams, and when it goes silent the client gets 408 and the upstream request is aborted', async () => {
    const before = up.received.length;
    const { answer } = await startPost('/silent-large', 100_000, randomBytes(8192));
    const text = await answer;
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    // It had started streaming (larger than requestBuffering) and was cut off at the upstream.
    await new Promise((r) => setTimeout(r, 100));
    const got = up.received.slice(before).find((r) => r.url === '/silent-large');
    expect(got).toBeDefined();
    expect(got!.aborted).toBe(true);
    expect(got!.bodyBytes).toBeLessThan(100_000);
  });
});
