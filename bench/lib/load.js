/**
 * One load run, and the statistics of it: closed-loop with autocannon's programmatic
 * API (each connection sends its next request when the last one is answered), or
 * open-loop at a fixed rate (`rate`: requests per second, see drivePaced).
 *
 * Latency is recorded here, from autocannon's `response` event, rather than read from
 * autocannon's own histogram: that histogram's resolution is 1 ms, and a gateway's
 * whole cost is well under a millisecond. Every response time is kept (a run of a few
 * seconds is a few hundred thousand numbers) and percentiles are exact.
 */
import autocannon from 'autocannon';
import { Client } from 'undici';

/** A growable array of response times in milliseconds, bounded in size. */
class Recorder {
  constructor(max = 20_000_000) {
    this.values = new Float64Array(1 << 16);
    this.n = 0;
    this.max = max;
  }
  add(ms) {
    if (this.n === this.values.length) {
      if (this.n >= this.max) return;
      const next = new Float64Array(Math.min(this.values.length * 2, this.max));
      next.set(this.values);
      this.values = next;
    }
    this.values[this.n++] = ms;
  }
  sorted() {
    return this.values.slice(0, this.n).sort();
  }
}

/** The percentiles kept in results and drawn in the chart. */
export const PERCENTILES = [50, 75, 90, 95, 99, 99.9, 99.99];

/** Exact percentile (nearest rank) of an ascending Float64Array. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/**
 * Drives one target with autocannon.
 * @param {object} o
 * @param {string} o.url origin, e.g. http://127.0.0.1:1234
 * @param {string} o.path
 * @param {string} [o.method]
 * @param {Record<string,string>} [o.headers]
 * @param {Buffer|string} [o.body]
 * @param {number} o.connections
 * @param {number} o.pipelining
 * @param {number} [o.duration] seconds (ignored when `amount` is set)
 * @param {number} [o.amount] total requests, then stop
 * @param {() => string} [o.token] a fresh bearer token per request (rebuilds each request)
 * @param {(second: number, count: number) => void} [o.onTick] once a second
 * @param {AbortSignal} [o.signal] stops the run early
 * @param {number} [o.rate] open loop: this many requests per second (drivePaced)
 * @returns {Promise<RunStats>}
 */
export async function drive(o) {
  if (o.rate !== undefined) return drivePaced(o);
  const baseHeaders = { ...(o.headers ?? {}) };
  const opts = {
    url: o.url + o.path,
    method: o.method ?? 'GET',
    headers: baseHeaders,
    connections: o.connections,
    pipelining: o.pipelining,
    timeout: 10,
    ...(o.body !== undefined ? { body: o.body } : {}),
    ...(o.amount !== undefined ? { amount: o.amount } : { duration: o.duration }),
  };
  if (o.token) {
    const next = o.token;
    opts.requests = [
      {
        setupRequest(req) {
          req.headers.authorization = `Bearer ${next()}`;
          return req;
        },
      },
    ];
  }
  const rec = new Recorder();
  const started = performance.now();
  let lastAnswer = started;
  const instance = autocannon(opts);
  instance.on('response', (_client, _status, _bytes, ms) => {
    rec.add(ms);
    lastAnswer = performance.now();
  });
  let second = 0;
  instance.on('tick', ({ counter }) => o.onTick?.(++second, counter));
  const onAbort = () => instance.stop();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  let result;
  try {
    result = await new Promise((resolve, reject) => {
      instance.on('done', resolve);
      instance.on('error', reject);
    });
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }
  // Our own clock, from the start to the last answer: autocannon notices the end of a
  // run only at its next one-second sample, which would round a short `amount` run up.
  return summarize(result, rec, (lastAnswer - started) / 1000);
}

/**
 * @typedef {object} RunStats
 * @property {number} requests responses received
 * @property {number} elapsedSec
 * @property {number} rps responses per second over the whole run
 * @property {Record<string, number|null>} latencyMs p50 … p99.99, min, max, mean (ms)
 * @property {Record<string, number>} statuses count per status code
 * @property {number} non2xx
 * @property {number} errors connection errors and timeouts
 * @property {number} timeouts
 * @property {number} bytesPerSec response bytes per second
 */
function summarize(result, rec, elapsedSec) {
  const sorted = rec.sorted();
  const latencyMs = { min: sorted.length ? sorted[0] : null, max: sorted.length ? sorted[sorted.length - 1] : null };
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) sum += sorted[i];
  latencyMs.mean = sorted.length ? sum / sorted.length : null;
  for (const p of PERCENTILES) latencyMs[pkey(p)] = percentile(sorted, p);
  const statuses = {};
  for (const [code, { count }] of Object.entries(result.statusCodeStats ?? {})) statuses[code] = Number(count);
  const requests = rec.n;
  const seconds = elapsedSec > 0 ? elapsedSec : result.duration;
  return {
    requests,
    elapsedSec: seconds,
    rps: requests / seconds,
    latencyMs,
    statuses,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    bytesPerSec: result.throughput?.average ?? 0,
    sortedLatencies: sorted,
  };
}

/** `99.9` → `p99_9` (the key used in results). */
export function pkey(p) {
  return `p${String(p).replace('.', '_')}`;
}

/** Milliseconds between two looks at the schedule (Node's timers do not go finer). */
const PACE_TICK_MS = 1;

/**
 * Open-loop load: `rate` requests per second for `duration` seconds, spread over
 * `connections` kept-alive connections (each used in turn, one request at a time),
 * whether or not earlier answers have come back.
 *
 * Not autocannon's `overallRate`: autocannon gives each connection a quota per second
 * and lets it send as fast as it can until the quota is used up, so the load arrives
 * in bursts at the full closed-loop rate followed by silence (measured here: 3,200/s
 * offered over 64 connections arrived as 17,000-20,000/s for a quarter of each second,
 * then nothing), and the latency it reports is that of a saturated proxy.
 *
 * Every PACE_TICK_MS the requests that have fallen due since the last look are
 * generated; each goes out at once on the connection idle longest, or, when all are
 * busy, waits in a queue in front of them. Latency runs from the moment a request is
 * generated, so time spent waiting for a connection counts (no coordinated omission);
 * how late the timer itself generated requests, against their exact due times, is
 * reported apart (`rate.lagMs`), as is what was offered and what was answered.
 * @returns {Promise<RunStats & { rate: object }>}
 */
export async function drivePaced(o) {
  const rate = o.rate;
  const total = Math.max(1, Math.round(rate * o.duration));
  const headers = [];
  for (const [k, v] of Object.entries(o.headers ?? {})) headers.push(k, v);
  const request = { path: o.path, method: o.method ?? 'GET', headers, ...(o.body !== undefined ? { body: o.body } : {}) };
  const clients = Array.from({ length: o.connections }, () => new Client(o.url, { pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 10_000, bodyTimeout: 10_000 }));
  const idle = [...clients];
  const used = new Set();
  const backlog = []; // generation times of requests waiting for a connection
  const rec = new Recorder();
  const lag = new Recorder();
  const statuses = {};
  let generated = 0;
  let failed = 0;
  let timeouts = 0;
  let bytes = 0;
  let inFlight = 0;
  let maxBacklog = 0;
  let lastAnswer = 0;
  let wake = null;

  const send = (client, bornAt) => {
    used.add(client);
    inFlight++;
    let status = 0;
    const finish = (err) => {
      inFlight--;
      if (err) {
        failed++;
        if (/TIMEOUT/.test(err.code ?? '')) timeouts++;
      } else {
        rec.add(performance.now() - bornAt);
        statuses[status] = (statuses[status] ?? 0) + 1;
      }
      lastAnswer = performance.now();
      if (backlog.length) send(client, backlog.shift());
      else idle.push(client);
      if (wake && inFlight === 0) wake();
    };
    // undici's original handler interface: the raw headers are not parsed into an object.
    client.dispatch(request, {
      onConnect() {},
      onHeaders(code) {
        status = code;
        return true;
      },
      onData(chunk) {
        bytes += chunk.length;
        return true;
      },
      onComplete: () => finish(null),
      onError: (err) => finish(err),
    });
  };

  // Every connection is open before the clock starts: connecting is not what is measured.
  await Promise.all(
    clients.map(
      (c) =>
        new Promise((resolve) =>
          c.dispatch(request, { onConnect() {}, onHeaders: () => true, onData: () => true, onComplete: resolve, onError: resolve }),
        ),
    ),
  );
  const started = performance.now();
  const interval = 1000 / rate;
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(total, Math.floor((now - started) / interval) + 1);
      for (; generated < due; generated++) {
        lag.add(now - (started + generated * interval));
        const client = idle.shift();
        if (client) send(client, now);
        else backlog.push(now);
      }
      if (backlog.length > maxBacklog) maxBacklog = backlog.length;
      if (generated >= total || o.signal?.aborted) {
        clearInterval(timer);
        resolve();
      }
    };
    const timer = setInterval(tick, PACE_TICK_MS);
    tick();
  });
  // What was generated is answered (or times out, undici's 10 s) before the run ends.
  const unsent = o.signal?.aborted ? backlog.splice(0).length : 0;
  if (inFlight > 0 || backlog.length > 0) await new Promise((resolve) => (wake = resolve));
  await Promise.all(clients.map((c) => c.destroy().catch(() => {})));

  const elapsedSec = ((lastAnswer || performance.now()) - started) / 1000;
  const sortedLag = lag.sorted();
  const stats = summarize(
    { statusCodeStats: Object.fromEntries(Object.entries(statuses).map(([c, n]) => [c, { count: n }])), non2xx: Object.entries(statuses).reduce((a, [c, n]) => a + (c.startsWith('2') ? 0 : n), 0), errors: failed, timeouts, duration: o.duration },
    rec,
    elapsedSec,
  );
  stats.bytesPerSec = elapsedSec > 0 ? bytes / elapsedSec : 0;
  stats.rate = {
    offered: rate,
    generated: generated - unsent,
    achieved: stats.rps,
    lagMs: { p50: percentile(sortedLag, 50), p99: percentile(sortedLag, 99), max: sortedLag.length ? sortedLag[sortedLag.length - 1] : null },
    maxQueued: maxBacklog,
    connectionsUsed: used.size,
  };
  return stats;
}
