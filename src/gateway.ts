import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import type { GatewayState } from './config/state.js';
import type { Verifier, VerifierReconfiguration } from './authn/types.js';
import { GatewayError } from './errors.js';
import type { RateLimitChanges } from './limits/limits.js';
import { createVerifier } from './authn/verifier.js';
import type { RequestContext } from './pipeline/context.js';
import type { SharedServices } from './pipeline/services.js';
import { dirname, resolve } from 'node:path';
import { startFrontEnd, type FrontEnd } from './server/front-end.js';
import { startThreads, type ThreadedFront } from './threads/main.js';
import { mountAdmin, type AdminRoute } from './server/admin.js';
import { listenExclusive } from './server/listen.js';
import { SYSTEM_RUNTIME, type Runtime } from './runtime.js';
import { recordRequest } from './observe/record.js';
import { reportsTo, type Reports } from './observe/reports.js';
import { loadUws } from './server/uws.js';
import { createLogger, type Logger } from './observe/log.js';
import { createAudit, type Audit } from './observe/audit.js';
import { createMetrics, type Collectors, type Metrics } from './observe/metrics.js';
import { createRateLimits } from './limits/limits.js';
import { buildLifecycle, type Lifecycle } from './lifecycle.js';
import { startSharedState, type SharedState } from './state/index.js';
import { revocationRoutes } from './admin/revocations.js';
import { jwksRoute } from './admin/jwks.js';
import type { LogLevel, RawConfig } from './config/schema.js';
import type { LoadedConfig } from './config/load.js';
import { sameSettings } from './config/same.js';
import { readTokenFile } from './admin/token.js';
import { reloadRoute } from './admin/reload.js';
import { Reloader, watchConfigFile, type ConfigChanges, type ReloadResult } from './reload.js';

export interface GatewayOptions {
  logger?: Logger;
  metrics?: Metrics;
  /** The clock and network of every part (src/runtime.ts); tests give one they control. */
  runtime?: Runtime;
  /**
   * The file the state was loaded from, with its effective settings (LoadedConfig's):
   * with it the gateway can reload (GatewayHandle.reload, POST /reload on the admin
   * listener, and on every change of the file with `watch`).
   */
  source?: { readonly file: string; readonly effective: RawConfig; readonly watch?: boolean };
  /** A log level reloads leave alone (the CLI's `--log-level`); otherwise `log.level` follows the file. */
  fixedLogLevel?: LogLevel;
}

export interface GatewayHandle {
  readonly port: number;
  readonly adminPort: number;
  /** The state in force (a reload replaces it). */
  readonly config: GatewayState;
  /** Requests being handled right now. */
  inFlight(): number;
  /**
   * Reloads the config file (`source`; src/reload.ts): validated like `check`, put in
   * force when valid, else every problem logged and the running config kept. Never
   * rejects; without a source, a refusal saying so.
   */
  reload(trigger: string): Promise<ReloadResult>;
  /**
   * Stops accepting connections, lets in-flight requests finish for up to
   * `server.drainTimeout`, then aborts whatever is left (its client connection closed,
   * its upstream request aborted) and closes pools and workers. Idempotent.
   */
  close(): Promise<void>;
}

/** The process-wide parts the gateway builds once: shared by every front end, closed last. */
interface Process {
  readonly shared: SharedServices;
  /** The verifier (a reload that adds the first issuer builds one: setVerifier). */
  readonly verifier: Verifier | null;
  readonly lifecycle: Lifecycle;
  /** Where the state instances share lives (state.store): this process, or Redis. */
  readonly sharedState: SharedState;
  /** The audit log in use (a reload to another destination replaces it). */
  audit: Audit;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Internal errors, unhandled rejections and spraying blocks: logged once and counted. */
  readonly reports: Reports;
  /** A verifier for a state, its key sets fetched once (start, or a reload that adds the first issuer). */
  startVerifier(state: GatewayState): Promise<Verifier>;
  /** Opens the audit destination of a state (throws when it cannot be opened). */
  openAudit(state: GatewayState): Audit;
  setVerifier(v: Verifier): void;
  record(ctx: RequestContext): void;
  close(): Promise<void>;
}

async function startProcess(state: GatewayState, options: GatewayOptions): Promise<Process> {
  const logger = options.logger ?? createLogger({ level: state.log.level });
  const metrics = options.metrics ?? createMetrics();
  const runtime = options.runtime ?? SYSTEM_RUNTIME;
  const startVerifier = async (s: GatewayState): Promise<Verifier> => {
    const v = createVerifier(s, {
      now: runtime.now,
      fetch: runtime.fetch,
      log: (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => logger[level](fields ?? {}, msg),
      onKeyFetch: (issuer: string, ok: boolean) => metrics.jwksFetch(issuer, ok),
      onTaskTimeout: () => metrics.verifierTimeout(),
    });
    await v.start();
    return v;
  };
  const openAudit = (s: GatewayState): Audit =>
    createAudit(s.audit, { now: runtime.now, onError: (err) => logger.error({ err: err.message }, 'audit destination failed') });
  // Before anything starts: a secret that cannot be read is a start-up failure, with no verifier to stop.
  const lifecycle = buildLifecycle(state, { runtime, log: (level, msg, fields) => logger[level](fields, msg) });
  const reports = reportsTo(logger, metrics);
  const sprayingBlocked = reports.sprayingBlocked;
  let sharedState: SharedState;
  try {
    // Before the verifier and the listeners: the first requests see the shared revocation list.
    sharedState = await startSharedState(state, {
      now: runtime.now,
      log: (level, msg, fields) => logger[level](fields, msg),
      revocations: lifecycle.revocationList,
      replay: lifecycle.localReplay,
      onSync: (ok) => metrics.stateSync(ok),
      sprayingBlocked,
    });
  } catch (err) {
    lifecycle.close();
    throw err;
  }
  let audit = openAudit(state);
  let verifier: Verifier | null = null;
  try {
    verifier = state.issuers.length > 0 ? await startVerifier(state) : null;
  } catch (err) {
    await audit.close();
    await sharedState.close();
    lifecycle.close();
    throw err;
  }

  const shared: SharedServices = {
    runtime,
    verifier,
    limits: createRateLimits(state.rateLimit, { now: runtime.now, ...sharedState.limits }),
    metrics,
    ...lifecycle.services,
    replay: sharedState.replay,
    internalError: reports.internalError,
    sprayingBlocked,
    log: (level, msg, fields) => logger[level](fields, msg),
  };
  return {
    shared,
    lifecycle,
    sharedState,
    get verifier() {
      return verifier;
    },
    get audit() {
      return audit;
    },
    set audit(a: Audit) {
      audit = a;
    },
    logger,
    metrics,
    reports,
    startVerifier,
    openAudit,
    setVerifier(v) {
      verifier = v;
      (shared as { verifier: Verifier | null }).verifier = v;
    },
    record: (ctx) => recordRequest(ctx, audit, metrics, logger, reports.missingReason),
    async close() {
      await sharedState.close();
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
  const adminToken = adminTokenOf(state); // before anything starts: a token file that went bad since `check`
  if ('problem' in adminToken) throw new GatewayError('ADMIN_TOKEN', `admin.tokenFile: ${adminToken.problem}`);
  const proc = await startProcess(state, options);
  const { logger, metrics } = proc;
  const now = (options.runtime ?? SYSTEM_RUNTIME).now;

  // Defence in depth behind the per-request boundary: a promise chain that escaped it is
  // logged and counted, and the process keeps serving (Node's default would exit).
  const onUnhandled = proc.reports.unhandledRejection;
  process.on('unhandledRejection', onUnhandled);

  let front: FrontEnd | ThreadedFront | null = null;
  let adminApp: TemplatedApp | null = null;
  let adminSocket: us_listen_socket | null = null;
  let watcher: { close(): void } | null = null;
  const cleanup = async (hard: boolean) => {
    process.off('unhandledRejection', onUnhandled);
    watcher?.close();
    front?.stopListening();
    if (adminSocket) uws.us_listen_socket_close(adminSocket);
    adminSocket = null;
    // Every admin connection too (a scrape in progress): nothing outlives close().
    (adminApp as unknown as { close?(): void } | null)?.close?.();
    await front?.close(hard);
    await proc.close();
  };
  try {
    // server.threads above 1: the front end on every core (src/threads/main.ts). The
    // threads compile the config file's effective settings, so a gateway started without
    // a file (a program's own state) runs the single loop.
    const source = options.source;
    if (state.server.threads > 1 && source === undefined) logger.info({ threads: state.server.threads }, 'server.threads: one event loop (a gateway started without a config file has none for its threads to compile)');
    front =
      state.server.threads > 1 && source !== undefined
        ? await startThreads(state, { effective: source.effective, baseDir: dirname(resolve(source.file)) }, {
            shared: proc.shared,
            verifier: () => proc.verifier,
            revocationList: proc.lifecycle.revocationList,
            keys: proc.lifecycle.keys,
            store: proc.sharedState.limits.shared,
            audit: () => proc.audit,
            logger,
            metrics,
            fixedLogLevel: options.fixedLogLevel ?? null,
          })
        : await startFrontEnd(state, proc.shared, proc.record);
    const fe = front;
    const threaded = 'drain' in fe ? (fe as ThreadedFront) : null;
    // The dropped-lines counter stays one counter across audit destinations a reload replaced.
    let droppedBefore = 0;
    metrics.setCollectors({
      pools: () => [...fe.services.pools.entries()].map(([upstream, p]) => ({ upstream, ...p.stats() })),
      auditDropped: () => droppedBefore + proc.audit.dropped(),
      revocations: () => proc.shared.revocations.stats().byKind,
      stateStoreUp: () => (proc.sharedState.up() ? 1 : 0),
      ...verifierCollectors(proc),
    });
    let token = adminToken.token;
    let effective = options.source?.effective;
    let closing: Promise<void> | null = null;

    /** Puts a validated config in force (ReloadTarget.apply): prepare every part, then commit all at once. */
    const apply = async (next: LoadedConfig, changes: ConfigChanges): Promise<readonly string[]> => {
      if (closing !== null) return ['the gateway is shutting down'];
      const s = next.config;
      // What can fail comes first, while nothing has changed yet.
      const nextToken = adminTokenOf(s);
      if ('problem' in nextToken) return [`admin.tokenFile: ${nextToken.problem}`];
      let audit: Audit | null = null;
      if (!sameSettings(fe.holder.current.audit, s.audit)) {
        try {
          audit = proc.openAudit(s);
        } catch (err) {
          return [`audit.destination: ${(err as Error).message}`];
        }
      }
      const current = proc.verifier;
      let plan: VerifierReconfiguration | null;
      let added: Verifier | null;
      try {
        plan = current !== null ? await current.reconfigure(s) : null;
        added = current === null && s.issuers.length > 0 ? await proc.startVerifier(s) : null;
      } catch (err) {
        await audit?.close(); // a verifier that cannot start (its worker missing): nothing changed
        throw err;
      }
      if (closing !== null) {
        plan?.abandon();
        await added?.close();
        await audit?.close();
        return ['the gateway is shutting down'];
      }
      // Commit, synchronously: no request sees half of it. The state swap is last, so
      // every part already follows the state new requests take.
      const dropped = plan?.commit();
      if (added !== null) {
        proc.setVerifier(added);
        // The front end's services copied the shared parts when it started.
        (fe.services as { verifier: Verifier | null }).verifier = added;
      }
      const limits = proc.shared.limits.reconfigure(s.rateLimit);
      const pools = fe.swap(s);
      // The threads follow once the main thread has committed; their token caches drop
      // what the main thread's cache dropped.
      threaded?.reloadThreads(next.effective, plan !== null && (plan.replaced.length > 0 || plan.removed.length > 0 || plan.cacheResized));
      if (audit !== null) {
        const old = proc.audit;
        proc.audit = audit;
        droppedBefore += old.dropped();
        void old.close();
      }
      token = nextToken.token;
      if (options.fixedLogLevel === undefined) logger.level = s.log.level;
      effective = next.effective;
      logReloadSteps(logger, { plan, dropped: dropped?.cachedTokensDropped ?? 0, added: added !== null, limits, pools, audit: audit !== null, changes, level: logger.level });
      return [];
    };
    const reloader = options.source
      ? new Reloader(options.source.file, { effective: () => effective!, apply }, { logger, metrics, now })
      : null;
    const reload = (trigger: string): Promise<ReloadResult> =>
      reloader?.reload(trigger) ??
      Promise.resolve({ ok: false, trigger, file: '', problems: ['this gateway was started without a config file to reload'], changes: null });

    const routes: AdminRoute[] = [
      ...(reloader ? [reloadRoute(reload)] : []),
      ...revocationRoutes({ revocations: proc.shared.revocations, issuers: () => new Set(fe.holder.current.issuerByName.keys()) }),
      ...(proc.shared.assertions !== null ? [jwksRoute(proc.shared.assertions)] : []),
    ];
    adminApp = mountAdmin(uws.App(), {
      ready: () => {
        const keys = proc.verifier?.readiness() ?? { ready: true, issuers: {}, pool: { ok: true } };
        const listening = fe.listening() && !fe.services.draining;
        return {
          ready: listening && keys.ready,
          // The shared-state store is named, never a reason to be unready: without Redis the gateway still serves (README "Redis outages").
          checks: { listening, config: 'loaded', upstreams: [...fe.holder.current.upstreams.keys()], issuers: keys.issuers, verifier: keys.pool, state: proc.sharedState.readiness() },
        };
      },
      metrics: () => (threaded !== null ? threaded.metricsText() : metrics.text()),
      routes,
      token: () => token,
    });
    const adm = await listenExclusive(adminApp, state.admin.host, state.admin.port, 'admin');
    adminSocket = adm.socket;
    metrics.configLoad(true, now() / 1000, false);
    if (reloader && options.source?.watch) watcher = watchConfigFile(reloader.file, () => void reload('watch'), logger);

    logger.info({ port: fe.port, adminPort: adm.port, host: state.listen.host, routes: state.routes.length, ...(threaded !== null ? { threads: state.server.threads } : {}) }, 'listening');

    return {
      port: fe.port,
      adminPort: adm.port,
      get config() {
        return fe.holder.current;
      },
      inFlight: () => fe.inFlight(),
      reload,
      close() {
        closing ??= (async () => {
          fe.services.draining = true;
          // Stop accepting: new connections are refused from here on.
          fe.stopListening();
          watcher?.close();
          const limit = fe.holder.current.server.drainTimeoutMs;
          if (threaded !== null) {
            // Every thread drains as the single loop does, all at once (src/threads/worker.ts).
            logger.info({ threads: fe.holder.current.server.threads, inFlight: fe.inFlight(), drainTimeoutMs: limit }, 'draining');
            const aborted = await threaded.drain(limit);
            if (aborted > 0) logger.warn({ inFlight: aborted, drainTimeoutMs: limit }, 'drain timeout: aborted the requests still in flight');
            await cleanup(aborted > 0);
            logger.info({}, 'stopped');
            logger.flush();
            return;
          }
          if (fe.inFlight() > 0) {
            logger.info({ inFlight: fe.inFlight(), drainTimeoutMs: limit }, 'draining');
            let timer: NodeJS.Timeout | undefined;
            await Promise.race([fe.idle(), new Promise<void>((resolve) => (timer = setTimeout(resolve, limit)))]);
            clearTimeout(timer);
          }
          // A drain timeout is a hard limit: what is still in flight is aborted, its client
          // connection closed and its upstream request with it (README "Signals").
          const left = fe.inFlight();
          if (left > 0) logger.warn({ inFlight: left, drainTimeoutMs: limit }, 'drain timeout: aborting the requests still in flight');
          fe.abort(); // also closes idle kept-alive connections
          await cleanup(left > 0);
          logger.info({}, 'stopped');
          logger.flush();
        })();
        return closing;
      },
    };
  } catch (err) {
    await cleanup(true);
    throw err;
  }
}

/** The admin token of a state: its file's secret, or null when none is configured (loopback only, checks.ts). */
function adminTokenOf(state: GatewayState): { token: string | null } | { problem: string } {
  return state.admin.tokenFile === null ? { token: null } : readTokenFile(state.admin.tokenFile);
}

/** The debug lines of one reload's steps: what each part kept, replaced or dropped. */
function logReloadSteps(
  logger: Logger,
  r: {
    plan: VerifierReconfiguration | null;
    dropped: number;
    added: boolean;
    limits: RateLimitChanges;
    pools: ReturnType<FrontEnd['swap']>;
    audit: boolean;
    changes: ConfigChanges;
    level: string;
  },
): void {
  if (!logger.isLevelEnabled('debug')) return;
  const { plan } = r;
  if (plan) {
    logger.debug({ kept: plan.kept, replaced: plan.replaced, added: plan.added, removed: plan.removed, cachedTokensDropped: r.dropped, cacheResized: plan.cacheResized },
      'reload: issuers (kept ones keep their key set and cached tokens; replaced and removed ones lose both)');
  }
  if (r.added) logger.debug({}, 'reload: the first issuer: a verifier was started');
  logger.debug({ ...r.pools }, 'reload: upstream pools (replaced and removed ones close once the requests that arrived before the reload are done)');
  logger.debug({ ...r.limits }, 'reload: rate limiters (kept ones keep their counters; reset ones start from zero)');
  if (r.audit) logger.debug({}, 'reload: audit destination reopened (the old one flushed and closed)');
  if (r.changes.settings.includes('log.level')) logger.debug({ level: r.level }, 'reload: log level');
}

/** The verifier's gauges, read from the verifier in use when /metrics is scraped (none without one). */
function verifierCollectors(proc: Process): Collectors {
  // NaN leaves a gauge unset, as no collector at all did before a verifier existed.
  const stat = (k: 'cacheSize' | 'queued' | 'negativeSize' | 'utilization') => (): number => proc.verifier?.stats?.()[k] ?? Number.NaN;
  return {
    cacheSize: stat('cacheSize'),
    verifierQueue: stat('queued'),
    negativeCacheSize: stat('negativeSize'),
    verifierUtilization: stat('utilization'),
  };
}
