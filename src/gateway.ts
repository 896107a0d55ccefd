import type { us_listen_socket } from 'uWebSockets.js';
import type { CompiledConfig } from './config/types.js';
import type { Verifier } from './authn/types.js';
import { createVerifier } from './authn/verifier.js';
import { GatewayError } from './errors.js';
import { UpstreamPools } from './proxy/pools.js';
import type { Exchange } from './proxy/exchange.js';
import { Pipeline } from './server/pipeline.js';
import { mountAdmin } from './server/admin.js';
import { loadUws } from './server/uws.js';
import { createLogger, type Logger } from './observe/log.js';

export interface GatewayOptions {
  logger?: Logger;
  /** Injected clock and fetcher for the verifier (tests). */
  now?: () => number;
  fetch?: typeof globalThis.fetch;
}

export interface GatewayHandle {
  readonly port: number;
  readonly adminPort: number;
  readonly config: CompiledConfig;
  /** Requests being handled right now. */
  inFlight(): number;
  /**
   * Stops accepting connections, lets in-flight requests finish (up to
   * `server.drainTimeout`), then closes pools and workers. Idempotent.
   */
  close(): Promise<void>;
}

function listen(app: import('uWebSockets.js').TemplatedApp, host: string, port: number, what: string): Promise<{ socket: us_listen_socket; port: number }> {
  const uws = loadUws();
  return new Promise((resolve, reject) => {
    app.listen(host, port, (socket) => {
      if (!socket) {
        reject(new GatewayError('LISTEN_FAILED', `cannot listen on ${host}:${port} for the ${what} listener (address in use or not available)`));
      } else {
        resolve({ socket, port: uws.us_socket_local_port(socket as unknown as import('uWebSockets.js').us_socket) });
      }
    });
  });
}

/**
 * Starts the gateway with a compiled config: verifier (keys fetched once), upstream
 * pools, the public uWS listener and the admin listener.
 *
 * @example
 * const gw = await startGateway(loadConfig('gateway.yaml'));
 * process.on('SIGTERM', () => gw.close().then(() => process.exit(0)));
 */
export async function startGateway(config: CompiledConfig, options: GatewayOptions = {}): Promise<GatewayHandle> {
  const uws = loadUws();
  const logger = options.logger ?? createLogger();
  const verifier: Verifier | null =
    config.issuers.length > 0
      ? createVerifier(config, {
          ...(options.now ? { now: options.now } : {}),
          ...(options.fetch ? { fetch: options.fetch } : {}),
          log: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => logger[level](fields ?? {}, msg),
        })
      : null;
  await verifier?.start();
  const pools = new UpstreamPools(config.upstreams);

  let inFlight = 0;
  let drained: (() => void) | null = null;
  const onDone = (_ex: Exchange): void => {
    inFlight--;
    if (inFlight === 0 && drained) drained();
  };
  const pipeline = new Pipeline({ config, verifier, pools, onDone });

  const tls = config.listen.tls;
  const app = tls
    ? uws.SSLApp({ cert_file_name: tls.cert, key_file_name: tls.key, ...(tls.passphrase ? { passphrase: tls.passphrase } : {}) })
    : uws.App();
  app.any('/*', (res, req) => {
    inFlight++;
    pipeline.handle(res, req);
  });

  let publicSocket: us_listen_socket | null = null;
  let adminSocket: us_listen_socket | null = null;
  const cleanup = async () => {
    if (publicSocket) uws.us_listen_socket_close(publicSocket);
    if (adminSocket) uws.us_listen_socket_close(adminSocket);
    publicSocket = adminSocket = null;
    await pools.close();
    await verifier?.close();
  };
  try {
    const pub = await listen(app, config.listen.host, config.listen.port, 'public');
    publicSocket = pub.socket;
    const adminApp = mountAdmin(uws.App(), {
      ready: () => {
        const keys = verifier?.readiness() ?? { ready: true, issuers: {} };
        const listening = publicSocket !== null && !pipeline.draining;
        return { ready: listening && keys.ready, checks: { listening, config: 'loaded', upstreams: [...config.upstreams.keys()], issuers: keys.issuers } };
      },
    });
    const adm = await listen(adminApp, config.admin.host, config.admin.port, 'admin');
    adminSocket = adm.socket;

    logger.info({ port: pub.port, adminPort: adm.port, host: config.listen.host, routes: config.routes.length }, 'listening');

    let closing: Promise<void> | null = null;
    return {
      port: pub.port,
      adminPort: adm.port,
      config,
      inFlight: () => inFlight,
      close() {
        closing ??= (async () => {
          pipeline.draining = true;
          // Stop accepting: new connections are refused from here on.
          if (publicSocket) uws.us_listen_socket_close(publicSocket);
          publicSocket = null;
          if (inFlight > 0) {
            logger.info({ inFlight }, 'draining');
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, config.server.drainTimeoutMs);
              drained = () => {
                clearTimeout(timer);
                resolve();
              };
            });
          }
          if (inFlight > 0) logger.warn({ inFlight }, 'drain timeout: closing with requests in flight');
          await cleanup();
          logger.info({}, 'stopped');
          logger.flush();
        })();
        return closing;
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
