import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { baseConfig, startGatewayProcess, startUpstream, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';

// Large bodies both ways through the gateway, with backpressure on each side: the
// SHA-256 round trip catches framing and backpressure bugs; the "gate" tests show the
// bodies really stream (a gateway that buffered whole bodies would deadlock on them).
const SIZE = 16 * 1024 * 1024;
const blob = randomBytes(SIZE);
const blobSha = createHash('sha256').update(blob).digest('hex');

let up: Upstream;
let gated: Upstream;
let gw: GatewayProcess;
/** Opened by the upstream when the first bytes of a gated upload reached it. */
let uploadGate: () => void = () => {};
/** Opened by the client when the first bytes of a gated download reached it. */
let downloadGate: () => void = () => {};

beforeAll(async () => {
  up = await startUpstream((req, res, got) => {
    if (req.url!.startsWith('/big')) {
      const chunked = req.url!.includes('chunked');
      res.writeHead(200, chunked ? { 'content-type': 'application/octet-stream' } : { 'content-length': String(SIZE) });
      // Write in 64 KiB slices honouring the upstream socket's own backpressure.
      let off = 0;
      const pump = () => {
        while (off < SIZE) {
          const end = Math.min(off + 65536, SIZE);
          const ok = res.write(blob.subarray(off, end));
          off = end;
          if (!ok) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    if (req.url === '/empty') {
      res.writeHead(204);
      return void res.end();
    }
    if (req.url === '/unchanged') {
      // RFC 9110 §15.4.5: a 304 carries the validators and never a body.
      res.writeHead(304, { etag: '"v1"' });
      return void res.end();
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ bodyBytes: got.bodyBytes, bodySha256: got.bodySha256, te: req.headers['transfer-encoding'] ?? null }));
  });
  gated = await startUpstream(
    (req, res) => {
      if (req.url === '/gate-upload') {
        let bytes = 0;
        const hash = createHash('sha256');
        req.on('data', (c: Buffer) => {
          if (bytes === 0) uploadGate();
          bytes += c.length;
          hash.update(c);
        });
        req.on('end', () => res.end(JSON.stringify({ bodyBytes: bytes, bodySha256: hash.digest('hex') })));
        return;
      }
      // /gate-download: the first quarter, then the rest once the client saw the first bytes.
      res.writeHead(200, { 'content-length': String(SIZE) });
      res.write(blob.subarray(0, SIZE / 4));
      new Promise<void>((r) => (downloadGate = r)).then(() => res.end(blob.subarray(SIZE / 4)));
    },
    { readBody: false },
  );
  gw = await startGatewayProcess(
    writeConfig(
      baseConfig({
        upstreams: { up: { url: up.url }, gated: { url: gated.url } },
        routes: [
          { path: '/', upstream: 'up', auth: 'none' },
          { path: '/gate-upload', upstream: 'gated', auth: 'none' },
          { path: '/gate-download', upstream: 'gated', auth: 'none' },
        ],
      }),
    ),
  );
});

afterAll(async () => {
  await gw?.stop();
  await up?.close();
  await gated?.close();
});

function call(method: string, path: string, body?: Readable | Buffer, headers: Record<string, string> = {}): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${gw.url}${path}`, { method, headers }, resolve);
    req.on('error', reject);
    if (body instanceof Readable) body.pipe(req);
    else req.end(body);
  });
}

/** Reads a response slowly: pauses after each chunk, so the gateway must hold the upstream back. */
async function readSlowly(res: IncomingMessage): Promise<{ bytes: number; sha: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  let n = 0;
  for await (const chunk of res) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
    if (++n % 16 === 0) await sleep(2);
  }
  return { bytes, sha: hash.digest('hex') };
}

describe('streaming', () => {
  it('streams a 16 MiB request body upstream intact (Content-Length)', async () => {
    const res = await call('POST', '/upload', blob, { 'content-length': String(SIZE) });
    const body = JSON.parse(await new Response(Readable.toWeb(res) as ReadableStream).text()) as { bodyBytes: number; bodySha256: string };
    expect(res.statusCode).toBe(200);
    expect(body.bodyBytes).toBe(SIZE);
    expect(body.bodySha256).toBe(blobSha);
  });

  it('streams a 16 MiB chunked request body from a slow client intact', async () => {
    let off = 0;
    const slow = new Readable({
      read() {
        if (off >= SIZE) return void this.push(null);
        const end = Math.min(off + 256 * 1024, SIZE);
        const part = blob.subarray(off, end);
        off = end;
        setTimeout(() => this.push(part), 1);
      },
    });
    const res = await call('POST', '/upload-chunked', slow);
    const body = JSON.parse(await new Response(Readable.toWeb(res) as ReadableStream).text()) as { bodyBytes: number; bodySha256: string };
    expect(res.statusCode).toBe(200);
    expect(body.bodyBytes).toBe(SIZE);
    expect(body.bodySha256).toBe(blobSha);
  });

  it('streams a 16 MiB response with Content-Length to a slow reader intact', async () => {
    const res = await call('GET', '/big');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe(String(SIZE));
    expect(await readSlowly(res)).toEqual({ bytes: SIZE, sha: blobSha });
  });

  it('streams a 16 MiB chunked response to a slow reader intact', async () => {
    const res = await call('GET', '/big-chunked');
    expect(res.statusCode).toBe(200);
    expect(res.headers['transfer-encoding']).toBe('chunked');
    expect(await readSlowly(res)).toEqual({ bytes: SIZE, sha: blobSha });
  });

  it('streams a request body: the upstream gets its first bytes before the client sends the rest', async () => {
    const opened = new Promise<void>((r) => (uploadGate = r));
    let sent = 0;
    const body = new Readable({
      read() {
        if (sent === 0) {
          sent = SIZE / 2; // far over server.requestBuffering (64 KiB): this one streams
          this.push(blob.subarray(0, SIZE / 2));
        } else if (sent === SIZE / 2) {
          sent = SIZE;
          // A gateway that waited for the whole body would never let the upstream open this.
          void opened.then(() => {
            this.push(blob.subarray(SIZE / 2));
            this.push(null);
          });
        }
      },
    });
    const res = await call('POST', '/gate-upload', body, { 'content-length': String(SIZE) });
    const got = JSON.parse(await new Response(Readable.toWeb(res) as ReadableStream).text()) as { bodyBytes: number; bodySha256: string };
    expect(res.statusCode).toBe(200);
    expect(got).toEqual({ bodyBytes: SIZE, bodySha256: blobSha });
  }, 20_000);

  it('streams an answer: the client gets its first bytes before the upstream sends the rest', async () => {
    const res = await call('GET', '/gate-download');
    expect(res.statusCode).toBe(200);
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const chunk of res) {
      // A gateway that buffered whole answers would never deliver this first chunk.
      if (bytes === 0) downloadGate();
      bytes += (chunk as Buffer).length;
      hash.update(chunk as Buffer);
    }
    expect({ bytes, sha: hash.digest('hex') }).toEqual({ bytes: SIZE, sha: blobSha });
  }, 20_000);

  it('answers HEAD and 204 without a body', async () => {
    const head = await call('HEAD', '/big');
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-length']).toBe(String(SIZE));
    let bytes = 0;
    for await (const c of head) bytes += (c as Buffer).length;
    expect(bytes).toBe(0);

    const empty = await call('GET', '/empty');
    expect(empty.statusCode).toBe(204);
    for await (const c of empty) bytes += (c as Buffer).length;
    expect(bytes).toBe(0);
  });

  it('answers 304 without a body, and the kept-alive connection serves the next request', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const get = (path: string, headers: Record<string, string> = {}) =>
        new Promise<{ status: number; etag: string | undefined; body: string; port: number }>((resolve, reject) => {
          const req = httpRequest(`${gw.url}${path}`, { agent, headers }, (res) => {
            let body = '';
            res.setEncoding('utf8').on('data', (d: string) => (body += d));
            res.on('end', () => resolve({ status: res.statusCode!, etag: res.headers['etag'] as string | undefined, body, port: req.socket!.localPort! }));
          });
          req.on('error', reject);
          req.end();
        });
      const first = await get('/unchanged', { 'if-none-match': '"v1"' });
      expect(first).toMatchObject({ status: 304, etag: '"v1"', body: '' });
      // A body-less answer that leaked bytes, or waited for a body, would garble or stall this one.
      const next = await get('/after');
      expect(next.status).toBe(200);
      expect(JSON.parse(next.body)).toMatchObject({ bodyBytes: 0 });
      expect(next.port).toBe(first.port);
    } finally {
      agent.destroy();
    }
  });
});
