import type { us_listen_socket } from 'uWebSockets.js';
import type { GatewayState } from './config/state.js';
import type { Verifier } from './authn/types.js';
import { createVerifier } from './authn/verifier.js';
import { GatewayError } from './errors.js';
import { UpstreamPools } from './proxy/pools.js';
import type { Services } from './pipeline/services.js';
import type { RequestContext } from './pipeline/context.js';
import { frontHandler, type StateHolder } from './server/front.js';
import { mountAdmin } from './server/admin.js';
import { SYSTEM_RUNTIME, type Runtime } from './runtime.js';
import { recordRequest } from './observe/record.js';
import { loadUws } from './server/uws.js';
import { createLogger, type Logger } from './observe/log.js';
import { createAudit } from './observe/audit.js';
import { createMetrics, type Collectors, type Metrics } from './observe/metrics.js';
import { createRateLimits } from './limits/limits.js';

export interface GatewayOptions {
  logger?: Logger;
  metrics?: Metrics;
  /** The clock and network of every part (src/runtime.ts); tests give one they control. */
  runtime?: Runtime;
}

export interface GatewayHandle {
  readonly port: number;
  readonly adminPort: number;
  readonly config: GatewayState;
  /** Requests being handled right now. */
  inFlight(): number;
  /**
   * Stops accepting connections, lets in-flight requests finish (up to
   * `server.drainTimeout`), then closes pools and workers. Idempotent.
   */
  close(): Promise<void>;
}

/** uSockets' `LIBUS_LISTEN_EXCLUSIVE_PORT` (uWebSockets.js ListenOptions). */
const LIBUS_LISTEN_EXCLUSIVE_PORT = 1;
interface ExclusiveListen {
  listen(host: string, port: number, options: number, cb: (socket: us_listen_socket | false) => void): void;
}

function listen(app: import('uWebSockets.js').TemplatedApp, host: string, port: number, what: string): Promise<{ socket: us_listen_socket; port: number }> {
  const uws = loadUws();
  return new Promise((resolve, reject) => {
    // uSockets sets SO_REUSEPORT by default, so a second gateway on the same port would
    // "listen" too and share the traffic unnoticed; an exclusive port fails instead.
    // (The package's typings lack this overload; the native listen takes host, port, options, callback.)
    (app as unknown as ExclusiveListen).listen(host, port, LIBUS_LISTEN_EXCLUSIVE_PORT, (socket) => {
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
export async function startGateway(config: GatewayState, options: GatewayOptions = {}): Promise<GatewayHandle> {
  const uws = loadUws();
  const logger = options.logger ?? createLogger({ level: config.log.level });
  const metrics = options.metrics ?? createMetrics();
  const runtime = options.runtime ?? SYSTEM_RUNTIME;
  const verifier: Verifier | null =
    config.issuers.length > 0
      ? createVerifier(config, {
          now: runtime.now,
          fetch: runtime.fetch,
          log: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => logger[level](fields ?? {}, msg),
          onKeyFetch: (issuer: string, ok: boolean) => metrics.jwksFetch(issuer, ok),
          onTaskTimeout: () => metrics.verifierTimeout(),
        })
      : null;
  await verifier?.start();
  const pools = new UpstreamPools(config.upstreams);

  const rateLimits = createRateLimits(config.rateLimit, { now: runtime.now });
  const audit = createAudit(config.audit, { now: runtime.now, onError: (err) => logger.error({ err: err.message }, 'audit destination failed') });
  metrics.setCollectors({
    pools: () => [...pools.entries()].map(([upstream, p]) => ({ upstream, ...p.stats() })),
    auditDropped: () => audit.dropped(),
    ...(verifier?.stats ? verifierCollectors(verifier) : {}),
  });

  let inFlight = 0;
  let drained: (() => void) | null = null;
  const reportInternal = (ctx: RequestContext | null, err: unknown): void => {
    metrics.internalError();
    // The message and stack only: never request data, which could hold a token.
    const e = err instanceof Error ? err : new Error(String(err));
    logger.error({ request_id: ctx?.requestId ?? null, route: ctx?.route?.name ?? null, err: e.message, stack: e.stack }, 'internal error while handling a request');
  };
  const services: Services = {
    runtime,
    verifier,
    limits: rateLimits,
    pools,
    metrics,
    draining: false,
    finished(ctx) {
      inFlight--;
      recordRequest(ctx, audit, metrics, logger, (c) => reportInternal(c, new Error('a request finished without a reason')));
      if (inFlight === 0 && drained) drained();
    },
    internalError: reportInternal,
    sprayingBlocked: (client) => {
      metrics.sprayingBlocked();
      logger.warn({ client }, 'token spraying: address blocked');
    },
  };
  const holder: StateHolder = { current: config };

  const tls = config.listen.tls;
  const app = tls
    ? uws.SSLApp({ cert_file_name: tls.cert, key_file_name: tls.key, ...(tls.passphrase ? { passphrase: tls.passphrase } : {}) })
    : uws.App();
  app.any(
    '/*',
    frontHandler(services, holder, () => {
      inFlight++;
    }),
  );

  // Defence in depth behind the per-request boundary: a promise chain that escaped it is
  // logged and counted, and the process keeps serving (Node's default would exit).
  const onUnhandled = (reason: unknown): void => {
    metrics.internalError();
    const e = reason instanceof Error ? reason : new Error(String(reason));
    logger.error({ err: e.message, stack: e.stack }, 'internal error: unhandled promise rejection');
  };
  process.on('unhandledRejection', onUnhandled);

  let publicSocket: us_listen_socket | null = null;
  let adminSocket: us_listen_socket | null = null;
  const cleanup = async () => {
    process.off('unhandledRejection', onUnhandled);
    if (publicSocket) uws.us_listen_socket_close(publicSocket);
    if (adminSocket) uws.us_listen_socket_close(adminSocket);
    publicSocket = adminSocket = null;
    await pools.close();
    await verifier?.close();
    await audit.close();
  };
  try {
    const pub = await listen(app, config.listen.host, config.listen.port, 'public');
    publicSocket = pub.socket;
    const adminApp = mountAdmin(uws.App(), {
      ready: () => {
        const keys = verifier?.readiness() ?? { ready: true, issuers: {}, pool: { ok: true } };
        const listening = publicSocket !== null && !services.draining;
        return {
          ready: listening && keys.ready,
          checks: { listening, config: 'loaded', upstreams: [...config.upstreams.keys()], issuers: keys.issuers, verifier: keys.pool },
        };
      },
      metrics: () => metrics.text(),
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
          services.draining = true;
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

function verifierCollectors(v: Verifier): Collectors {
  return {
    cacheSize: () => v.stats!().cacheSize,
    verifierQueue: () => v.stats!().queued,
    negativeCacheSize: () => v.stats!().negativeSize,
    verifierUtilization: () => v.stats!().utilization,
  };
}
