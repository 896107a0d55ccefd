/**
 * Framing: what the gateway answers, and what the uWebSockets.js 20.30 front end decides
 * before any gateway code runs (pinned here, so an upgrade that changes it is noticed;
 * README "Known limitations of the front end").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { baseConfig, rawRequest, runCli, startGatewayProcess, startUpstream, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';

let up: Upstream;
let gw: GatewayProcess;

beforeAll(async () => {
  up = await startUpstream();
  gw = await startGatewayProcess(
    writeConfig(baseConfig({ upstreams: { app: { url: up.url } }, routes: [{ path: '/', upstream: 'app', auth: 'none' }] })),
  );
});

afterAll(async () => {
  await gw?.stop();
  await up?.close();
});

const seen = (path: string) => up.received.some((r) => r.url === path);

/** Sends `data` in `size`-byte writes, `gapMs` apart, and collects the answer. */
function fragmented(data: string, size: number, gapMs = 15): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const sock = connect(gw.port, '127.0.0.1', async () => {
      sock.setNoDelay(true);
      for (let i = 0; i < data.length && !sock.destroyed; i += size) {
        sock.write(data.slice(i, i + size));
        await new Promise((r) => setTimeout(r, gapMs));
      }
    });
    let text = '';
    const timer = setTimeout(() => done(false), 1200);
    const done = (closed: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ text, closed });
    };
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (text += d));
    sock.on('close', () => done(true));
    sock.on('error', () => done(true));
  });
}

describe('framing', () => {
  it('two Host headers → 400 and the connection closes (RFC 9112 §3.2)', async () => {
    const r = await rawRequest(gw.port, 'GET /two-hosts HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n');
    expect(r.text).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(r.text).toContain('More than one Host header');
    expect(r.closed).toBe(true);
    expect(seen('/two-hosts')).toBe(false);
  });

  it('a request smuggled behind two differing Content-Length values is never parsed: the connection closes', async () => {
    const smuggled = 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n';
    const r = await rawRequest(gw.port, `POST /front HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`);
    expect(r.closed).toBe(true);
    expect(r.text).not.toContain('200 OK');
    expect(seen('/smuggled')).toBe(false);
    expect(seen('/front')).toBe(false);
  });

  it('differing Content-Length values alone → 400 and the connection closes', async () => {
    const r = await rawRequest(gw.port, 'POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n');
    expect(r.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(r.text).toContain('Ambiguous message framing');
    expect(r.closed).toBe(true);
    expect(seen('/cl')).toBe(false);
  });

  it('Content-Length with Transfer-Encoding: the front end closes the connection (no 400 possible) and nothing is proxied', async () => {
    const smuggled = 'GET /te-smuggled HTTP/1.1\r\nHost: x\r\n\r\n';
    const r = await rawRequest(gw.port, `POST /te HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`);
    expect(r.text).not.toContain(' 200 ');
    expect(seen('/te')).toBe(false);
    expect(seen('/te-smuggled')).toBe(false);
  });

  it('a request without Host gets no answer from the front end and reaches nothing (uWebSockets.js 20.30)', async () => {
    const r = await rawRequest(gw.port, 'GET /no-host HTTP/1.1\r\n\r\n', 800);
    expect(r.text).toBe('');
    expect(seen('/no-host')).toBe(false);
  });
});

describe('large request heads (uWebSockets.js 20.30 buffers about 4 KiB of a head that arrives in pieces)', () => {
  const head = (path: string, tokenBytes: number) => `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'a'.repeat(tokenBytes)}\r\n\r\n`;

  it('a 6 KiB Authorization header in one write is answered', async () => {
    const r = await rawRequest(gw.port, head('/big-one-write', 6144));
    expect(r.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(seen('/big-one-write')).toBe(true);
  });

  it('the same head in 1,400-byte segments (what a real network delivers) is dropped with no answer', async () => {
    const r = await fragmented(head('/big-fragmented', 6144), 1400);
    expect(r.text).toBe('');
    expect(r.closed).toBe(true);
    expect(seen('/big-fragmented')).toBe(false);
  });

  it('a 3 KiB token in 1,400-byte segments still passes', async () => {
    const r = await fragmented(head('/medium-fragmented', 3072), 1400);
    expect(r.text).toMatch(/^HTTP\/1\.1 200 /);
  });
});

describe('check and the front end’s head limit', () => {
  const config = (verifier: Record<string, unknown>) =>
    writeConfig(baseConfig({ verifier, upstreams: { app: { url: 'http://127.0.0.1:9' } }, routes: [{ path: '/', upstream: 'app', auth: 'none' }] }));

  it('warns (exit 0) when maxTokenBytes is set above what a fragmented head can carry', async () => {
    const r = await runCli(['check', '--config', config({ maxTokenBytes: 16384 })]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: verifier\.maxTokenBytes: 16384 is more than the front end can take/);
  });

  it('says nothing for a value that fits', async () => {
    const r = await runCli(['check', '--config', config({ maxTokenBytes: 3072 })]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });
});
