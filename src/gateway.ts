import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import type { GatewayState } from './config/state.js';
import type { Verifier } from './authn/types.js';
import { createVerifier } from './authn/verifier.js';
import type { RequestContext } from './pipeline/context.js';
import type { SharedServices } from './pipeline/services.js';
import { startFrontEnd, type FrontEnd } from './server/front-end.js';
import { mountAdmin, type AdminRoute } from './server/admin.js';
import { listenExclusive } from './server/listen.js';
import { SYSTEM_RUNTIME, type Runtime } from './runtime.js';
import { recordRequest } from './observe/record.js';
import { loadUws } from './server/uws.js';
import { createLogger, type Logger } from './observe/log.js';
import { createAudit, type Audit } from './observe/audit.js';
import { createMetrics, type Collectors, type Metrics } from './observe/metrics.js';
import { createRateLimits } from './limits/limits.js';
import { buildLifecycle, type Lifecycle } from './lifecycle.js';
import { revocationRoutes } from './admin/revocations.js';
import { jwksRoute } from './admin/jwks.js';

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

/** The process-wide parts the gateway builds once: shared by every front end, closed last. */
interface Process {
  readonly shared: SharedServices;
  readonly verifier: Verifier | null;
  readonly lifecycle: Lifecycle;
  readonly audit: Audit;
  readonly logger: Logger;
  readonly metrics: Metrics;
  record(ctx: RequestContext): void;
  close(): Promise<void>;
}

async function startProcess(state: GatewayState, options: GatewayOptions): Promise<Process> {
  const logger = options.logger ?? createLogger({ level: state.log.level });
  const metrics = options.metrics ?? createMetrics();
  const runtime = options.runtime ?? SYSTEM_RUNTIME;
  const verifier: Verifier | null =
    state.issuers.length > 0
      ? createVerifier(state, {
          now: runtime.now,
          fetch: runtime.fetch,
          log: (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => logger[level](fields ?? {}, msg),
          onKeyFetch: (issuer: string, ok: boolean) => metrics.jwksFetch(issuer, ok),
          onTaskTimeout: () => metrics.verifierTimeout(),
        })
      : null;
  // Before anything starts: a secret that cannot be read is a start-up failure, with no verifier to stop.
  const lifecycle = buildLifecycle(state, { runtime, log: (level, msg, fields) => logger[level](fields, msg) });
  const audit = createAudit(state.audit, { now: runtime.now, onError: (err) => logger.error({ err: err.message }, 'audit destination failed') });
  await verifier?.start();
  const reportInternal = (ctx: RequestContext | null, err: unknown): void => {
    metrics.internalError();
    // The message and stack only: never request data, which could hold a token.
    const e = err instanceof Error ? err : new Error(String(err));
    logger.error({ request_id: ctx?.requestId ?? null, route: ctx?.route?.name ?? null, err: e.message, stack: e.stack }, 'internal error while handling a request');
  };
  const shared: SharedServices = {
    runtime,
    verifier,
    limits: createRateLimits(state.rateLimit, { now: runtime.now }),
    metrics,
    ...lifecycle.services,
    internalError: reportInternal,
    sprayingBlocked: (client) => {
      metrics.sprayingBlocked();
      logger.warn({ client }, 'token spraying: address blocked');
    },
    log: (level, msg, fields) => logger[level](fields, msg),
  };
  return {
    shared,
    verifier,
    lifecycle,
    audit,
    logger,
    metrics,
    record: (ctx) => recordRequest(ctx, audit, metrics, logger, (c) => reportInternal(c, new Error('a request finished without a reason'))),
    async close() {
      lifecycle.close();
      await verifier?.close();
      await audit.close();
    },
  };
}

/**
 * Starts the gateway with a compiled state: the process-wide parts (verifier with its
 * key sets fetched once, rate limits, audit, metrics), the public front end and the
 * admin listener.
 *
 * @example
 * const gw = await startGateway(loadConfig('gateway.yaml'));
 * process.on('SIGTERM', () => gw.close().then(() => process.exit(0)));
 */
export async function startGateway(state: GatewayState, options: GatewayOptions = {}): Promise<GatewayHandle> {
  const uws = loadUws();
  const proc = await startProcess(state, options);
  const { logger, metrics } = proc;

  // Defence in depth behind the per-request boundary: a promise chain that escaped it is
  // logged and counted, and the process keeps serving (Node's default would exit).
  const onUnhandled = (reason: unknown): void => {
    metrics.internalError();
    const e = reason instanceof Error ? reason : new Error(String(reason));
    logger.error({ err: e.message, stack: e.stack }, 'internal error: unhandled promise rejection');
  };
  process.on('unhandledRejection', onUnhandled);

  let front: FrontEnd | null = null;
  let adminSocket: us_listen_socket | null = null;
  const cleanup = async () => {
    process.off('unhandledRejection', onUnhandled);
    front?.stopListening();
    if (adminSocket) uws.us_listen_socket_close(adminSocket);
    adminSocket = null;
    await front?.close();
    await proc.close();
  };
  try {
    front = await startFrontEnd(state, proc.shared, proc.record);
    const fe = front;
    metrics.setCollectors({
      pools: () => [...fe.services.pools.entries()].map(([upstream, p]) => ({ upstream, ...p.stats() })),
      auditDropped: () => proc.audit.dropped(),
      revocations: () => proc.shared.revocations.stats().byKind,
      ...(proc.verifier?.stats ? verifierCollectors(proc.verifier) : {}),
    });
    const routes: AdminRoute[] = [
      ...revocationRoutes({ revocations: proc.shared.revocations, issuers: () => new Set(fe.holder.current.issuerByName.keys()) }),
      ...(proc.shared.assertions !== null ? [jwksRoute(proc.shared.assertions)] : []),
    ];
    const adminApp: TemplatedApp = mountAdmin(uws.App(), {
      ready: () => {
        const keys = proc.verifier?.readiness() ?? { ready: true, issuers: {}, pool: { ok: true } };
        const listening = fe.listening() && !fe.services.draining;
        return {
          ready: listening && keys.ready,
          checks: { listening, config: 'loaded', upstreams: [...fe.holder.current.upstreams.keys()], issuers: keys.issuers, verifier: keys.pool },
        };
      },
      metrics: () => metrics.text(),
      routes,
    });
    const adm = await listenExclusive(adminApp, state.admin.host, state.admin.port, 'admin');
    adminSocket = adm.socket;

    logger.info({ port: fe.port, adminPort: adm.port, host: state.listen.host, routes: state.routes.length }, 'listening');

    let closing: Promise<void> | null = null;
    return {
      port: fe.port,
      adminPort: adm.port,
      config: state,
      inFlight: () => fe.inFlight(),
      close() {
        closing ??= (async () => {
          fe.services.draining = true;
          // Stop accepting: new connections are refused from here on.
          fe.stopListening();
          if (fe.inFlight() > 0) {
            logger.info({ inFlight: fe.inFlight() }, 'draining');
            let timer: NodeJS.Timeout | undefined;
            await Promise.race([fe.idle(), new Promise<void>((resolve) => (timer = setTimeout(resolve, state.server.drainTimeoutMs)))]);
            clearTimeout(timer);
          }
          if (fe.inFlight() > 0) logger.warn({ inFlight: fe.inFlight() }, 'drain timeout: closing with requests in flight');
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
