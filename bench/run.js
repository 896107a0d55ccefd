#!/usr/bin/env node
/**
 * The benchmark suite (`npm run bench`). Starts its own upstream (bench/upstream.js),
 * the floor proxy (bench/floor.js), the built gateway (`node dist/cli.js start`) and
 * HAProxy as a peer, all on loopback, drives them with autocannon (or, for `fixed-rate`, an open-loop driver),
 * prints a table, checks bench/budgets.yaml and writes bench/results/.
 *
 *   node bench/run.js                       every scenario
 *   node bench/run.js cached none           some (their baselines are added)
 *   node bench/run.js --smoke               each scenario ~1 s, few connections, no budgets
 *   node bench/run.js --baseline-dist DIR   the gateway scenarios against this build and DIR's, interleaved
 *   node bench/run.js --list                the scenarios and what they measure
 *
 * `runSuite(options)` is the same thing as a function (the smoke test calls it).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { budgetDeps, evaluateBudgets, loadBudgets } from './lib/budgets.js';
import { drive } from './lib/load.js';
import { coldSlices, measureScenario } from './lib/measure.js';
import { choosePlacement, pinSelf, unpinSelf } from './lib/placement.js';
import { redisExtra, threadsExtra, ROOT, startFloorProcess, startGatewayProcess, startHaproxyProcess, startRedisProcess, startUpstreamProcess } from './lib/processes.js';
import { baselineTable, textTable, writeResults } from './lib/report.js';
import { byName, floorOf, GROUPS, SCENARIOS, select } from './lib/scenarios.js';
import { breakSignature, createKeys, garbageTemplate, mint, mintMany } from './lib/tokens.js';

export const BUDGETS_FILE = join(ROOT, 'bench', 'budgets.yaml');
export const RESULTS_DIR = join(ROOT, 'bench', 'results');

/**
 * Defaults sized for a 2-core machine: the whole suite (28 scenarios of warm-up +
 * duration, six of them interleaved with partners, plus the token-bounded cold runs)
 * takes six to seven minutes.
 */
export const DEFAULTS = Object.freeze({
  connections: 64, // the gateway's throughput target (README "Benchmarks") is stated at 64 connections
  bodyConnections: 16, // 1 MiB bodies: 16 in flight already fill loopback
  sprayConnections: 8,
  pipelining: 1, // what browsers and proxies send; pipelining would flatter every proxy
  duration: 10, // seconds measured per scenario
  warmup: 1, // seconds run first and thrown away (JIT, connection pools, caches)
  threads: 1, // gateway verifier threads: the gateway has one core when pinned
  coldTokens: 8000, // never-seen tokens per algorithm = requests of each cold run
  coldWarmup: 300, // never-seen tokens per algorithm spent on warming the verify path
  warmTokens: 10_000,
  rate: null, // fixed-rate's requests/s; null: half of what `cached` reached in the same run
});

/** Smoke mode: every scenario for about a second with a few connections (the harness test). */
export const SMOKE = Object.freeze({
  connections: 4,
  bodyConnections: 2,
  sprayConnections: 2,
  pipelining: 1,
  duration: 1,
  warmup: 0,
  threads: 1,
  coldTokens: 150,
  coldWarmup: 0,
  warmTokens: 200,
  rate: 200,
});

/** fixed-rate offers this share of the req/s `cached` reached: loaded, but far from saturated. */
const FIXED_RATE_SHARE = 0.5;

/** The cores the gateway process (its worker threads and libuv's included) may run on. */
function gatewayCores(placement) {
  return placement.pinned ? placement.gateway.split(',').length : placement.cores;
}

function gitInfo() {
  const rev = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  const st = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' });
  return { commit: rev.status === 0 ? rev.stdout.trim() : null, dirty: st.status === 0 ? st.stdout.trim().length > 0 : null };
}

/**
 * Runs the suite.
 * @param {object} [options]
 * @param {string[]} [options.scenarios] names or groups (`all`, `cold`, `baselines`, `floors`); default all
 * @param {boolean} [options.smoke] SMOKE defaults, no budgets, no results unless resultsDir is set
 * @param {boolean} [options.pin] taskset placement (default: true, false in smoke mode)
 * @param {string|null} [options.budgetsFile] null: do not check budgets
 * @param {string|null} [options.resultsDir] null: write nothing
 * @param {(line: string) => void} [options.log] progress lines (default: stderr)
 * @param {boolean} [options.tty] live per-second progress (default: stderr is a TTY)
 * @param {AbortSignal} [options.signal] stops the run early
 * @param {string} [options.gatewayCli] another gateway build's cli.js (default dist/cli.js)
 * @param {string} [options.baselineDist] a second build's dist/: every gateway scenario runs against both, interleaved
 * @param {string[]} [options.gatewayNodeArgs] extra node arguments for the gateway process(es) (e.g. --cpu-prof)
 * @param {number} [options.rate] fixed-rate's requests/s (default: half of cached's req/s)
 * @param {string} [options.haproxyBin] the HAProxy binary of the haproxy scenarios (default: `haproxy` on PATH)
 * @returns {Promise<object>} the report: { ok, failures, meta, rows, budgets, files }
 */
export async function runSuite(options = {}) {
  const smoke = options.smoke === true;
  const base = smoke ? SMOKE : DEFAULTS;
  const o = {};
  for (const k of Object.keys(DEFAULTS)) o[k] = options[k] ?? base[k];
  o.smoke = smoke;
  const log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
  const tty = options.tty ?? (options.log === undefined && process.stderr.isTTY === true);
  const budgetsFile = options.budgetsFile === undefined ? (smoke ? null : BUDGETS_FILE) : options.budgetsFile;
  const resultsDir = options.resultsDir === undefined ? (smoke ? null : RESULTS_DIR) : options.resultsDir;
  const baselineCli = options.baselineDist ? join(resolve(options.baselineDist), 'cli.js') : null;
  if (baselineCli && !existsSync(baselineCli)) throw new Error(`--baseline-dist: ${baselineCli} not found (build that tree first: npm ci && npm run build)`);

  const budgets = budgetsFile ? loadBudgets(budgetsFile, byName) : {};
  const scenarios = select(options.scenarios ?? [], { extraDeps: (n) => budgetDeps(budgets, n) });
  const needs = (t) => scenarios.some((s) => s.target === t);
  const placement = choosePlacement({ pin: options.pin ?? !smoke });
  log(`bench: ${scenarios.length} scenarios: ${scenarios.map((s) => s.name).join(', ')}`);
  log(`bench: ${placement.why}`);

  const dir = mkdtempSync(join(tmpdir(), 'mfa-gw-bench-'));
  const targets = {};
  /** Why a target the selected scenarios need could not start: its rows fail with this. */
  const unavailable = {};
  const exits = {};
  const rows = [];
  try {
    // Tokens are minted before pinning, while this process may still use every core.
    const tokens = needs('gateway') || scenarios.some((s) => s.token) ? await mintTokens(scenarios, o, dir, log, baselineCli !== null) : null;

    if (placement.pinned) pinSelf(placement.others);
    targets.upstream = await startUpstreamProcess({ cpus: placement.others });
    log(`bench: upstream (${targets.upstream.server}) on ${targets.upstream.url}, pid ${targets.upstream.pid}`);
    if (needs('floor')) {
      // Pinned like the gateway: the floor's CPU per request is measured on the same core.
      targets.floor = await startFloorProcess({ cpus: placement.gateway, upstreamUrl: targets.upstream.url });
      log(`bench: floor proxy (bench/floor.js) on ${targets.floor.url}, pid ${targets.floor.pid}`);
    }
    if (needs('haproxy')) {
      // Pinned like the gateway and the floor. Not installed (or not starting): its rows
      // fail with the reason, and the rows interleaved with it run without it.
      try {
        targets.haproxy = await startHaproxyProcess({ dir, cpus: placement.gateway, upstreamUrl: targets.upstream.url, jwksFile: tokens.jwksFile, ...(options.haproxyBin ? { bin: options.haproxyBin } : {}) });
        log(`bench: ${targets.haproxy.version} on ${targets.haproxy.url}, pid ${targets.haproxy.pid}, config ${targets.haproxy.configFile}`);
      } catch (err) {
        unavailable.haproxy = err.message;
        log(`bench: ${err.message}`);
      }
    }
    if (needs('gateway')) {
      const start = (cli) =>
        startGatewayProcess({
          dir: cli ? mkdirSync(join(dir, 'baseline'), { recursive: true }) : dir,
          cpus: placement.gateway,
          upstreamUrl: targets.upstream.url,
          jwksFile: tokens.jwksFile,
          threads: o.threads,
          nodeArgs: options.gatewayNodeArgs ?? [],
          ...(cli ? { cli } : options.gatewayCli ? { cli: resolve(options.gatewayCli) } : {}),
        });
      targets.gateway = await start(null);
      log(`bench: gateway on ${targets.gateway.url} (admin ${targets.gateway.adminPort}), pid ${targets.gateway.pid}, ${o.threads} verifier thread${o.threads === 1 ? '' : 's'}`);
      if (needs('gatewayRedis')) {
        targets.redis = await startRedisProcess({ cpus: placement.others });
        log(`bench: redis-server on ${targets.redis.url}, pid ${targets.redis.pid}`);
        targets.gatewayRedis = await startGatewayProcess({
          dir: mkdirSync(join(dir, 'redis'), { recursive: true }),
          cpus: placement.gateway,
          upstreamUrl: targets.upstream.url,
          jwksFile: tokens.jwksFile,
          threads: o.threads,
          nodeArgs: options.gatewayNodeArgs ?? [],
          extra: redisExtra(targets.redis.url),
          ...(options.gatewayCli ? { cli: resolve(options.gatewayCli) } : {}),
        });
        log(`bench: gateway with state.store: redis on ${targets.gatewayRedis.url} (admin ${targets.gatewayRedis.adminPort}), pid ${targets.gatewayRedis.pid}`);
      }
      if (needs('gatewayThreads')) {
        // Unpinned: two front-end threads pinned to the gateway's one core would measure nothing.
        targets.gatewayThreads = await startGatewayProcess({
          dir: mkdirSync(join(dir, 'threads'), { recursive: true }),
          cpus: null,
          upstreamUrl: targets.upstream.url,
          jwksFile: tokens.jwksFile,
          threads: o.threads,
          nodeArgs: options.gatewayNodeArgs ?? [],
          extra: threadsExtra(2),
          ...(options.gatewayCli ? { cli: resolve(options.gatewayCli) } : {}),
        });
        log(`bench: gateway with server.threads: 2 on ${targets.gatewayThreads.url} (admin ${targets.gatewayThreads.adminPort}), pid ${targets.gatewayThreads.pid}, unpinned`);
      }
      if (baselineCli) {
        targets.baseline = await start(baselineCli);
        log(`bench: baseline gateway (${baselineCli}) on ${targets.baseline.url}, pid ${targets.baseline.pid}; every gateway scenario runs against both, interleaved`);
      }
    }
    if (o.warmup > 0) await warmUp(targets, tokens, o, options.signal, log);

    let rate = null; // fixed-rate's offered load, decided once (after `cached` ran)
    for (const s of scenarios) {
      if (options.signal?.aborted) break;
      const row = { name: s.name, target: s.target, what: s.what, method: s.method ?? 'GET', path: s.path, expect: s.expect, problems: [], notes: [] };
      const connections = s.conn === 'body' ? o.bodyConnections : o.connections;
      row.connections = connections;
      const involved = [s.target, ...(s.pairedWith ?? []).map((n) => byName.get(n).target), ...(targets.baseline && s.target === 'gateway' ? ['baseline'] : [])];
      const dead = [...new Set(involved)].filter((t) => targets[t]?.alive && !targets[t].alive());
      if (dead.length) {
        rows.push(failedRow(row, `not running any more: ${dead.map((t) => `${t} (${targets[t].stderr().trim().split('\n').slice(-3).join(' | ')})`).join('; ')}`));
        continue;
      }
      if (!targets[s.target] && unavailable[s.target]) {
        rows.push(failedRow(row, unavailable[s.target]));
        continue;
      }
      if (s.rate && rate === null) rate = fixedRate(o, rows);
      if (s.rate && typeof rate === 'string') {
        rows.push(failedRow(row, rate));
        continue;
      }
      log(`▶ ${s.name}: ${s.what}`);
      try {
        const ctx = { o, targets, unavailable, tokens, connections, log, tty, signal: options.signal, byName, upstreamPid: targets.upstream.pid, gatewayCores: gatewayCores(placement), ...(s.rate ? { rate: rate.rps } : {}) };
        // A latency row's tail is about pauses: the gateway's own account of them, from before to after.
        const watchPauses = Boolean(s.watchPauses && GATEWAY_NAMES[s.target]);
        const pausesBefore = watchPauses ? await gatewayPauses(targets[s.target]) : null;
        const tcpBefore = watchPauses ? tcpCounters() : null;
        Object.assign(row, await measureScenario(s, ctx));
        if (watchPauses) notePauses(row, pausesBefore, await gatewayPauses(targets[s.target]), tcpBefore, tcpCounters());
        if (s.rate) row.notes.unshift(`rate: ${rate.why}`);
        if (s.target === 'gatewayRedis') await noteSharedState(row, targets.gatewayRedis);
        if (s.target === 'gatewayThreads') await noteThreads(row, targets.gatewayThreads, placement, connections);
        notePeer(row);
      } catch (err) {
        failedRow(row, `harness error: ${err.message}`);
      }
      for (const t of new Set(involved)) if (targets[t]?.alive && !targets[t].alive()) row.problems.push(`the ${t} process exited during the run`);
      row.ok = row.problems.length === 0;
      log(
        `  ${row.ok ? '✓' : '✗'} ${s.name}: ${Math.round(row.rps ?? 0).toLocaleString('en-US')} req/s, p99 ${row.latencyMs?.p99?.toFixed(3) ?? '–'} ms, ${row.cpu?.gatewayUsPerRequest?.toFixed(1) ?? '–'} µs/req${row.ok ? '' : ` FAILED: ${row.problems.join('; ')}`}`,
      );
      rows.push(row);
    }
  } finally {
    // Gateways first (they drain towards the upstream), then the floor and the upstream.
    for (const t of ['gateway', 'gatewayRedis', 'gatewayThreads', 'baseline', 'haproxy', 'floor', 'upstream', 'redis']) if (targets[t]) exits[t] = await targets[t].stop();
    if (placement.pinned) unpinSelf(placement.cores);
    rmSync(dir, { recursive: true, force: true });
  }

  // Ratios against the runs of the same invocation.
  const byRow = new Map(rows.map((r) => [r.name, r]));
  for (const r of rows) {
    const s = byName.get(r.name);
    const baseRow = s.baseline ? byRow.get(s.baseline) : null;
    r.vsDirect = baseRow?.ok && r.ok ? r.rps / baseRow.rps : null;
    if (s.baseline && s.baseline !== 'direct') r.notes.unshift(`× direct is vs ${s.baseline}`);
    const none = byRow.get('none');
    // A scenario measured interleaved with `none` (or its floor) is compared with those very seconds.
    const noneBase = r.paired?.none ?? (none?.ok ? none : null);
    r.vsNone = s.vsNone && noneBase && r.ok ? r.rps / noneBase.rps : null;
    const floorName = floorOf(s);
    const floor = floorName ? (r.paired?.[floorName] ?? byRow.get(floorName)) : null;
    const mineUs = r.cpu?.gatewayUsPerRequest;
    const floorUs = floor?.ok ? floor.cpu?.gatewayUsPerRequest : null;
    r.floor = floorName;
    r.vsFloorCpu = r.ok && typeof mineUs === 'number' && typeof floorUs === 'number' && floorUs > 0 ? mineUs / floorUs : null;
    if (floorName && floorName !== 'floor') r.notes.unshift(`× floor CPU is vs ${floorName}`);
  }

  const budgetResults = budgetsFile ? evaluateBudgets(budgets, byRow, { threads: o.threads, gatewayCores: gatewayCores(placement) }) : [];
  const failures = [
    ...rows.filter((r) => !r.ok).map((r) => `${r.name} failed: ${r.problems.join('; ')}`),
    ...rows.filter((r) => r.baseline && !r.baseline.ok).map((r) => `${r.name} against the baseline build failed: ${r.baseline.problems.join('; ')}`),
    ...budgetResults.filter((b) => b.ok === false).map((b) => `budget broken: ${b.message}`),
  ];
  for (const t of Object.keys(GATEWAY_NAMES)) {
    const e = exits[t];
    if (e && e.code !== 0) failures.push(`the ${GATEWAY_NAMES[t]} exited with ${e.code ?? e.signal} on SIGTERM (expected 0)`);
  }
  if (options.signal?.aborted) failures.push('interrupted');

  const git = gitInfo();
  const report = {
    ok: failures.length === 0,
    failures,
    meta: {
      timestamp: new Date().toISOString(),
      ...git,
      node: process.version,
      cpu: cpus()[0]?.model?.trim() ?? 'unknown cpu',
      cores: placement.cores,
      placement,
      upstreamServer: targets.upstream?.server ?? 'not started',
      gatewayExit: exits.gateway ?? null,
      floorExit: exits.floor ?? null,
      ...(targets.haproxy ? { haproxy: targets.haproxy.version } : {}),
      ...(baselineCli ? { baselineDist: resolve(options.baselineDist), baselineExit: exits.baseline ?? null } : {}),
      options: o,
    },
    rows: rows.map(({ sortedLatencies, ...r }) => r),
    budgets: budgetResults,
    files: null,
  };
  if (resultsDir) report.files = writeResults(resultsDir, report);
  return report;
}

/**
 * A fresh process runs interpreted code and opens its upstream connections on the
 * first requests; without this the first scenario against it pays for that.
 */
async function warmUp(targets, tokens, o, signal, log) {
  const seconds = Math.max(2, 2 * o.warmup);
  const common = { path: '/api/hello', connections: o.connections, pipelining: o.pipelining, duration: seconds, signal };
  const bearer = tokens ? { authorization: `Bearer ${tokens.cached}` } : {};
  for (const t of Object.keys(GATEWAY_NAMES)) {
    if (!targets[t]) continue;
    log(`bench: warming the ${GATEWAY_NAMES[t]} up (${2 * seconds} s, discarded)`);
    await drive({ ...common, url: targets[t].url, path: '/public/hello' });
    await drive({ ...common, url: targets[t].url, headers: bearer });
  }
  if (targets.floor) {
    log(`bench: warming the floor proxy up (${seconds} s, discarded)`);
    await drive({ ...common, url: targets.floor.url, headers: bearer });
  }
  if (targets.haproxy) {
    log(`bench: warming HAProxy up (${seconds} s, discarded)`);
    await drive({ ...common, url: targets.haproxy.url, headers: bearer });
  }
}

/** The gateways a run may start, as the log and the failures name them. */
const GATEWAY_NAMES = { gateway: 'gateway', gatewayRedis: 'redis-state gateway', gatewayThreads: 'two-thread gateway', baseline: 'baseline gateway' };

/**
 * The two-thread gateway's row: its ratio to `cached` (one thread) in the same seconds,
 * where its cores were, and the spread over its threads (with 16 connections or more, a
 * thread that served nothing fails the row: the ratio would then measure one thread).
 */
async function noteThreads(row, gw, placement, connections) {
  const one = row.paired?.cached;
  if (one?.ok && one.rps > 0) row.notes.push(`server.threads 2 ÷ 1: ${ratios(row, one)} (interleaved)`);
  row.notes.push(
    placement.cores <= 2
      ? `unpinned on ${placement.cores} cores shared with the upstream and the load generator (the one-thread gateway is ${placement.pinned ? 'pinned to core 0' : 'unpinned'})`
      : `unpinned on ${placement.cores} cores (the one-thread gateway is ${placement.pinned ? 'pinned to core 0' : 'unpinned'})`,
  );
  try {
    const { text } = await scrape(gw);
    const spread = text
      .split('\n')
      .filter((l) => l.startsWith('mfa_gateway_thread_requests_total{'))
      .map((l) => Number(l.slice(l.lastIndexOf(' ') + 1)));
    row.notes.push(`requests per thread since start: ${spread.join(' / ')}`);
    // The kernel hashes each connection to a thread: with a few (a smoke run) one thread may get all of them.
    if (spread.length !== 2 || (connections >= 16 && spread.some((n) => !(n > 0)))) row.problems.push('the two-thread gateway did not serve on both threads (see the note)');
  } catch (err) {
    row.problems.push(`could not read the two-thread gateway's metrics: ${err.message}`);
  }
}

/**
 * A gateway row interleaved with HAProxy (`cached` with `haproxy`, `warm-10k` with
 * `haproxy-10k`): its req/s and CPU per request over HAProxy's in the same seconds.
 */
function notePeer(row) {
  for (const [name, p] of Object.entries(row.paired ?? {})) {
    if (byName.get(name).target !== 'haproxy' || !p.ok || !(p.rps > 0)) continue;
    row.notes.push(`÷ ${name}: ${ratios(row, p)} (interleaved)`);
  }
}

/** A row's req/s and (when both were measured) CPU per request over those of `other`, measured in the same seconds. */
function ratios(row, other) {
  const us = row.cpu?.gatewayUsPerRequest;
  const otherUs = other.cpu?.gatewayUsPerRequest;
  const cpu = typeof us === 'number' && typeof otherUs === 'number' && otherUs > 0 ? `, CPU per request ${(us / otherUs).toFixed(2)}×` : '';
  return `${(row.rps / other.rps).toFixed(2)}× req/s${cpu}`;
}

/**
 * One scrape of a gateway's admin /metrics: the text, and `value(sample)`, the number on
 * the line that starts with that sample (name and labels as the exposition writes them),
 * NaN when there is none. Rejects when the admin listener does not answer.
 */
async function scrape(gw) {
  const text = await (await fetch(`http://127.0.0.1:${gw.adminPort}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const value = (sample) => Number(text.split('\n').find((l) => l.startsWith(`${sample} `))?.slice(sample.length + 1) ?? NaN);
  return { text, value };
}

/**
 * The redis-state gateway's ratio means something only if it was sharing: the store up
 * and counts synced during the run (its /metrics); otherwise the row fails.
 */
async function noteSharedState(row, gw) {
  try {
    const { value } = await scrape(gw);
    const up = value('mfa_gateway_state_store_up');
    const ok = value('mfa_gateway_state_syncs_total{result="ok"}');
    const failed = value('mfa_gateway_state_syncs_total{result="error"}');
    row.notes.push(`state store up ${up}; ${ok} syncs ok, ${failed} failed since the gateway started`);
    if (up !== 1 || !(ok > 0) || failed > 0) row.problems.push('the redis-state gateway was not sharing state during the run (see the note)');
  } catch (err) {
    row.problems.push(`could not read the redis-state gateway's metrics: ${err.message}`);
  }
}

/**
 * What the gateway's /metrics says of its pauses (prom-client's default metrics): its
 * major GCs (count, seconds, and how many took longer than 0.1 s) and the longest
 * event-loop delay since the previous scrape (each scrape resets it), with the heap and
 * the token cache they worked on. Null when the metrics cannot be read: the note then
 * says so, the row does not fail for it.
 * @returns {Promise<{ gcMajor: number, gcMajorSec: number, gcMajorOver100ms: number, loopMaxSec: number, heapBytes: number, cached: number } | null>}
 */
async function gatewayPauses(gw) {
  try {
    const { value } = await scrape(gw);
    const count = value('nodejs_gc_duration_seconds_count{kind="major"}');
    return {
      gcMajor: count,
      gcMajorSec: value('nodejs_gc_duration_seconds_sum{kind="major"}'),
      gcMajorOver100ms: count - value('nodejs_gc_duration_seconds_bucket{le="0.1",kind="major"}'),
      loopMaxSec: value('nodejs_eventloop_lag_max_seconds'),
      heapBytes: value('nodejs_heap_size_used_bytes'),
      cached: value('mfa_gateway_token_cache_entries'),
    };
  } catch {
    return null;
  }
}

/**
 * The gateway's pauses over a row that asks for them (`watchPauses`: `fixed-rate`,
 * `slow-upstream`), its slices and its partner's included. A p99 far
 * above the floor's with no long GC pause, no long event-loop delay and no
 * retransmission means the loop ran, but slowly: on the pinned core, that was a major
 * GC's concurrent marking taking the core from it (README "Benchmarks", `fixed-rate`).
 */
function notePauses(row, a, b, tcpA, tcpB) {
  if (tcpA !== null && tcpB !== null) {
    const d = Object.fromEntries(Object.keys(tcpB).map((k) => [k, tcpB[k] - (tcpA[k] ?? 0)]));
    row.notes.push(
      `TCP on this host during the run (/proc/net): ${d.TCPTimeouts} retransmission timeouts, ${d.RetransSegs} segments retransmitted, ${d.PruneCalled} receive queues pruned, ${d.TCPSynRetrans} SYNs retransmitted`,
    );
  }
  if (a === null || b === null || !Number.isFinite(b.gcMajor + a.gcMajor)) return void row.notes.push("the gateway's GC and event-loop metrics could not be read");
  const n = b.gcMajor - a.gcMajor;
  const long = b.gcMajorOver100ms - a.gcMajorOver100ms;
  const ms = (sec) => `${(sec * 1000).toFixed(1)} ms`;
  row.notes.push(
    `gateway during the run: ${n} major GC${n === 1 ? '' : 's'} (${ms(b.gcMajorSec - a.gcMajorSec)} in all, ${long} over 100 ms), longest event-loop delay ${Number.isFinite(b.loopMaxSec) ? ms(b.loopMaxSec) : '–'}; heap ${Math.round(b.heapBytes / 1e6)} MB, ${b.cached.toLocaleString('en-US')} tokens cached`,
  );
}

/**
 * The kernel's TCP counters that mark a stalled connection: a retransmission timeout
 * (at least 200 ms on Linux, doubling on each repeat) waits far longer than any
 * request here takes. Per network namespace, so they count this machine's (or this
 * container's) connections, the bench's among them. Null off Linux.
 * @returns {Record<string, number> | null}
 */
function tcpCounters() {
  const read = (file, prefix) => {
    const [names, values] = readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith(`${prefix}:`)).map((l) => l.split(/\s+/).slice(1));
    return Object.fromEntries(names.map((n, i) => [n, Number(values[i])]));
  };
  try {
    const ext = read('/proc/net/netstat', 'TcpExt');
    const tcp = read('/proc/net/snmp', 'Tcp');
    return { TCPTimeouts: ext.TCPTimeouts, PruneCalled: ext.PruneCalled, TCPSynRetrans: ext.TCPSynRetrans, RetransSegs: tcp.RetransSegs };
  } catch {
    return null;
  }
}

/**
 * fixed-rate's offered load: --rate, or half of what `cached` reached in this run.
 * @returns {{ rps: number, why: string } | string} the rate, or why there is none
 */
function fixedRate(o, rows) {
  if (typeof o.rate === 'number') return { rps: o.rate, why: `${Math.round(o.rate).toLocaleString('en-US')}/s (--rate${o.smoke ? ' or the smoke default' : ''})` };
  const cached = rows.find((r) => r.name === 'cached');
  if (!cached?.ok || !(cached.rps > 0)) return `no rate to offer: cached ${cached ? 'failed' : 'did not run'}, and it sets the rate (half its req/s); pass --rate N`;
  const rps = Math.round(cached.rps * FIXED_RATE_SHARE);
  return { rps, why: `${rps.toLocaleString('en-US')}/s, ${FIXED_RATE_SHARE} × cached's ${Math.round(cached.rps).toLocaleString('en-US')} req/s` };
}

function failedRow(row, problem) {
  row.problems.push(problem);
  row.ok = false;
  row.requests ??= 0;
  row.rps ??= 0;
  row.latencyMs ??= {};
  row.statuses ??= {};
  row.non2xx ??= 0;
  row.errors ??= 0;
  row.distribution ??= [];
  return row;
}

/** Mints every token the selected scenarios need and writes the JWKS file. */
async function mintTokens(scenarios, o, dir, log, withBaseline) {
  const t0 = performance.now();
  const jwksFile = join(dir, 'jwks.json');
  const keys = await createKeys(jwksFile);
  const names = new Set(scenarios.map((s) => s.name));
  const tokens = { jwksFile, keys, cold: {}, coldWarm: {} };
  tokens.cached = await mint(keys.RS256);
  tokens.stepup = await mint(keys.RS256, { amr: ['pwd'] });
  tokens.invalid = breakSignature(await mint(keys.RS256));
  tokens.sprayTemplate = garbageTemplate(keys.RS256);
  // RS256, as `cached`'s token (same length, so the same cache-key work), because
  // haproxy-10k sends HAProxy the same tokens and HAProxy 2.6 verifies no EdDSA.
  if (names.has('warm-10k') || names.has('haproxy-10k')) tokens.warm = await mintMany(keys.RS256, o.warmTokens);
  // A few more than the run sends: autocannon builds a connection's next request before
  // it knows the run is over, once per run (a cold run against two builds is cut in slices;
  // each build has its own cache, so both are sent the same never-seen tokens).
  const margin = o.connections * (o.pipelining + 2) * coldSlices(o, withBaseline ? 2 : 1);
  for (const s of scenarios.filter((x) => x.token === 'cold')) {
    tokens.cold[s.alg] = await mintMany(keys[s.alg], o.coldTokens + margin);
    tokens.coldWarm[s.alg] = o.coldWarmup > 0 ? await mintMany(keys[s.alg], o.coldWarmup + o.connections * (o.pipelining + 2)) : [];
  }
  const count = 3 + (tokens.warm?.length ?? 0) + Object.values(tokens.cold).reduce((a, l) => a + l.length, 0) + Object.values(tokens.coldWarm).reduce((a, l) => a + l.length, 0);
  log(`bench: minted ${count.toLocaleString('en-US')} tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return tokens;
}

const HELP = `usage: node bench/run.js [options] [scenario|group ...]

Scenarios (default: all; baselines a ratio or budget needs are added):
${SCENARIOS.map((s) => `  ${s.name.padEnd(20)}${s.what}`).join('\n')}
Groups: ${Object.entries(GROUPS).map(([g, l]) => `${g} (${l.length})`).join(', ')}

Options (environment variable in brackets):
  -c, --connections N       connections per scenario [BENCH_CONNECTIONS] (${DEFAULTS.connections})
      --body-connections N  connections for the 1 MiB scenarios [BENCH_BODY_CONNECTIONS] (${DEFAULTS.bodyConnections})
      --spray-connections N garbage-token connections beside spray's cached run [BENCH_SPRAY_CONNECTIONS] (${DEFAULTS.sprayConnections})
  -d, --duration S          seconds measured per scenario [BENCH_DURATION] (${DEFAULTS.duration})
  -w, --warmup S            seconds of discarded warm-up per scenario [BENCH_WARMUP] (${DEFAULTS.warmup})
  -p, --pipelining N        requests in flight per connection [BENCH_PIPELINING] (${DEFAULTS.pipelining});
                            the gateway closes pipelined connections (uWS 20.30): above 1, only direct runs work
      --threads N           gateway verifier threads [BENCH_THREADS] (${DEFAULTS.threads})
      --cold-tokens N       never-seen tokens (= requests) per cold run [BENCH_COLD_TOKENS] (${DEFAULTS.coldTokens})
      --warm-tokens N       distinct tokens of warm-10k [BENCH_WARM_TOKENS] (${DEFAULTS.warmTokens})
      --rate N              requests/s fixed-rate offers [BENCH_RATE] (default: ${FIXED_RATE_SHARE} × cached's req/s in
                            the same run; ${SMOKE.rate} with --smoke)
      --no-pin              do not pin with taskset [BENCH_PIN=0]
      --gateway-node-args="..."  extra node arguments for the gateway (and the baseline gateway)
                            [BENCH_GATEWAY_NODE_ARGS], e.g. --gateway-node-args="--cpu-prof --cpu-prof-dir=.tmp/profiles"
      --gateway-cli FILE    bench another build's cli.js instead of dist/cli.js [BENCH_GATEWAY_CLI]
      --haproxy FILE        the HAProxy binary of the haproxy scenarios [BENCH_HAPROXY] (haproxy on PATH;
                            Debian: apt-get install -y haproxy)
      --baseline-dist DIR   before/after: run every selected gateway scenario against this build and
                            against DIR/cli.js (another build's dist/), interleaved in ABBA slices, and
                            report req/s and CPU per request of both [BENCH_BASELINE_DIST]
      --no-budgets          do not check bench/budgets.yaml
      --budgets FILE        another budgets file
      --out DIR             results directory (default bench/results); --no-write writes nothing
      --smoke               each scenario ~1 s with few connections; no budgets, no pinning, no files
      --json                print the report as JSON on stdout instead of the table
      --list                list the scenarios and exit
Exit status: 0 all scenarios ok and every budget held; 1 a scenario failed or a budget broke; 2 the harness could not run.`;

const NUMERIC = {
  connections: 'BENCH_CONNECTIONS',
  'body-connections': 'BENCH_BODY_CONNECTIONS',
  'spray-connections': 'BENCH_SPRAY_CONNECTIONS',
  duration: 'BENCH_DURATION',
  warmup: 'BENCH_WARMUP',
  pipelining: 'BENCH_PIPELINING',
  threads: 'BENCH_THREADS',
  'cold-tokens': 'BENCH_COLD_TOKENS',
  'warm-tokens': 'BENCH_WARM_TOKENS',
  rate: 'BENCH_RATE',
};
const camel = (s) => s.replace(/-(\w)/g, (_, c) => c.toUpperCase());

/** Parses the command line into runSuite options (exported for tests of the CLI). */
export function parseCli(argv, env = process.env) {
  // `--gateway-node-args "--cpu-prof …"`: a value that starts with a dash is ambiguous to
  // parseArgs unless it is joined with `=`; this flag's values always start with one.
  const args = argv.flatMap((a, i) => (argv[i - 1] === '--gateway-node-args' ? [] : a === '--gateway-node-args' && i + 1 < argv.length ? [`${a}=${argv[i + 1]}`] : [a]));
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...Object.fromEntries(Object.keys(NUMERIC).map((k) => [k, { type: 'string' }])),
      connections: { type: 'string', short: 'c' },
      duration: { type: 'string', short: 'd' },
      warmup: { type: 'string', short: 'w' },
      pipelining: { type: 'string', short: 'p' },
      'no-pin': { type: 'boolean' },
      'gateway-node-args': { type: 'string' },
      'gateway-cli': { type: 'string' },
      haproxy: { type: 'string' },
      'baseline-dist': { type: 'string' },
      'no-budgets': { type: 'boolean' },
      budgets: { type: 'string' },
      out: { type: 'string' },
      'no-write': { type: 'boolean' },
      smoke: { type: 'boolean' },
      json: { type: 'boolean' },
      list: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const options = { scenarios: positionals, smoke: values.smoke === true };
  for (const [flag, name] of Object.entries(NUMERIC)) {
    const raw = values[flag] ?? env[name];
    if (raw === undefined || raw === '') continue;
    const n = Number(raw);
    const min = flag === 'warmup' || flag === 'threads' ? 0 : 1;
    if (!Number.isFinite(n) || n < min) throw new Error(`--${flag} (${name}) must be a number ≥ ${min}, got "${raw}"`);
    options[camel(flag)] = n;
  }
  if (values['no-pin'] || env.BENCH_PIN === '0') options.pin = false;
  const cliFile = values['gateway-cli'] ?? env.BENCH_GATEWAY_CLI;
  if (cliFile) options.gatewayCli = cliFile;
  const haproxyBin = values.haproxy ?? env.BENCH_HAPROXY;
  if (haproxyBin) options.haproxyBin = haproxyBin;
  const baselineDist = values['baseline-dist'] ?? env.BENCH_BASELINE_DIST;
  if (baselineDist) options.baselineDist = baselineDist;
  const nodeArgs = values['gateway-node-args'] ?? env.BENCH_GATEWAY_NODE_ARGS;
  if (nodeArgs) options.gatewayNodeArgs = nodeArgs.split(/\s+/).filter(Boolean);
  if (values['no-budgets']) options.budgetsFile = null;
  else if (values.budgets) options.budgetsFile = values.budgets;
  if (values['no-write']) options.resultsDir = null;
  else if (values.out) options.resultsDir = values.out;
  return { options, json: values.json === true, list: values.list === true, help: values.help === true };
}

async function main() {
  let cli;
  try {
    cli = parseCli(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${err.message}\n\n${HELP}\n`);
    process.exit(2);
  }
  if (cli.help) return void process.stdout.write(`${HELP}\n`);
  if (cli.list) {
    for (const s of SCENARIOS) process.stdout.write(`${s.name.padEnd(20)}${s.what}\n`);
    return;
  }
  const abort = new AbortController();
  process.once('SIGINT', () => {
    process.stderr.write('\nbench: interrupted, stopping\n');
    abort.abort();
  });
  let report;
  try {
    report = await runSuite({ ...cli.options, signal: abort.signal });
  } catch (err) {
    process.stderr.write(`bench: ${err.message}\n`);
    process.exit(2);
  }
  if (cli.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    process.stdout.write(`\n${textTable(report.rows)}\n`);
    if (report.meta.baselineDist) process.stdout.write(`\nagainst the baseline build ${report.meta.baselineDist} (interleaved, ABBA):\n${baselineTable(report.rows)}\n`);
    if (report.budgets.length) {
      process.stdout.write('\nbudgets (bench/budgets.yaml):\n');
      for (const b of report.budgets) process.stdout.write(`  ${b.ok === null ? '–' : b.ok ? '✓' : '✗'} ${b.message}\n`);
    }
    const m = report.meta;
    process.stdout.write(`\n${m.placement.why}; upstream ${m.upstreamServer}; ${m.options.connections} connections, pipelining ${m.options.pipelining}, ${m.options.duration} s per scenario\n`);
    if (report.files) process.stdout.write(`results: ${report.files.md} (and latest.* beside it)\n`);
    process.stdout.write(report.ok ? '\nbench: ok\n' : `\nbench: FAILED\n${report.failures.map((f) => `  - ${f}`).join('\n')}\n`);
  }
  process.exitCode = report.ok ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
