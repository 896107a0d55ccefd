#!/usr/bin/env node
/**
 * The floor: the bare uWebSockets.js → undici proxy the gateway is built on, with
 * nothing of the gateway in it (no routing, no auth, no audit line, no metrics, no
 * header rewriting), so that `gateway CPU per request ÷ floor CPU per request` is what
 * the gateway's own work costs. Measured in the same run, pinned like the gateway,
 * against the same bench upstream (bench/run.js, scenarios `floor*`).
 *
 * What it does, and why each part is there:
 *   - one undici Pool with the settings of the gateway's (src/proxy/pools.ts):
 *     connections, pipelining 1, keepAliveTimeout 4 s, keepAliveTimeoutThreshold 1 s;
 *   - `Pool.dispatch` with a handler object (no promise, no stream per answer), the
 *     request headers as uWS reads them, minus those undici refuses to send;
 *   - an answer that arrives in one chunk is written in one `res.cork` (status line,
 *     headers, body: one send), larger ones stream with `tryEnd` and `onWritable`
 *     (the upstream is paused while the client socket is full);
 *   - request bodies stream to the upstream with backpressure the other way
 *     (the client is paused while undici has not read the last chunk).
 *
 *   node bench/floor.js --upstream http://127.0.0.1:PORT [--connections 128] [--port 0]
 *
 * It prints one JSON line `{"port":N,"server":"uws"}` on stdout when listening and
 * exits on SIGTERM/SIGINT or when its parent closes stdin (as bench/upstream.js does).
 */
import { STATUS_CODES } from 'node:http';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

const { values: args } = parseArgs({ options: { upstream: { type: 'string' }, connections: { type: 'string' }, port: { type: 'string' } } });
if (!args.upstream) {
  process.stderr.write('bench floor: --upstream http://host:port is required\n');
  process.exit(2);
}

const uws = createRequire(import.meta.url)('uWebSockets.js');
if (!String(uws.App).includes('[native code]')) {
  // The pure-JS fallback of the unofficial package is no floor of anything.
  process.stderr.write('bench floor: uWebSockets.js has no native build here; refusing to measure its JS fallback\n');
  process.exit(1);
}

// undici's dispatch throws on these (lib/core/request.js): they describe the client's
// connection and framing (RFC 9110 §7.6.1), which undici writes itself for its own hop.
const REFUSED = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'expect']);
// Upstream answer headers uWS writes itself (framing, Date) or that describe the upstream's connection.
const OWN = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'date']);

const pool = new Pool(args.upstream, {
  connections: Number(args.connections ?? 128),
  pipelining: 1,
  connect: { timeout: 2_000 },
  headersTimeout: 30_000,
  bodyTimeout: 30_000,
  keepAliveTimeout: 4_000,
  keepAliveTimeoutThreshold: 1_000,
  maxResponseSize: -1,
});

const statusLines = new Map();
function statusLine(code, message) {
  let line = statusLines.get(code);
  if (line === undefined) statusLines.set(code, (line = `${code} ${message || STATUS_CODES[code] || 'Unknown'}`));
  return line;
}

/** One request: the uWS response and the undici dispatch handler that fills it. */
class Exchange {
  constructor(res, method) {
    this.res = res;
    this.head = method === 'HEAD';
    /** `res` must not be touched any more (answered or aborted). */
    this.done = false;
    this.controller = null;
    this.body = null;
    this.status = '';
    this.headers = null;
    this.headWritten = false;
    this.total = -1; // known answer length; -1: unknown (chunked to the client)
    this.chunk = null;
    this.pending = null; // what tryEnd could not send, retried from onWritable
    this.pendingOffset = 0;
    this.watching = false;
    res.onAborted(() => {
      this.done = true;
      this.controller?.abort(new Error('client aborted'));
      this.body?.destroy();
    });
  }

  onRequestStart(controller) {
    this.controller = controller;
    if (this.done) controller.abort(new Error('client aborted'));
  }

  onResponseStart(controller, statusCode, headers, statusMessage) {
    if (this.done) return void controller.abort(new Error('client gone'));
    if (statusCode < 200) return;
    this.status = statusLine(statusCode, statusMessage);
    this.headers = headers;
    const noBody = this.head || statusCode === 204 || statusCode === 304;
    const length = headers['content-length'];
    this.total = noBody ? 0 : typeof length === 'string' ? Number(length) : -1;
    if (this.total !== 0) return; // written with the first chunk of the body, in its cork
    this.done = true;
    this.res.cork(() => {
      this.writeHead();
      if (noBody) this.res.endWithoutBody();
      else this.res.end();
    });
  }

  writeHead() {
    const res = this.res;
    res.writeStatus(this.status);
    const headers = this.headers;
    for (const name in headers) {
      if (OWN.has(name)) continue;
      const v = headers[name];
      if (Array.isArray(v)) for (const one of v) res.writeHeader(name, one);
      else if (v !== undefined) res.writeHeader(name, v);
    }
    this.headWritten = true;
  }

  onResponseData(_controller, chunk) {
    if (this.done) return;
    this.chunk = chunk;
    this.res.cork(this.total >= 0 ? this.sendKnown : this.sendChunked);
  }

  sendKnown = () => {
    const res = this.res;
    const chunk = this.chunk;
    this.chunk = null;
    if (!this.headWritten) this.writeHead();
    const offset = res.getWriteOffset();
    const [ok, done] = res.tryEnd(chunk, this.total);
    if (done) this.done = true;
    else if (!ok) {
      // uWS keeps none of what it could not send: keep it, and the upstream waits.
      this.pending = chunk;
      this.pendingOffset = offset;
      this.controller.pause();
      this.watch();
    }
  };

  sendChunked = () => {
    const chunk = this.chunk;
    this.chunk = null;
    if (!this.headWritten) this.writeHead();
    // write() buffers what it could not send; false asks for no more until onWritable.
    if (!this.res.write(chunk)) {
      this.controller.pause();
      this.watch();
    }
  };

  watch() {
    if (this.watching) return;
    this.watching = true;
    this.res.onWritable((offset) => {
      if (this.done) return true;
      if (this.total < 0) {
        this.controller.resume();
        return true;
      }
      if (this.pending === null) return true;
      const [ok, done] = this.res.tryEnd(this.pending.subarray(offset - this.pendingOffset), this.total);
      if (done) {
        this.done = true;
        this.pending = null;
      } else if (ok) {
        this.pending = null;
        this.controller.resume();
      }
      return ok;
    });
  }

  onResponseEnd() {
    if (this.done || this.total >= 0) return; // a known length ends with its last tryEnd
    this.done = true;
    this.res.cork(() => {
      if (!this.headWritten) this.writeHead();
      this.res.end();
    });
  }

  onResponseError(_controller, err) {
    if (this.done) return;
    this.done = true;
    this.body?.destroy();
    if (this.headWritten) return void this.res.close(); // a truncated answer must not look complete
    const text = JSON.stringify({ error: 'upstream_unavailable', error_description: `floor: ${err.code ?? err.message}` });
    this.res.cork(() => this.res.writeStatus('502 Bad Gateway').writeHeader('content-type', 'application/json').end(text));
  }
}

/** Streams the client's body to undici: the client is paused until undici reads again. */
function requestBody(res, ex) {
  let paused = false;
  const body = new Readable({
    read() {
      // Only a paused response is resumed: uWS 20.30 stops delivering a body for good
      // when resume() meets one it never paused (seen with curl's `Expect: 100-continue`,
      // whose first data callback is empty).
      if (paused && !ex.done) {
        paused = false;
        res.resume();
      }
    },
  });
  res.onData((ab, isLast) => {
    // uWS detaches the ArrayBuffer when this callback returns: copy it.
    const more = body.push(Buffer.from(new Uint8Array(ab)));
    if (isLast) body.push(null);
    else if (!more) {
      paused = true;
      res.pause();
    }
  });
  return body;
}

const app = uws.App();
app.any('/*', (res, req) => {
  const method = req.getCaseSensitiveMethod();
  const query = req.getQuery();
  const path = query ? `${req.getUrl()}?${query}` : req.getUrl();
  const headers = [];
  let hasBody = false;
  req.forEach((name, value) => {
    if (REFUSED.has(name)) {
      if (name === 'transfer-encoding') hasBody = true;
      return;
    }
    if (name === 'content-length' && value !== '0') hasBody = true;
    headers.push(name, value);
  });
  const ex = new Exchange(res, method);
  const opts = { path, method, headers };
  if (hasBody) opts.body = ex.body = requestBody(res, ex);
  try {
    pool.dispatch(opts, ex);
  } catch (err) {
    ex.onResponseError(null, err);
  }
});

const listenSocket = await new Promise((resolve) => app.listen('127.0.0.1', Number(args.port ?? 0), resolve));
if (!listenSocket) {
  process.stderr.write(`bench floor: cannot listen on 127.0.0.1:${args.port ?? 0}\n`);
  process.exit(1);
}
process.stdout.write(`${JSON.stringify({ port: uws.us_socket_local_port(listenSocket), server: 'uws' })}\n`);

const stop = () => {
  uws.us_listen_socket_close(listenSocket);
  void pool.close().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The parent holds our stdin open; when it dies without signalling us, stdin ends and we go too.
process.stdin.on('end', stop).on('error', stop).resume();
