/**
 * One front-end thread (README "Threads"; `server.threads` above 1): a uWS app on the
 * port the main thread checked, running the whole pipeline with parts of its own (its
 * upstream pools, its token cache, its DPoP, introspection and assertion parts) and
 * the main thread's for what must be one per process, reached over this thread's
 * MessagePort: token verification (the Piscina pool and the key sets), the rate-limit
 * and spraying totals (./limits.ts), the revocation list (a replica here), the replay
 * store, the audit destination and the operational log.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Writable } from 'node:stream';
import type { RawConfig } from '../config/schema.js';
import type { GatewayState } from '../config/state.js';
import { validateConfig } from '../config/load.js';
import { startFrontEnd, type FrontEnd } from '../server/front-end.js';
import { SYSTEM_RUNTIME } from '../runtime.js';
import { createLogger } from '../observe/log.js';
import { createMetrics } from '../observe/metrics.js';
import { isoTimeOf, type Audit } from '../observe/audit.js';
import { auditLine } from '../observe/audit-line.js';
import { reportsTo } from '../observe/reports.js';
import { recordRequest } from '../observe/record.js';
import { createRateLimits } from '../limits/limits.js';
import { buildLifecycle } from '../lifecycle.js';
import { ReplayUnavailableError, type ReplayStore } from '../dpop/replay.js';
import type { Revocations, SharedServices } from '../pipeline/services.js';
import { connectionShare } from './count.js';
import { PortLimitStore } from './limits.js';
import { RemoteVerifier } from './verifier.js';
import type { ThreadData, ToMain, ToThread } from './protocol.js';

const data = workerData as ThreadData;
const port = parentPort!;
const send = (m: ToMain): void => port.postMessage(m);

/** The state of this thread: the effective config with this thread's share of each upstream's connections. */
function compile(effective: RawConfig): GatewayState {
  const upstreams: RawConfig['upstreams'] = {};
  for (const [name, u] of Object.entries(effective.upstreams)) upstreams[name] = { ...u, connections: connectionShare(u.connections, data.threads, data.index) };
  return validateConfig({ ...effective, upstreams }, data.baseDir).config;
}

/** Replies to this thread's requests, by id. */
const waiting = new Map<number, (m: ToThread) => void>();
let nextId = 1;
function ask(make: (id: number) => ToMain): Promise<ToThread> {
  const id = nextId++;
  return new Promise((resolve) => {
    waiting.set(id, resolve);
    send(make(id));
  });
}

async function main(): Promise<void> {
  let state = compile(data.effective);
  const runtime = SYSTEM_RUNTIME;
  // Log lines go whole to the main thread, which writes them beside its own.
  const toMain = { write: (line: string) => (send({ t: 'log', line }), true) } as unknown as Writable;
  const logger = createLogger({ level: data.fixedLogLevel ?? state.log.level, destination: toMain });
  const log = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown>): void => logger[level]({ thread: data.index, ...fields }, msg);
  // process_* and nodejs_* come from the main thread's registry (one process).
  const metrics = createMetrics({ defaultMetrics: false });
  const lifecycle = buildLifecycle(state, { runtime, log, keys: data.keys });
  const list = lifecycle.revocationList;
  for (const e of data.revocations) list.add(e, 'main');
  // The replica: checks here; changes made here go to the main thread, which applies them to the process's list and the other threads.
  const revocations: Revocations = {
    check: (p) => list.check(p),
    add(input, origin) {
      const e = list.add(input, origin);
      send({ t: 'revoke', input: { issuer: e.issuer, kind: e.kind, value: e.value, cutoffSec: e.cutoffSec, expiresAtMs: e.expiresAtMs } });
      return e;
    },
    remove(issuer, kind, value, origin) {
      send({ t: 'unrevoke', issuer, kind, value });
      return list.remove(issuer, kind, value, origin);
    },
    list: () => list.list(),
    stats: () => list.stats(),
  };
  const replay: ReplayStore = {
    remember: (jti, until) =>
      ask((id) => ({ t: 'replay', id, jti, until })).then((m) => {
        if (m.t === 'replayed' && 'unavailable' in m) throw new ReplayUnavailableError(m.unavailable);
        if (m.t === 'replayed' && 'error' in m) throw new Error(m.error);
        return m.t === 'replayed' && 'fresh' in m && m.fresh;
      }),
  };
  const store = new PortLimitStore(state.state.syncIntervalMs, (items) =>
    ask((id) => ({ t: 'sync', id, items })).then((m) => (m.t === 'totals' ? m.totals : null)),
  (key, until) => send({ t: 'block', key, until }));
  const reports = reportsTo(logger, metrics, { thread: data.index });
  const sprayingBlocked = reports.sprayingBlocked;
  // Always one, even with no issuer yet: a reload may add the first (the main thread then starts its verifier).
  const verifier = new RemoteVerifier(
    () => state,
    (token) => ask((id) => ({ t: 'verify', id, token })),
    (issuer, alg, kid) => ask((id) => ({ t: 'key', id, issuer, alg, kid })),
  );

  const shared: SharedServices = {
    runtime,
    verifier,
    limits: createRateLimits(state.rateLimit, { now: runtime.now, shared: store, onSharedBlock: sprayingBlocked }),
    metrics,
    ...lifecycle.services,
    revocations,
    replay,
    internalError: reports.internalError,
    sprayingBlocked,
    log: (level, msg, fields) => logger[level]({ thread: data.index, ...fields }, msg),
  };
  const audit = threadAudit(() => state, runtime.now);
  let fe: FrontEnd;
  try {
    fe = await startFrontEnd(state, shared, (ctx) => recordRequest(ctx, audit, metrics, logger, reports.missingReason), { port: data.port, shared: true });
  } catch (err) {
    send({ t: 'failed', error: (err as Error).message, code: (err as { code?: string }).code ?? null });
    lifecycle.close();
    store.close();
    return;
  }
  // What the main thread reports as in flight (GatewayHandle.inFlight, the `stopping` line): a
  // sample every 100 ms, so a request pays nothing for it.
  const inFlight = new Int32Array(data.inFlight);
  const sampler = setInterval(() => Atomics.store(inFlight, data.index, fe.inFlight()), 100);
  sampler.unref();
  metrics.setCollectors({
    pools: () => [...fe.services.pools.entries()].map(([upstream, p]) => ({ upstream, ...p.stats() })),
  });
  // An exception no request's boundary caught: this thread's connections are closed
  // (app.close(), so no uWS handle outlives the thread: one would abort the whole
  // process), and the thread ends; the main thread logs it and starts another.
  process.on('uncaughtException', (err) => {
    logger.error({ thread: data.index, err: err.message, stack: err.stack }, 'front-end thread: uncaught exception; closing its connections and exiting (the main thread replaces it)');
    fe.abort();
    audit.flush();
    process.exit(1);
  });
  process.on('unhandledRejection', reports.unhandledRejection);

  port.on('message', (m: ToThread) => {
    switch (m.t) {
      case 'verified':
      case 'key':
      case 'totals':
      case 'replayed': {
        const w = waiting.get(m.id);
        waiting.delete(m.id);
        w?.(m);
        return;
      }
      case 'block':
        store.received(m.key, m.until);
        return;
      case 'revocation':
        if (m.op === 'add') list.add(m.entry, 'main');
        else list.remove(m.entry.issuer, m.entry.kind, m.entry.value, 'main');
        return;
      case 'metrics':
        void metrics.registry.getMetricsAsJSON().then((json) => send({ t: 'metrics', id: m.id, json: json as unknown[] }));
        return;
      case 'reload': {
        // The main thread validated and committed this config; compiling it again cannot fail.
        const next = compile(m.effective);
        shared.limits.reconfigure(next.rateLimit);
        if (m.dropTokens) verifier.clear();
        fe.swap(next);
        state = next;
        if (data.fixedLogLevel === null) logger.level = next.log.level;
        return;
      }
      case 'drain':
        void drain(fe, m.limitMs).then((left) => {
          clearInterval(sampler);
          Atomics.store(inFlight, data.index, 0);
          lifecycle.close();
          store.close();
          audit.flush();
          logger.flush();
          send({ t: 'drained', left });
          // Every uWS handle is closed (abort ran app.close()): the thread may end.
          setImmediate(() => process.exit(0));
        });
        return;
    }
  });
  send({ t: 'listening' });
}

/** The drain of one thread, as the single loop drains (src/gateway.ts close): stop accepting, wait, abort the rest. */
async function drain(fe: FrontEnd, limitMs: number): Promise<number> {
  fe.services.draining = true;
  fe.stopListening();
  if (fe.inFlight() > 0) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([fe.idle(), new Promise<void>((resolve) => (timer = setTimeout(resolve, limitMs)))]);
    clearTimeout(timer);
  }
  const left = fe.inFlight();
  fe.abort();
  await fe.close(left > 0);
  return left;
}

/**
 * The audit log as this thread writes it: each line is made here, whole, and the lines
 * of one turn of the loop go to the main thread in one message, which writes them with
 * its audit destination (one write each: lines never interleave).
 */
function threadAudit(state: () => GatewayState, now: () => number): Audit & { flush(): void } {
  const time = isoTimeOf(now);
  let batch = '';
  let count = 0;
  let scheduled = false;
  const flush = (): void => {
    scheduled = false;
    if (count === 0) return;
    send({ t: 'audit', text: batch, count });
    batch = '';
    count = 0;
  };
  return {
    record(entry, principal) {
      if (!state().audit.enabled) return;
      batch += auditLine(entry, time(), principal);
      count++;
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    lines() {},
    dropped: () => 0,
    close: () => Promise.resolve(flush()),
    flush,
  };
}

await main();
