import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { listenOn } from './listen.js';

export interface DemoUpstream {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** What the demo upstream answers: what it received, as the gateway forwarded it. */
export interface EchoBody {
  readonly upstream: 'demo';
  readonly method: string;
  readonly path: string;
  readonly query: string;
  /** The identity headers the gateway injected (`x-auth-*`), as received. */
  readonly identity: Record<string, string>;
  /** Other headers that show the gateway's work (X-Request-Id, X-Forwarded-*), and whether a token arrived. */
  readonly forwarded: Record<string, string>;
  readonly authorization: 'absent' | 'present (not echoed)';
}

/**
 * The demo upstream API: node:http answering every request with a JSON echo of
 * method, path and the identity headers it received. It never echoes the
 * Authorization header itself, only whether one arrived.
 */
export async function startDemoUpstream(options: { host?: string; port?: number } = {}): Promise<DemoUpstream> {
  const host = options.host ?? '127.0.0.1';
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    // The body is drained (not echoed) so keep-alive connections from the gateway stay usable.
    req.resume();
    req.on('end', () => {
      const target = new URL(req.url ?? '/', 'http://upstream.invalid');
      const identity: Record<string, string> = {};
      const forwarded: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        const v = Array.isArray(value) ? value.join(', ') : (value ?? '');
        if (name.startsWith('x-auth-')) identity[name] = v;
        else if (name === 'x-request-id' || name.startsWith('x-forwarded-')) forwarded[name] = v;
      }
      const body: EchoBody = {
        upstream: 'demo',
        method: req.method ?? '',
        path: target.pathname,
        query: target.search,
        identity,
        forwarded,
        authorization: req.headers.authorization === undefined ? 'absent' : 'present (not echoed)',
      };
      const text = `${JSON.stringify(body, null, 2)}\n`;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(req.method === 'HEAD' ? undefined : text);
    });
  });
  server.keepAliveTimeout = 5000;
  const port = await listenOn(server, host, options.port ?? 0, 'demo upstream');
  let closing: Promise<void> | null = null;
  return {
    url: `http://${host}:${port}`,
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}
