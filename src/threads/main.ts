/**
 * The front end on every core (README "Threads"; `server.threads` above 1): the main
 * thread checks the public port as the single loop does (listenExclusive: no other
 * process may hold it), then starts one front-end thread per `server.threads`
 * (./worker.ts), each listening on that same port (SO_REUSEPORT: the kernel spreads
 * connections). The main thread keeps what is one per process and answers the threads
 * over their MessagePorts: the verifier (Piscina pool, key sets), the rate-limit hub
 * (./limits.ts), the revocation list (threads hold replicas), the replay store, the
 * audit destination, the log, and the admin listener, whose /metrics merges every
 * thread's counters (prom-client's AggregatorRegistry.aggregate).
 *
 * A thread that dies is logged, counted (`mfa_gateway_thread_restarts_total`) and
 * replaced; the others keep serving. Threads are never terminate()d: uWS aborts the
 * whole process when a thread ends with its handles open, so a thread closes its app
 * itself, on a drain or an uncaught exception, and then exits.
 */
import { Worker } from 'node:worker_threads';
import pino from 'pino';
import { AggregatorRegistry } from 'prom-client';
import type { GatewayState } from '../config/state.js';
import type { RawConfig } from '../config/schema.js';
import type { Services, SharedServices } from '../pipeline/services.js';
import type { FrontEnd } from '../server/front-end.js';
import type { Logger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import type { Audit } from '../observe/audit.js';
import { tokenHashKey } from '../observe/audit.js';
import type { Verifier } from '../authn/types.js';
import type { RevocationList } from '../revocation/list.js';
import type { LifecycleKeys } from '../lifecycle.js';
import type { SharedLimitStore } from '../limits/shared.js';
import { ReplayUnavailableError } from '../dpop/replay.js';
import { GatewayError } from '../errors.js';
import { UpstreamPools } from '../proxy/pools.js';
import { listenExclusive } from '../server/listen.js';
import { loadUws } from '../server/uws.js';
import { tokenFailure } from '../authn/failures.js';
import { keyStoreSelector } from '../revocation/logout-token.js';
import { LimitHub } from './limits.js';
import type { ThreadData, ToMain, ToThread } from './protocol.js';

/** What the main thread lends the threads. */
export interface ThreadHost {
  readonly shared: SharedServices;
  readonly verifier: () => Verifier | null;
  readonly revocationList: RevocationList;
  readonly keys: LifecycleKeys;
  /** The instance's shared store (`state.store: redis`), or undefined. */
  readonly store: SharedLimitStore | undefined;
  readonly audit: () => Audit;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly fixedLogLevel: string | null;
}

/**
 * The threads, steered as the single loop's FrontEnd is (`inFlight()`: every thread's
 * requests in flight, each sampled every 100 ms), plus what only threads need.
 */
export interface ThreadedFront extends FrontEnd {
  /** Every thread drains as the single loop does; resolves when all have ended. Requests aborted, summed. */
  drain(limitMs: number): Promise<number>;
  /** A reload the main thread committed: every thread compiles the same effective config. */
  reloadThreads(effective: RawConfig, dropTokens: boolean): void;
  /** The exposition text of /metrics: the main thread's metrics merged with every thread's. */
  metricsText(): Promise<{ contentType: string; body: string }>;
}

interface Live {
  readonly index: number;
  worker: Worker;
  /** Set once the thread said it drained: its exit is expected. */
  ending: boolean;
  listening: boolean;
}

const WORKER_FILE = new URL('./worker.js', import.meta.url);
/** A thread that does not answer a /metrics question within this is left out of that scrape. */
const METRICS_WAIT_MS = 2000;

export async function startThreads(state: GatewayState, source: { readonly effective: RawConfig; readonly baseDir: string }, host: ThreadHost): Promise<ThreadedFront> {
  const uws = loadUws();
  const { logger, metrics } = host;
  const n = state.server.threads;
  // The single loop's guarantee: refuse to start when another process holds the port.
  // Checked with an exclusive listen, which also resolves port 0 to the one port every
  // thread then shares; closed again before the threads listen with SO_REUSEPORT.
  const probeApp = uws.App();
  const probe = await listenExclusive(probeApp, state.listen.host, state.listen.port, 'public');
  uws.us_listen_socket_close(probe.socket);
  (probeApp as unknown as { close(): void }).close();
  const port = probe.port;

  let effective = source.effective;
  const holder = { current: state };
  const hub = new LimitHub(Date.now, host.store !== undefined);
  host.store?.register(hub);
  const threads: Live[] = [];
  const inFlight = new SharedArrayBuffer(4 * n);
  const inFlightSlots = new Int32Array(inFlight);
  let draining = false;
  const metricWaits = new Map<number, (json: unknown[] | null) => void>();
  let nextId = 1;
  // Log lines of threads go to the main logger's own destination, whole.
  const dest = (logger as unknown as Record<symbol, { write(s: string): void } | undefined>)[pino.symbols.streamSym];

  const post = (t: Live, m: ToThread): void => t.worker.postMessage(m);
  const broadcast = (m: ToThread, except = -1): void => {
    for (const t of threads) if (t.index !== except && !t.ending) post(t, m);
  };

  // Changes to the process's list reach every replica but the one they came from.
  // Entries that expire or are evicted do so on every replica by themselves.
  const stopRevocations = host.revocationList.onChange((c) => {
    if (c.op === 'remove' && c.why !== 'removed') return;
    const from = typeof c.origin === 'string' && c.origin.startsWith('thread:') ? Number(c.origin.slice(7)) : -1;
    broadcast({ t: 'revocation', op: c.op, entry: c.entry }, from);
  });
  host.store?.onBlock((key, until) => broadcast({ t: 'block', key, until }));

  const onMessage = (t: Live, m: ToMain): void => {
    switch (m.t) {
      case 'log':
        // A logger that is no pino logger (a program's own): the line goes to stdout as it is.
        if (dest) dest.write(m.line);
        else process.stdout.write(m.line);
        return;
      case 'audit':
        host.audit().lines(m.text, m.count);
        return;
      case 'verify': {
        const v = host.verifier();
        if (v === null) return post(t, { t: 'verified', id: m.id, result: tokenFailure('verifier_unavailable') });
        const r = v.lookup(m.token);
        if (r !== undefined) return post(t, { t: 'verified', id: m.id, result: r });
        void v.verify(m.token).then(
          (result) => post(t, { t: 'verified', id: m.id, result }),
          // verify() answers failures; a rejection would be a bug, answered as the verifier being unavailable.
          () => post(t, { t: 'verified', id: m.id, result: tokenFailure('verifier_unavailable') }),
        );
        return;
      }
      case 'key': {
        const keys = host.verifier()?.keys?.(m.issuer);
        if (keys === undefined) return post(t, { t: 'key', id: m.id, jwk: null });
        void Promise.resolve(keyStoreSelector(keys)(m.alg, m.kid)).then(
          (jwk) => post(t, { t: 'key', id: m.id, jwk: jwk ?? null }),
          () => post(t, { t: 'key', id: m.id, jwk: null }),
        );
        return;
      }
      case 'sync':
        post(t, { t: 'totals', id: m.id, totals: hub.add(m.items) });
        metrics.threadSync();
        return;
      case 'block':
        broadcast({ t: 'block', key: m.key, until: m.until }, t.index);
        host.store?.publishBlock(m.key, m.until);
        return;
      case 'revoke':
        host.revocationList.add(m.input, `thread:${t.index}`);
        return;
      case 'unrevoke':
        host.revocationList.remove(m.issuer, m.kind, m.value, `thread:${t.index}`);
        return;
      case 'replay':
        void (async () => {
          try {
            post(t, { t: 'replayed', id: m.id, fresh: await host.shared.replay.remember(m.jti, m.until) });
          } catch (err) {
            // A replay store that cannot answer stays a 503 on the thread (README "Redis outages").
            if (err instanceof ReplayUnavailableError) post(t, { t: 'replayed', id: m.id, unavailable: err.message.replace(/^the replay store is unavailable: /, '') });
            else post(t, { t: 'replayed', id: m.id, error: (err as Error).message });
          }
        })();
        return;
      case 'metrics': {
        const w = metricWaits.get(m.id);
        metricWaits.delete(m.id);
        w?.(m.json);
        return;
      }
      case 'listening':
      case 'failed':
      case 'drained':
        return; // awaited where the thread is started or drained
    }
  };

  /** Starts thread `index`; resolves once it listens (rejects with its reason when it cannot). */
  const spawn = (index: number): Promise<Live> => {
    const data: ThreadData = {
      index,
      threads: n,
      effective,
      baseDir: source.baseDir,
      port,
      tokenHashKey: tokenHashKey(),
      revocations: host.revocationList.list(),
      keys: host.keys,
      inFlight,
      fixedLogLevel: host.fixedLogLevel,
    };
    const worker = new Worker(WORKER_FILE, { workerData: data });
    const t: Live = { index, worker, ending: false, listening: false };
    // In the list from now on: a revocation or a block made while it starts reaches it too
    // (its port holds messages until the thread listens to it).
    threads[index] = t;
    let listened = false;
    worker.on('message', (m: ToMain) => onMessage(t, m));
    return new Promise((resolve, reject) => {
      const early = (m: ToMain): void => {
        if (m.t === 'listening') {
          t.listening = true;
          listened = true;
          worker.off('message', early);
          resolve(t);
        } else if (m.t === 'failed') {
          worker.off('message', early);
          t.ending = true;
          reject(new GatewayError(m.code ?? 'THREAD_FAILED', `front-end thread ${index}: ${m.error}`));
        }
      };
      worker.on('message', early);
      worker.on('error', (err) => {
        logger.error({ thread: index, err: err.message, stack: err.stack }, 'front-end thread error');
        if (!t.listening) reject(err);
      });
      worker.on('exit', (code) => {
        t.listening = false;
        t.ending = true;
        Atomics.store(inFlightSlots, index, 0);
        // One that never listened was answered by its start's rejection (a start that
        // fails, or a replacement that cannot start: logged below, never retried in a loop).
        if (!listened || draining || threads[index] !== t) return;
        // Died: logged, counted, replaced; the other threads kept serving meanwhile.
        metrics.threadRestart();
        logger.error({ thread: index, exitCode: code }, 'front-end thread died; starting another');
        void spawn(index).then(
          (fresh) => {
            if (draining) void drainOne(fresh, holder.current.server.drainTimeoutMs);
          },
          (err: Error) => logger.error({ thread: index, err: err.message }, 'front-end thread could not be replaced'),
        );
      });
    });
  };

  const drainOne = (t: Live, limitMs: number): Promise<number> =>
    new Promise((resolve) => {
      let left = 0;
      const onMsg = (m: ToMain): void => {
        if (m.t === 'drained') {
          t.ending = true;
          left = m.left;
        }
      };
      t.worker.on('message', onMsg);
      t.worker.once('exit', () => resolve(left));
      post(t, { t: 'drain', limitMs });
    });

  const started = await Promise.allSettled(Array.from({ length: n }, (_, i) => spawn(i)));
  const failure = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure !== undefined) {
    draining = true;
    await Promise.all(started.flatMap((r) => (r.status === 'fulfilled' ? [drainOne(r.value, 0)] : [])));
    stopRevocations();
    hub.close();
    throw failure.reason;
  }

  // What the admin listener and the reload read on the main thread: no request runs here.
  const services: Services = { ...host.shared, pools: new UpstreamPools(new Map()), draining: false, finished() {} };
  const askMetrics = (t: Live): Promise<unknown[] | null> =>
    new Promise((resolve) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        metricWaits.delete(id);
        resolve(null);
      }, METRICS_WAIT_MS);
      metricWaits.set(id, (json) => {
        clearTimeout(timer);
        resolve(json);
      });
      post(t, { t: 'metrics', id });
    });

  const front: ThreadedFront = {
    port,
    holder,
    services,
    inFlight: () => inFlightSlots.reduce((a, b) => a + b, 0),
    idle: () => Promise.resolve(),
    stopListening() {},
    listening: () => !draining && threads.some((t) => t.listening),
    swap(next) {
      holder.current = next;
      return { kept: [], replaced: [], added: [], removed: [] };
    },
    reloadThreads(next, dropTokens) {
      effective = next;
      broadcast({ t: 'reload', effective: next, dropTokens });
    },
    abort() {},
    async close() {
      // A start that failed after the threads listened: they end here, never left running.
      if (!draining) await front.drain(0);
      stopRevocations();
      host.store?.unregister(hub);
      hub.close();
    },
    async drain(limitMs) {
      draining = true;
      services.draining = true;
      const left = await Promise.all(threads.filter((t) => !t.ending).map((t) => drainOne(t, limitMs)));
      return left.reduce((a, b) => a + b, 0);
    },
    async metricsText() {
      const live = threads.filter((t) => t.listening && !t.ending);
      const perThread = await Promise.all(live.map(askMetrics));
      const all = [(await metrics.registry.getMetricsAsJSON()) as unknown[], ...perThread.filter((j): j is unknown[] => j !== null)];
      const merged = AggregatorRegistry.aggregate(all);
      const body = (await merged.metrics()) + threadRequests(live.map((t, i) => [t.index, perThread[i] ?? null]));
      return { contentType: merged.contentType, body };
    },
  };
  return front;
}

/** `mfa_gateway_thread_requests_total{thread}`: each thread's requests, so an operator sees the spread. */
function threadRequests(rows: readonly (readonly [number, unknown[] | null])[]): string {
  let out = '# HELP mfa_gateway_thread_requests_total Requests answered by each front-end thread (since it started).\n# TYPE mfa_gateway_thread_requests_total counter\n';
  for (const [index, json] of rows) {
    if (json === null) continue;
    const m = (json as { name: string; values: { value: number }[] }[]).find((x) => x.name === 'mfa_gateway_requests_total');
    const sum = m?.values.reduce((a, v) => a + v.value, 0) ?? 0;
    out += `mfa_gateway_thread_requests_total{thread="${index}"} ${sum}\n`;
  }
  return out;
}
