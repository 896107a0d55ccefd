#!/usr/bin/env node
/**
 * The bench upstream: a deliberately cheap origin so that the gateway, not the
 * upstream, is what the numbers measure. uWebSockets.js when its native build loads
 * (it answers several times faster than node:http on one core), node:http otherwise.
 *
 *   GET  any path              a small fixed body (SMALL_BODY)
 *   GET  …/slow                the same body after SLOW_MS (slow-upstream scenario)
 *   GET  …/download-64k        64 KiB of bytes (download-64k and its floor)
 *   GET  …/download-1m         1 MiB of bytes
 *   POST/PUT any path          reads the whole body, answers {"received":N}
 *
 * Run as a child process (`node bench/upstream.js`): it prints one JSON line
 * `{"port":N,"server":"uws"|"node:http"}` on stdout when listening and exits on
 * SIGTERM/SIGINT or when its parent closes stdin. `startUpstreamServer()` is the
 * same server in-process, for tools that want it there.
 */
import { createRequire } from 'node:module';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';

export const SMALL_BODY = 'hello from the mfa-gateway bench upstream\n';
export const SLOW_MS = 50;
export const DOWNLOAD_BYTES = 1024 * 1024;
export const DOWNLOAD_64K_BYTES = 64 * 1024;

/** The fixed answers of the download routes, by route kind. */
const DOWNLOADS = {
  'download-64k': Buffer.alloc(DOWNLOAD_64K_BYTES, 0x61),
  'download-1m': Buffer.alloc(DOWNLOAD_BYTES, 0x61),
};

function route(method, url) {
  if (method === 'POST' || method === 'PUT') return 'upload';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  if (path.endsWith('/slow')) return 'slow';
  if (path.endsWith('/download-1m')) return 'download-1m';
  if (path.endsWith('/download-64k')) return 'download-64k';
  return 'small';
}

function loadNativeUws() {
  if (process.env.BENCH_UPSTREAM === 'node') return null;
  try {
    const require = createRequire(import.meta.url);
    const uws = require('uWebSockets.js');
    // The unofficial package silently falls back to a slow JS emulation; only the native build helps here.
    return String(uws.App).includes('[native code]') ? uws : null;
  } catch {
    return null;
  }
}

function startUws(uws, port) {
  const app = uws.App();
  app.any('/*', (res, req) => {
    const kind = route(req.getCaseSensitiveMethod ? req.getCaseSensitiveMethod() : req.getMethod().toUpperCase(), req.getUrl());
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    if (kind === 'small') {
      res.cork(() => res.writeHeader('content-type', 'text/plain').end(SMALL_BODY));
    } else if (kind in DOWNLOADS) {
      // end() with the whole buffer: uWS keeps what the socket cannot take yet and
      // drains it as the client reads (its own backpressure buffer).
      res.cork(() => res.writeHeader('content-type', 'application/octet-stream').end(DOWNLOADS[kind]));
    } else if (kind === 'slow') {
      setTimeout(() => {
        if (!aborted) res.cork(() => res.writeHeader('content-type', 'text/plain').end(SMALL_BODY));
      }, SLOW_MS);
    } else {
      let received = 0;
      res.onData((chunk, isLast) => {
        received += chunk.byteLength;
        if (isLast && !aborted) {
          res.cork(() => res.writeHeader('content-type', 'application/json').end(`{"received":${received}}`));
        }
      });
    }
  });
  return new Promise((resolve, reject) => {
    app.listen('127.0.0.1', port, (socket) => {
      if (!socket) return reject(new Error(`bench upstream: cannot listen on 127.0.0.1:${port}`));
      resolve({
        port: uws.us_socket_local_port(socket),
        server: 'uws',
        close: async () => uws.us_listen_socket_close(socket),
      });
    });
  });
}

function startNodeHttp(port) {
  const server = createServer((req, res) => {
    const kind = route(req.method, req.url);
    if (kind === 'small') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': SMALL_BODY.length }).end(SMALL_BODY);
    } else if (kind in DOWNLOADS) {
      const body = DOWNLOADS[kind];
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
    } else if (kind === 'slow') {
      const t = setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end(SMALL_BODY), SLOW_MS);
      res.on('close', () => clearTimeout(t));
    } else {
      let received = 0;
      req.on('data', (c) => (received += c.length));
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(`{"received":${received}}`));
    }
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) => {
    server.listen(port, '127.0.0.1', () => {
      resolve({
        port: server.address().port,
        server: 'node:http',
        close: () =>
          new Promise((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}

/**
 * Starts the bench upstream in this process on 127.0.0.1.
 * @param {{ port?: number }} [options] port 0 (default) picks a free one
 * @returns {Promise<{ port: number, server: 'uws' | 'node:http', close(): Promise<void> }>}
 */
export async function startUpstreamServer(options = {}) {
  const port = options.port ?? 0;
  const uws = loadNativeUws();
  return uws ? startUws(uws, port) : startNodeHttp(port);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const handle = await startUpstreamServer({ port: Number(process.env.BENCH_UPSTREAM_PORT ?? 0) });
  process.stdout.write(`${JSON.stringify({ port: handle.port, server: handle.server })}\n`);
  const stop = () => {
    void handle.close().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // The parent holds our stdin open; when it dies without signalling us, stdin ends and we go too.
  process.stdin.on('end', stop).on('error', stop).resume();
}
