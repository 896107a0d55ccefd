/**
 * Measuring one scenario: its warm-up, its load, and the CPU the measured process used.
 *
 * A scenario is measured as one or more *legs*: the scenario itself against its target,
 * the partners it is interleaved with (`pairedWith`, e.g. `cached` with `none` and
 * `floor`), and with `--baseline-dist` the same scenario against the older build. With
 * more than one leg, the measured seconds are cut into slices of about PAIR_SLICE_SEC
 * and the legs take turns, forwards on odd slices and backwards on even ones (ABBA,
 * ABC CBA), so that every leg sees the same seconds of a machine whose speed drifts by
 * a third over tens of seconds. CPU is read from /proc for the process each leg drives
 * (the gateway, the floor proxy or the baseline gateway) around each of its slices.
 */
import { drive, PERCENTILES, percentile, pkey } from './load.js';
import { cpuTimeMs } from './processes.js';
import { distribution } from './report.js';
import { garbageToken } from './tokens.js';

/** Seconds per slice of an interleaved measurement (about: the duration is cut evenly). */
export const PAIR_SLICE_SEC = 2;

const UPLOAD_BODY = Buffer.alloc(1024 * 1024, 0x62);

/** Checks the status classes of a run against what the scenario expects. */
export function statusProblems(stats, expect, label = '') {
  const problems = [];
  const pre = label ? `${label}: ` : '';
  if (stats.requests === 0) problems.push(`${pre}no responses`);
  const unexpected = Object.entries(stats.statuses).filter(([code]) => (expect === '2xx' ? !code.startsWith('2') : Number(code) !== expect));
  if (unexpected.length) {
    const n = unexpected.reduce((a, [, c]) => a + c, 0);
    problems.push(`${pre}${n} answers were not ${expect} (${unexpected.map(([code, c]) => `${code}: ${c}`).join(', ')})`);
  }
  if (stats.errors > 0) problems.push(`${pre}${stats.errors} connection errors (${stats.timeouts} timeouts)`);
  return problems;
}

/** A token supplier that hands out each token of `list` once; counts reuse if it runs dry. */
function onceEach(list) {
  let i = 0;
  const f = () => {
    if (i >= list.length) f.reused++;
    return list[i++ % list.length];
  };
  f.reused = 0;
  return f;
}

function rotating(list) {
  let i = 0;
  return () => list[i++ % list.length];
}

function progress(name, seconds, tty) {
  if (!tty) return undefined;
  return (second, count) => {
    process.stderr.write(`\r  ${name}: ${second}/${seconds} s, ${count.toLocaleString('en-US')} req/s   `);
    if (second >= seconds) process.stderr.write('\r\x1b[K');
  };
}

/** The autocannon request of a scenario with a static token (or none); `rate` makes it open-loop. */
export function requestFor(s, { target, tokens, connections, o, signal, rate }) {
  const req = {
    url: target.url,
    path: s.path,
    method: s.method ?? 'GET',
    connections,
    pipelining: o.pipelining,
    signal,
    headers: s.body === 'upload' ? { 'content-type': 'application/octet-stream' } : {},
    ...(s.body === 'upload' ? { body: UPLOAD_BODY } : {}),
    ...(s.rate ? { rate } : {}),
  };
  const staticToken = { cached: tokens?.cached, stepup: tokens?.stepup, invalid: tokens?.invalid }[s.token];
  if (staticToken) req.headers = { ...req.headers, authorization: `Bearer ${staticToken}` };
  return req;
}

/**
 * How many slices a cold (token-bounded) measurement with `legs` legs is cut into; each
 * slice is one autocannon run of `--cold-tokens / slices` requests, and autocannon
 * insists on at least one request per connection.
 */
export function coldSlices(o, legs) {
  if (legs <= 1) return 1;
  return Math.max(1, Math.min(Math.round(o.duration / PAIR_SLICE_SEC), Math.floor(o.coldTokens / o.connections)));
}

/** One RunStats out of several runs of the same request. */
export function mergeStats(list) {
  if (list.length === 1) return list[0];
  const sorted = new Float64Array(list.reduce((a, x) => a + x.sortedLatencies.length, 0));
  let at = 0;
  for (const x of list) {
    sorted.set(x.sortedLatencies, at);
    at += x.sortedLatencies.length;
  }
  sorted.sort();
  const requests = list.reduce((a, x) => a + x.requests, 0);
  const elapsedSec = list.reduce((a, x) => a + x.elapsedSec, 0);
  const statuses = {};
  for (const x of list) for (const [c, n] of Object.entries(x.statuses)) statuses[c] = (statuses[c] ?? 0) + n;
  const latencyMs = { min: sorted.length ? sorted[0] : null, max: sorted.length ? sorted[sorted.length - 1] : null, mean: sorted.length ? sorted.reduce((a, v) => a + v, 0) / sorted.length : null };
  for (const p of PERCENTILES) latencyMs[pkey(p)] = percentile(sorted, p);
  const sum = (k) => list.reduce((a, x) => a + x[k], 0);
  const merged = {
    requests,
    elapsedSec,
    rps: elapsedSec > 0 ? requests / elapsedSec : 0,
    latencyMs,
    statuses,
    non2xx: sum('non2xx'),
    errors: sum('errors'),
    timeouts: sum('timeouts'),
    bytesPerSec: list.reduce((a, x) => a + x.bytesPerSec * x.elapsedSec, 0) / Math.max(elapsedSec, 1e-9),
    sortedLatencies: sorted,
  };
  if (list[0].rate) {
    // Open-loop runs: the schedule's lag percentiles cannot be merged exactly; the worst slice's are kept.
    const worst = (k) => Math.max(...list.map((x) => x.rate.lagMs[k] ?? 0));
    merged.rate = {
      offered: list[0].rate.offered,
      generated: list.reduce((a, x) => a + x.rate.generated, 0),
      achieved: merged.rps,
      lagMs: { p50: worst('p50'), p99: worst('p99'), max: worst('max') },
      maxQueued: Math.max(...list.map((x) => x.rate.maxQueued)),
      connectionsUsed: Math.max(...list.map((x) => x.rate.connectionsUsed)),
    };
  }
  return merged;
}

const strip = ({ sortedLatencies, ...rest }) => rest;

/**
 * CPU of one leg over its slices, as % of one core and per answer: `proc` is the
 * process the leg drives (gateway, floor or baseline), `up` the upstream, `self` this
 * process (the load generator). Per answer does not depend on what limited req/s.
 */
function cpuSummary(acc, answers) {
  const pct = (ms) => (ms === null || acc.wallMs <= 0 ? null : (ms / acc.wallMs) * 100);
  return {
    gatewayPercent: pct(acc.procMs),
    gatewayUsPerRequest: acc.procMs === null || answers === 0 ? null : (acc.procMs * 1000) / answers,
    upstreamPercent: pct(acc.upMs),
    loadgenPercent: pct(acc.selfMs),
  };
}

/**
 * One leg: a scenario against one target, with everything its slices need.
 * @param {object} s scenario
 * @param {{ url: string, pid: number|undefined }} target
 */
function makeLeg(key, s, target, ctx) {
  const { o, tokens, signal, connections } = ctx;
  const req = requestFor(s, { target, tokens, connections, o, signal, rate: ctx.rate });
  const leg = { key, s, target, req, runs: [], sprays: [], problems: [], acc: { procMs: 0, upMs: 0, selfMs: 0, wallMs: 0, answers: 0 } };
  if (s.token === 'warm') req.token = rotating(tokens.warm);
  if (s.token === 'cold') {
    leg.supply = onceEach(tokens.cold[s.alg]);
    leg.coldLeft = o.coldTokens;
  }
  if (s.spray) leg.sprayReq = { ...req, connections: o.sprayConnections, headers: {}, token: () => garbageToken(tokens.keys.RS256, tokens.sprayTemplate) };
  return leg;
}

/** What a leg runs before it is measured: cache fill, warm tokens, warm-up seconds. */
async function warmLeg(leg, ctx) {
  const { o, tokens, log } = ctx;
  const s = leg.s;
  // HAProxy has no cache to fill: each of its requests is a verification, so its leg of
  // the warm tokens gets the ordinary warm-up (makeLeg already rotates the tokens).
  if (s.token === 'warm' && s.target !== 'haproxy') {
    // Fill the cache: every token verified once, in the order the run will send them.
    // Measured too: each token's first sight is a cold verification, and the fill is the
    // "10,000 distinct tokens, each seen first once" half of the scenario.
    log(`  verifying ${tokens.warm.length.toLocaleString('en-US')} tokens into the cache${leg.key === 'baseline' ? ' of the baseline build' : ''}`);
    const p0 = cpuTimeMs(leg.target.pid);
    const fill = await drive({ ...leg.req, amount: tokens.warm.length, token: rotating(tokens.warm) });
    const p1 = cpuTimeMs(leg.target.pid);
    leg.fill = {
      requests: fill.requests,
      elapsedSec: fill.elapsedSec,
      rps: fill.rps,
      gatewayUsPerRequest: p0 === null || p1 === null || fill.requests === 0 ? null : ((p1 - p0) * 1000) / fill.requests,
    };
    leg.problems.push(...statusProblems(fill, s.expect, 'cache fill'));
    leg.req.token = rotating(tokens.warm);
    return;
  }
  if (s.token === 'cold') {
    const warm = tokens.coldWarm[s.alg];
    if (warm.length) await drive({ ...leg.req, amount: o.coldWarmup, token: onceEach(warm) });
    return;
  }
  if (o.warmup > 0) await drive({ ...leg.req, duration: o.warmup });
}

/** One slice of one leg; adds its stats and CPU to the leg. */
async function runSlice(leg, { index, count, seconds }, ctx) {
  const s = leg.s;
  const pid = leg.target.pid;
  const t0 = performance.now();
  const self0 = process.cpuUsage();
  const p0 = cpuTimeMs(pid);
  const u0 = cpuTimeMs(ctx.upstreamPid);
  const tick = count === 1 ? progress(s.name, s.token === 'cold' ? '?' : seconds, ctx.tty) : undefined;
  let stats;
  let answers;
  let wallMs;
  if (s.token === 'cold') {
    const amount = index === count - 1 ? leg.coldLeft : Math.floor(ctx.o.coldTokens / count);
    leg.coldLeft -= amount;
    stats = await drive({ ...leg.req, amount, token: leg.supply, onTick: tick });
    answers = stats.requests;
    wallMs = stats.elapsedSec * 1000; // autocannon notices the end of an `amount` run late
  } else if (s.spray) {
    const [main, spray] = await Promise.all([drive({ ...leg.req, duration: seconds, onTick: tick }), drive({ ...leg.sprayReq, duration: seconds })]);
    leg.sprays.push(spray);
    stats = main;
    answers = main.requests + spray.requests;
    wallMs = Math.max(main.elapsedSec, spray.elapsedSec) * 1000;
  } else {
    stats = await drive({ ...leg.req, duration: seconds, onTick: tick });
    answers = stats.requests;
    wallMs = stats.elapsedSec * 1000;
  }
  const p1 = cpuTimeMs(pid);
  const u1 = cpuTimeMs(ctx.upstreamPid);
  const self = process.cpuUsage(self0);
  const acc = leg.acc;
  acc.procMs = p0 === null || p1 === null || acc.procMs === null ? null : acc.procMs + (p1 - p0);
  acc.upMs = u0 === null || u1 === null || acc.upMs === null ? null : acc.upMs + (u1 - u0);
  acc.selfMs += (self.user + self.system) / 1000;
  acc.wallMs += wallMs > 0 ? wallMs : performance.now() - t0;
  acc.answers += answers;
  leg.runs.push(stats);
}

/** A leg's result: merged stats, CPU, problems, and the spray traffic beside it. */
function legResult(leg) {
  const s = leg.s;
  const stats = mergeStats(leg.runs);
  const problems = [...leg.problems, ...statusProblems(stats, s.expect)];
  const out = { stats, cpu: cpuSummary(leg.acc, leg.acc.answers), problems, ...(leg.fill ? { fill: leg.fill } : {}) };
  if (leg.supply?.reused > 0) problems.push(`${leg.supply.reused} requests reused a token (the pre-minted pool ran dry): not a cold run`);
  if (leg.sprays.length) {
    const spray = mergeStats(leg.sprays);
    // A flood of bad tokens is refused (401) or, past the verifier queue, shed (503): both are correct.
    const sprayBad = Object.entries(spray.statuses).filter(([c]) => c !== '401' && c !== '503');
    if (spray.requests === 0) problems.push('spray: no responses');
    if (sprayBad.length) problems.push(`spray: answers other than 401/503 (${sprayBad.map(([c, n]) => `${c}: ${n}`).join(', ')})`);
    out.spray = strip(spray);
  }
  return out;
}

const int = (v) => Math.round(v).toLocaleString('en-US');
const usText = (v) => (typeof v === 'number' ? v.toFixed(1) : '–');

/** The notes a leg's own kind of load adds to its row. */
function kindNotes(s, r, o, gatewayCores = 1) {
  const notes = [];
  if (s.token === 'cold') {
    notes.push(`${int(r.stats.rps / Math.max(1, gatewayCores))} verifications/s per core (${gatewayCores} core${gatewayCores === 1 ? '' : 's'}), ${int(r.stats.rps / Math.max(1, o.threads))} per worker thread`);
  }
  if (r.fill) {
    // The whole scenario as a client population sees it: every token first seen once, then cached.
    const all = (r.fill.requests + r.stats.requests) / Math.max(1e-9, r.fill.elapsedSec + r.stats.elapsedSec);
    notes.push(
      `cache fill (each token's first sight: a verification): ${int(r.fill.rps)} req/s, ${usText(r.fill.gatewayUsPerRequest)} µs/req; ` +
        `fill + hits together ${int(all)} req/s`,
    );
  }
  if (r.spray) notes.push(`beside ${int(r.spray.rps)} garbage tokens/s (${Object.entries(r.spray.statuses).map(([c, n]) => `${c}: ${n}`).join(', ')})`);
  const rate = r.stats.rate;
  if (rate) {
    const held = rate.achieved / rate.offered;
    notes.push(
      `offered ${int(rate.offered)}/s, answered ${int(rate.achieved)}/s (${(held * 100).toFixed(1)}%${held < 0.97 ? ': did NOT hold the rate' : ''}), ` +
        `timer lag p99 ${rate.lagMs.p99?.toFixed(2) ?? '–'} ms, at most ${int(rate.maxQueued)} queued for a connection, ${rate.connectionsUsed} connections`,
    );
  }
  return notes;
}

/**
 * Measures scenario `s` against `ctx.targets`, with its partners and, when
 * `ctx.targets.baseline` is set and `s` is a gateway scenario, against the baseline build.
 * @returns {Promise<object>} the row's measured fields
 */
export async function measureScenario(s, ctx) {
  const { o, targets, byName } = ctx;
  const legs = [makeLeg('mine', s, targets[s.target], ctx)];
  if (targets.baseline && s.target === 'gateway') legs.push(makeLeg('baseline', s, targets.baseline, ctx));
  const absent = [];
  for (const name of s.pairedWith ?? []) {
    const p = byName.get(name);
    // A partner whose process could not start (haproxy not installed) fails its own row
    // with the reason; this row is measured without it and says so.
    if (!targets[p.target]) absent.push(`${name} (${ctx.unavailable?.[p.target] ?? 'not started'})`);
    else legs.push(makeLeg(name, p, targets[p.target], ctx));
  }
  for (const leg of legs) await warmLeg(leg, ctx);

  const count = legs.length === 1 ? 1 : s.token === 'cold' ? coldSlices(o, legs.length) : Math.max(1, Math.round(o.duration / PAIR_SLICE_SEC));
  const seconds = o.duration / count;
  for (let i = 0; i < count; i++) {
    if (ctx.signal?.aborted) break;
    const order = i % 2 === 0 ? [...legs].reverse() : legs;
    for (const leg of order) await runSlice(leg, { index: i, count, seconds }, ctx);
    if (ctx.tty && count > 1) process.stderr.write(`\r  ${s.name}: slice ${i + 1}/${count} of ${legs.length} legs   ${i + 1 === count ? '\r\x1b[K' : ''}`);
  }

  const [mine, ...others] = legs.map((leg) => ({ leg, r: legResult(leg) }));
  const row = { ...mine.r.stats, cpu: mine.r.cpu, distribution: distribution(mine.r.stats.sortedLatencies), problems: mine.r.problems, notes: kindNotes(s, mine.r, o, ctx.gatewayCores) };
  if (mine.r.spray) row.spray = mine.r.spray;
  if (mine.r.fill) row.fill = mine.r.fill;
  if (mine.r.stats.rate) row.rate = mine.r.stats.rate;
  if (absent.length) row.notes.push(`not interleaved with ${absent.join(', ')}`);
  const partners = others.filter((x) => x.leg.key !== 'baseline');
  if (partners.length) {
    row.paired = {};
    for (const { leg, r } of partners) {
      row.problems.push(...r.problems.map((p) => `paired ${leg.key}: ${p}`));
      row.paired[leg.key] = { ...strip(r.stats), ok: r.problems.length === 0, cpu: r.cpu };
    }
    row.notes.push(
      `interleaved with ${partners.map((x) => x.leg.key).join(' and ')} (${count} slice${count === 1 ? '' : 's'} of ${seconds.toFixed(1)} s, ABBA): ` +
        partners.map(({ leg, r }) => `${leg.key} ${int(r.stats.rps)} req/s, ${usText(r.cpu.gatewayUsPerRequest)} µs/req`).join('; ') +
        ' in the same seconds',
    );
  }
  const base = others.find((x) => x.leg.key === 'baseline');
  if (base) {
    const b = base.r;
    row.baseline = { ...strip(b.stats), cpu: b.cpu, ok: b.problems.length === 0, problems: b.problems, notes: kindNotes(s, b, o, ctx.gatewayCores), ...(b.fill ? { fill: b.fill } : {}) };
    const both = b.problems.length === 0 && row.problems.length === 0;
    const cpuRatio = typeof row.cpu.gatewayUsPerRequest === 'number' && typeof b.cpu.gatewayUsPerRequest === 'number' && b.cpu.gatewayUsPerRequest > 0 ? row.cpu.gatewayUsPerRequest / b.cpu.gatewayUsPerRequest : null;
    row.vsBaseline = both ? { rps: b.stats.rps > 0 ? row.rps / b.stats.rps : null, cpuPerRequest: cpuRatio, slices: count } : null;
  }
  return row;
}
