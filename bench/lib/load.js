/**
 * One load run with autocannon's programmatic API, and the statistics of it.
 *
 * Latency is recorded here, from autocannon's `response` event, rather than read from
 * autocannon's own histogram: that histogram's resolution is 1 ms, and a gateway's
 * whole cost is well under a millisecond. Every response time is kept (a run of a few
 * seconds is a few hundred thousand numbers) and percentiles are exact.
 */
import autocannon from 'autocannon';

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
 * @returns {Promise<RunStats>}
 */
export async function drive(o) {
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
