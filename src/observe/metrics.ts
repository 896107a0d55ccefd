import { readFileSync } from 'node:fs';
import { Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { CacheOutcome } from '../authn/types.js';
import { isReason as isAuditReason, type Reason as AuditReason } from '../reasons.js';
import { uwsBuild } from '../server/uws.js';

/**
 * Prometheus metrics (served on the admin listener's /metrics, never the public port).
 *
 * Why the hot-path counters and histograms are our own cells rather than
 * prom-client Counter / Histogram objects: measured on this machine, prom-client's
 * `inc({labels})` costs about 200 ns, `observe()` about 460 ns, and pre-bound
 * children are slower still (they hash the label object on every call). A cached
 * request would pay over 1 µs for its metrics. Here a request walks three Maps to a
 * preallocated cell and bumps numbers (about 10 ns, no allocation); the cells are
 * handed to prom-client's Registry only when /metrics is scraped, through metric
 * objects of the shape Registry expects. Gauges are prom-client Gauges filled by
 * collect callbacks at scrape time.
 *
 * Names follow Prometheus' conventions (prometheus.io, "Metric and label naming"):
 * counters end in `_total`, ratios (0-1) in `_ratio`, durations in `_seconds`, and
 * `mfa_gateway_build_info` (always 1) carries the versions as labels.
 *
 * Label values are bounded: routes, upstreams and issuers are config names (capped
 * at MAX_LABEL_VALUES each; anything beyond is counted as `other`), statuses are
 * integers 100–599, reasons come from the fixed AUDIT_REASONS vocabulary (anything
 * else is `other`). A raw path never becomes a label.
 */

/** Seconds. Fine steps below 10 ms, where a cached request lives, coarse up to upstream timeouts. */
export const LATENCY_BUCKETS: readonly number[] = Object.freeze([
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
]);

const MAX_LABEL_VALUES = 1000;
const NO_ROUTE = '(none)';
const OTHER = 'other';
const PREFIX = 'mfa_gateway_';

export type VerifyOutcome = 'valid' | 'invalid' | 'error';
/** The audit line's `decision`: allow = sent upstream, whatever the upstream answered. */
export type Decision = 'allow' | 'deny';
export type RateLimitKind = 'address' | 'subject' | 'spraying';

export interface Collectors {
  /** Validated tokens in the positive cache. */
  cacheSize?(): number;
  /** Failed tokens in the negative cache. */
  negativeCacheSize?(): number;
  /** Verifications waiting for a worker. */
  verifierQueue?(): number;
  /** Share of worker time spent verifying, 0–1 (Piscina's utilization). */
  verifierUtilization?(): number;
  pools?(): ReadonlyArray<{ upstream: string; connected: number; pending: number; running: number }>;
  /** Audit lines dropped because the destination could not keep up, since start (a counter). */
  auditDropped?(): number;
  /** Revocation-list entries, by kind (sub, sid, jti). */
  revocations?(): Readonly<Record<string, number>>;
  /** 1 while the shared-state store answers (always 1 with `state.store: memory`), else 0. */
  stateStoreUp?(): number;
}

export interface Metrics {
  /**
   * One finished request. `route` null when none matched; `totalSec` from first byte to
   * last; `decision` as in its audit line (the duration histogram is labelled by it).
   */
  request(route: string | null, status: number, reason: AuditReason, totalSec: number, decision: Decision): void;
  /** One token verification that ran (a cache miss): its time and how it ended. */
  verification(sec: number, outcome: VerifyOutcome): void;
  /** Time from dispatch to the upstream's response headers. */
  upstream(upstream: string, sec: number): void;
  cache(outcome: CacheOutcome): void;
  rateLimited(kind: RateLimitKind): void;
  /** An address became blocked for token spraying (once per block). */
  sprayingBlocked(): void;
  jwksFetch(issuer: string, ok: boolean): void;
  /** An exception escaped the handling of one request (answered 500, or its connection closed). */
  internalError(): void;
  /** A pool verification abandoned after `verifier.taskTimeout` (answered 503). */
  verifierTimeout(): void;
  /** A valid token refused because the revocation list names it (answered 401 `revoked`). */
  revokedRequest(): void;
  /**
   * A config was put in force (`reload` false: at start, not counted as a reload) or a
   * reload was refused; `atSec` is the wall clock in seconds (src/reload.ts).
   */
  configLoad(ok: boolean, atSec: number, reload: boolean): void;
  /** One sync of rate-limit and spraying counts with the shared store ended (src/state/counters.ts). */
  stateSync(ok: boolean): void;
  /** A front-end thread died and was replaced (src/threads/main.ts). */
  threadRestart(): void;
  /** A front-end thread sent its rate-limit and spraying counts to the main thread's hub (src/threads/limits.ts). */
  threadSync(): void;
  setCollectors(c: Collectors): void;
  /** The exposition text for /metrics. */
  text(): Promise<{ contentType: string; body: string }>;
  readonly registry: Registry;
}

type Labels = Readonly<Record<string, string | number>>;

class CounterCell {
  value = 0;
  constructor(readonly labels: Labels) {}
}

class HistogramCell {
  /** Observations per bucket (not cumulative); the last slot is above the largest bound. */
  readonly counts = new Float64Array(LATENCY_BUCKETS.length + 1);
  sum = 0;
  count = 0;
  constructor(readonly labels: Labels) {}

  observe(v: number): void {
    const b = LATENCY_BUCKETS;
    let i = 0;
    // Prometheus buckets are upper-inclusive: `le="0.001"` counts v <= 0.001.
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }
}

/** A counter whose value lives elsewhere (read when /metrics is scraped), e.g. the audit log's drop count. */
class ReadCounter {
  readonly type = 'counter';
  readonly aggregator = 'sum';
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => number | undefined,
  ) {}

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }> {
    const v = this.read();
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: [{ labels: {}, value: v !== undefined && Number.isFinite(v) ? v : 0 }] };
  }
}

interface MetricValue {
  labels: Labels;
  value: number;
  metricName?: string;
}

/** A metric in the shape prom-client's Registry renders (what its own metrics' get() returns). */
class CellFamily<C extends CounterCell | HistogramCell> {
  readonly aggregator = 'sum';
  readonly cells: C[] = [];
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: C extends HistogramCell ? 'histogram' : 'counter',
  ) {}

  add(cell: C): C {
    this.cells.push(cell);
    return cell;
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }> {
    const values: MetricValue[] = [];
    for (const cell of this.cells) {
      if (cell instanceof HistogramCell) {
        let acc = 0;
        LATENCY_BUCKETS.forEach((le, i) => {
          acc += cell.counts[i]!;
          values.push({ labels: { ...cell.labels, le }, value: acc, metricName: `${this.name}_bucket` });
        });
        values.push({ labels: { ...cell.labels, le: '+Inf' }, value: cell.count, metricName: `${this.name}_bucket` });
        values.push({ labels: cell.labels, value: cell.sum, metricName: `${this.name}_sum` });
        values.push({ labels: cell.labels, value: cell.count, metricName: `${this.name}_count` });
      } else {
        values.push({ labels: cell.labels, value: (cell as CounterCell).value });
      }
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

/**
 * `mfa_gateway_ready`: 1 while /readyz would answer 200, else 0, for alerting on an
 * instance that stays not ready (deploy/prometheus-rules.yaml). The admin listener
 * appends it to the exposition, since it alone holds the readiness check.
 */
export function readinessExposition(ready: boolean): string {
  return `# HELP ${PREFIX}ready 1 while /readyz answers 200 (listening, every issuer's keys loaded, the verifier completing tasks), else 0.\n# TYPE ${PREFIX}ready gauge\n${PREFIX}ready ${ready ? 1 : 0}\n`;
}

/** Config-name label values (route, upstream, issuer): at most MAX_LABEL_VALUES distinct, then `other`. */
class NameLabels {
  private readonly seen = new Set<string>();
  bound(name: string): string {
    if (this.seen.has(name)) return name;
    if (this.seen.size >= MAX_LABEL_VALUES) return OTHER;
    this.seen.add(name);
    return name;
  }
}

const statusLabel = (s: number): number => (Number.isInteger(s) && s >= 100 && s <= 599 ? s : 0);

/** The versions `mfa_gateway_build_info` names; read once, from the package files. */
export interface BuildInfo {
  readonly version: string;
  readonly node: string;
  readonly uws: string;
}

function defaultBuildInfo(): BuildInfo {
  let version = 'unknown';
  try {
    // src/observe and dist/observe both sit two folders below the package root.
    version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? version;
  } catch {
    // A metric label is not worth failing start-up for.
  }
  return { version, node: process.versions.node, uws: uwsBuild().version };
}

/**
 * Creates the gateway's metrics on a registry of their own (never prom-client's
 * global one, so two gateways in one process, as in tests, do not collide).
 *
 * @example
 * const metrics = createMetrics();
 * metrics.request('orders', 200, 'ok', 0.0007, 'allow');
 * mountAdmin(app, { ready, metrics: () => metrics.text() });
 */
export function createMetrics(options: { defaultMetrics?: boolean; build?: BuildInfo } = {}): Metrics {
  const registry = new Registry();
  const register = (f: CellFamily<CounterCell> | CellFamily<HistogramCell> | ReadCounter): void =>
    // Registry renders any object with name/help/type/get(); the cast is only for its declared type.
    registry.registerMetric(f as unknown as Metric);

  const requests = new CellFamily<CounterCell>(`${PREFIX}requests_total`, 'Requests answered, by route, status and decision reason.', 'counter');
  const requestTime = new CellFamily<HistogramCell>(
    `${PREFIX}request_duration_seconds`,
    'Time from request to the last byte of the answer, by route and decision (allow: sent upstream; deny: answered by the gateway).',
    'histogram',
  );
  const verifyTime = new CellFamily<HistogramCell>(`${PREFIX}verification_duration_seconds`, 'Token verifications that ran (cache misses), by outcome.', 'histogram');
  const upstreamTime = new CellFamily<HistogramCell>(`${PREFIX}upstream_duration_seconds`, 'Time from dispatch to the upstream response headers, by upstream.', 'histogram');
  const cacheLookups = new CellFamily<CounterCell>(`${PREFIX}token_cache_lookups_total`, 'Token cache look-ups: hit, miss, or negative (a cached invalid token).', 'counter');
  const limited = new CellFamily<CounterCell>(`${PREFIX}rate_limited_total`, 'Requests answered 429, by limit: address, subject, or spraying (a blocked address).', 'counter');
  const sprayBlocks = new CellFamily<CounterCell>(`${PREFIX}spraying_blocks_total`, 'Addresses blocked for sending too many invalid tokens.', 'counter');
  const jwks = new CellFamily<CounterCell>(`${PREFIX}jwks_fetches_total`, 'Key-set fetches per issuer, by result (ok or error).', 'counter');
  const internal = new CellFamily<CounterCell>(`${PREFIX}internal_errors_total`, 'Exceptions while handling a request (that request answered 500 or closed; the process kept serving).', 'counter');
  const verifierTimeouts = new CellFamily<CounterCell>(`${PREFIX}verifier_timeouts_total`, 'Token verifications abandoned after verifier.taskTimeout (answered 503).', 'counter');
  const revokedRequests = new CellFamily<CounterCell>(`${PREFIX}revoked_requests_total`, 'Requests with a valid token refused because it was revoked (logout, POST /revocations).', 'counter');
  const reloads = new CellFamily<CounterCell>(`${PREFIX}config_reload_total`, 'Config reloads (SIGHUP, POST /reload, --watch), by result: success or failure.', 'counter');
  const restarts = new CellFamily<CounterCell>(`${PREFIX}thread_restarts_total`, 'Front-end threads that died (an uncaught exception, an exit) and were replaced (server.threads above 1).', 'counter');
  const threadSyncs = new CellFamily<CounterCell>(`${PREFIX}thread_syncs_total`, 'Rate-limit and spraying counts a front-end thread sent to the main thread, which answered the totals (server.threads above 1).', 'counter');
  const syncs = new CellFamily<CounterCell>(`${PREFIX}state_syncs_total`, 'Syncs of rate-limit and spraying counts with the shared store (state.store: redis), by result: ok or error (the counts kept for the next).', 'counter');
  let collectors: Collectors = {};
  const auditDropped = new ReadCounter(`${PREFIX}audit_dropped_lines_total`, 'Audit lines dropped because the destination could not keep up.', () => collectors.auditDropped?.());
  for (const f of [requests, requestTime, verifyTime, upstreamTime, cacheLookups, limited, sprayBlocks, jwks, internal, verifierTimeouts, revokedRequests, auditDropped, reloads, syncs, restarts, threadSyncs]) register(f);

  const routeNames = new NameLabels();
  const upstreamNames = new NameLabels();
  const issuerNames = new NameLabels();
  // route → reason → status → cell. Keys are the caller's values; a value that had to
  // be replaced (`other`) is never stored as a key, so the maps stay bounded too.
  const requestCells = new Map<string | null, Map<string, Map<number, CounterCell>>>();
  const requestCellsByLabel = new Map<string, CounterCell>();
  // route → both decisions' cells, so a request finds its cell with one Map look-up and a property read.
  const routeHists = new Map<string | null, Record<Decision, HistogramCell>>();
  const routeHistsByLabel = new Map<string, Record<Decision, HistogramCell>>();
  const upstreamHists = new Map<string, HistogramCell>();
  const upstreamHistsByLabel = new Map<string, HistogramCell>();
  const verifyHists: Record<VerifyOutcome, HistogramCell> = {
    valid: verifyTime.add(new HistogramCell({ outcome: 'valid' })),
    invalid: verifyTime.add(new HistogramCell({ outcome: 'invalid' })),
    error: verifyTime.add(new HistogramCell({ outcome: 'error' })),
  };
  const cacheCells: Record<CacheOutcome, CounterCell> = {
    hit: cacheLookups.add(new CounterCell({ outcome: 'hit' })),
    miss: cacheLookups.add(new CounterCell({ outcome: 'miss' })),
    negative: cacheLookups.add(new CounterCell({ outcome: 'negative' })),
  };
  const limitedCells: Record<RateLimitKind, CounterCell> = {
    address: limited.add(new CounterCell({ kind: 'address' })),
    subject: limited.add(new CounterCell({ kind: 'subject' })),
    spraying: limited.add(new CounterCell({ kind: 'spraying' })),
  };
  const sprayCell = sprayBlocks.add(new CounterCell({}));
  const internalCell = internal.add(new CounterCell({}));
  const verifierTimeoutCell = verifierTimeouts.add(new CounterCell({}));
  const revokedCell = revokedRequests.add(new CounterCell({}));
  const jwksCells = new Map<string, { ok: CounterCell; error: CounterCell }>();
  const syncCells = { ok: syncs.add(new CounterCell({ result: 'ok' })), error: syncs.add(new CounterCell({ result: 'error' })) };
  const restartCell = restarts.add(new CounterCell({}));
  const threadSyncCell = threadSyncs.add(new CounterCell({}));
  const reloadCells = { success: reloads.add(new CounterCell({ result: 'success' })), failure: reloads.add(new CounterCell({ result: 'failure' })) };

  const routeLabel = (route: string | null): string => (route === null ? NO_ROUTE : routeNames.bound(route));

  function requestCell(route: string | null, status: number, reason: string): CounterCell {
    const r = routeLabel(route);
    const s = statusLabel(status);
    const why = isAuditReason(reason) ? reason : OTHER;
    const labelKey = `${r}\u0000${s}\u0000${why}`;
    let cell = requestCellsByLabel.get(labelKey);
    if (cell === undefined) {
      cell = requests.add(new CounterCell({ route: r, status: s, reason: why }));
      requestCellsByLabel.set(labelKey, cell);
    }
    if ((route === null || r === route) && s === status && why === reason) {
      let byReason = requestCells.get(route);
      if (byReason === undefined) requestCells.set(route, (byReason = new Map()));
      let byStatus = byReason.get(reason);
      if (byStatus === undefined) byReason.set(reason, (byStatus = new Map()));
      byStatus.set(status, cell);
    }
    return cell;
  }

  function routeHist(route: string | null): Record<Decision, HistogramCell> {
    const r = routeLabel(route);
    let h = routeHistsByLabel.get(r);
    if (h === undefined) {
      h = { allow: requestTime.add(new HistogramCell({ route: r, decision: 'allow' })), deny: requestTime.add(new HistogramCell({ route: r, decision: 'deny' })) };
      routeHistsByLabel.set(r, h);
    }
    if (route === null || r === route) routeHists.set(route, h);
    return h;
  }

  function upstreamHist(upstream: string): HistogramCell {
    const u = upstreamNames.bound(upstream);
    let h = upstreamHistsByLabel.get(u);
    if (h === undefined) {
      h = upstreamTime.add(new HistogramCell({ upstream: u }));
      upstreamHistsByLabel.set(u, h);
    }
    if (u === upstream) upstreamHists.set(upstream, h);
    return h;
  }

  const gauge = (name: string, help: string, read: () => number | undefined, aggregator: 'sum' | 'max' = 'sum'): void => {
    new Gauge({
      name: PREFIX + name,
      help,
      aggregator,
      registers: [registry],
      collect() {
        const v = read();
        if (v !== undefined && Number.isFinite(v)) this.set(v);
      },
    });
  };
  gauge('token_cache_entries', 'Validated tokens held in the token cache.', () => collectors.cacheSize?.());
  gauge('token_negative_cache_entries', 'Invalid tokens held in the negative token cache.', () => collectors.negativeCacheSize?.());
  gauge('verifier_queue_depth', 'Token verifications waiting for a worker thread.', () => collectors.verifierQueue?.());
  gauge('verifier_utilization_ratio', 'Share of verifier worker time spent verifying (0-1).', () => collectors.verifierUtilization?.());
  gauge('state_store_up', '1 while the shared-state store answers (always 1 with state.store: memory), 0 while Redis is away (limits count locally, revocations loaded stay enforced).', () => collectors.stateStoreUp?.(), 'max');
  new Gauge({
    name: `${PREFIX}revocations`,
    aggregator: 'max',
    help: 'Entries in the revocation list, by kind: sub, sid or jti (each lives until the tokens it refuses have expired).',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      const byKind = collectors.revocations?.();
      if (byKind === undefined) return;
      for (const [kind, n] of Object.entries(byKind)) this.set({ kind }, n);
    },
  });
  const build = options.build ?? defaultBuildInfo();
  new Gauge({
    name: `${PREFIX}build_info`,
    help: 'Always 1; the labels name the gateway version, the Node.js version and the uWebSockets.js build.',
    labelNames: ['version', 'node', 'uws'],
    registers: [registry],
    // One process, however many front-end threads report it (src/threads/main.ts merges them).
    aggregator: 'max',
  }).set({ version: build.version, node: build.node, uws: build.uws }, 1);
  const poolGauge = (name: string, help: string, pick: (p: { connected: number; pending: number; running: number }) => number): void => {
    new Gauge({
      name: PREFIX + name,
      help,
      labelNames: ['upstream'],
      registers: [registry],
      collect() {
        this.reset();
        for (const p of collectors.pools?.() ?? []) this.set({ upstream: upstreamNames.bound(p.upstream) }, pick(p));
      },
    });
  };
  // Prometheus' own names for the same facts (prometheus_config_last_reload_successful):
  // the config in force came from the last attempt, and since when.
  const lastReloadOk = new Gauge({
    name: `${PREFIX}config_last_reload_success`,
    aggregator: 'max',
    help: '1 when the last config load or reload succeeded, 0 when the last reload was refused (the previous config stays in force).',
    registers: [registry],
  });
  const lastReloadAt = new Gauge({
    name: `${PREFIX}config_last_reload_success_timestamp_seconds`,
    aggregator: 'max',
    help: 'When the config in force was loaded (start, or the last successful reload), in seconds since the epoch.',
    registers: [registry],
  });
  poolGauge('upstream_connections', 'Open connections to the upstream.', (p) => p.connected);
  poolGauge('upstream_requests_pending', 'Requests waiting for a connection to the upstream.', (p) => p.pending);
  poolGauge('upstream_requests_running', 'Requests in progress on the upstream.', (p) => p.running);

  // process_* and nodejs_* (event-loop delay as nodejs_eventloop_lag_*, heap, GC,
  // handles), under their standard names so stock Node.js dashboards work.
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });

  return {
    registry,
    request(route, status, reason, totalSec, decision) {
      const cell = requestCells.get(route)?.get(reason)?.get(status) ?? requestCell(route, status, reason);
      cell.value++;
      const hists = routeHists.get(route) ?? routeHist(route);
      (decision === 'allow' ? hists.allow : hists.deny).observe(totalSec);
    },
    verification(sec, outcome) {
      (verifyHists[outcome] ?? verifyHists.error).observe(sec);
    },
    upstream(upstream, sec) {
      (upstreamHists.get(upstream) ?? upstreamHist(upstream)).observe(sec);
    },
    cache(outcome) {
      const c = cacheCells[outcome];
      if (c !== undefined) c.value++;
    },
    rateLimited(kind) {
      const c = limitedCells[kind];
      if (c !== undefined) c.value++;
    },
    sprayingBlocked() {
      sprayCell.value++;
    },
    jwksFetch(issuer, ok) {
      let cells = jwksCells.get(issuer);
      if (cells === undefined) {
        const name = issuerNames.bound(issuer);
        cells = jwksCells.get(name);
        if (cells === undefined) {
          cells = { ok: jwks.add(new CounterCell({ issuer: name, result: 'ok' })), error: jwks.add(new CounterCell({ issuer: name, result: 'error' })) };
          jwksCells.set(name, cells);
        }
      }
      (ok ? cells.ok : cells.error).value++;
    },
    internalError() {
      internalCell.value++;
    },
    verifierTimeout() {
      verifierTimeoutCell.value++;
    },
    revokedRequest() {
      revokedCell.value++;
    },
    configLoad(ok, atSec, reload) {
      if (reload) (ok ? reloadCells.success : reloadCells.failure).value++;
      lastReloadOk.set(ok ? 1 : 0);
      if (ok) lastReloadAt.set(atSec);
    },
    stateSync(ok) {
      (ok ? syncCells.ok : syncCells.error).value++;
    },
    threadRestart() {
      restartCell.value++;
    },
    threadSync() {
      threadSyncCell.value++;
    },
    setCollectors(c) {
      collectors = c;
    },
    async text() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
