#!/usr/bin/env node
/**
 * The benchmark suite (`npm run bench`). Starts its own upstream (bench/upstream.js)
 * and the built gateway (`node dist/cli.js start`), both on loopback, drives them with
 * autocannon, prints a table, checks bench/budgets.yaml and writes bench/results/.
 *
 *   node bench/run.js                       every scenario
 *   node bench/run.js cached none           some (their baselines are added)
 *   node bench/run.js --smoke               each scenario ~1 s, few connections, no budgets
 *   node bench/run.js --list                the scenarios and what they measure
 *
 * `runSuite(options)` is the same thing as a function (the smoke test calls it).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { budgetDeps, evaluateBudgets, loadBudgets } from './lib/budgets.js';
import { drive, PERCENTILES, percentile, pkey } from './lib/load.js';
import { choosePlacement, pinSelf, unpinSelf } from './lib/placement.js';
import { ROOT, cpuTimeMs, startGatewayProcess, startUpstreamProcess } from './lib/processes.js';
import { distribution, textTable, writeResults } from './lib/report.js';
import { byName, GROUPS, SCENARIOS, select } from './lib/scenarios.js';
import { breakSignature, createKeys, garbageTemplate, garbageToken, mint, mintMany } from './lib/tokens.js';

export const BUDGETS_FILE = join(ROOT, 'bench', 'budgets.yaml');
export const RESULTS_DIR = join(ROOT, 'bench', 'results');

/**
 * Defaults sized for a 2-core machine: the whole suite (16 runs of warm-up + duration,
 * plus the token-bounded cold runs) takes about three minutes.
 */
export const DEFAULTS = Object.freeze({
  connections: 64, // DESIGN.md's target is stated at 64 connections
  bodyConnections: 16, // 1 MiB bodies: 16 in flight already fill loopback
  sprayConnections: 8,
  pipelining: 1, // what browsers and proxies send; pipelining would flatter every proxy
  duration: 10, // seconds measured per scenario
  warmup: 1, // seconds run first and thrown away (JIT, connection pools, caches)
  threads: 1, // gateway verifier threads: the gateway has one core when pinned
  coldTokens: 8000, // never-seen tokens per algorithm = requests of each cold run
  coldWarmup: 300, // never-seen tokens per algorithm spent on warming the verify path
  warmTokens: 10_000,
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
});

const UPLOAD_BODY = Buffer.alloc(1024 * 1024, 0x62);

function gitInfo() {
  const rev = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  const st = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' });
  return { commit: rev.status === 0 ? rev.stdout.trim() : null, dirty: st.status === 0 ? st.stdout.trim().length > 0 : null };
}

/** Checks the status classes of a run against what the scenario expects. */
function statusProblems(stats, expect, label = '') {
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

/**
 * Runs the suite.
 * @param {object} [options]
 * @param {string[]} [options.scenarios] names or groups (`all`, `cold`, `baselines`); default all
 * @param {boolean} [options.smoke] SMOKE defaults, no budgets, no results unless resultsDir is set
 * @param {boolean} [options.pin] taskset placement (default: true, false in smoke mode)
 * @param {string|null} [options.budgetsFile] null: do not check budgets
 * @param {string|null} [options.resultsDir] null: write nothing
 * @param {(line: string) => void} [options.log] progress lines (default: stderr)
 * @param {boolean} [options.tty] live per-second progress (default: stderr is a TTY)
 * @param {AbortSignal} [options.signal] stops the run early
 * @param {string} [options.gatewayCli] another gateway build's cli.js (default dist/cli.js)
 * @param {string[]} [options.gatewayNodeArgs] extra node arguments for the gateway process (e.g. --cpu-prof)
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

  const budgets = budgetsFile ? loadBudgets(budgetsFile, byName) : {};
  const scenarios = select(options.scenarios ?? [], { extraDeps: (n) => budgetDeps(budgets, n) });
  const needsGateway = scenarios.some((s) => s.target === 'gateway');
  const placement = choosePlacement({ pin: options.pin ?? !smoke });
  log(`bench: ${scenarios.length} scenarios: ${scenarios.map((s) => s.name).join(', ')}`);
  log(`bench: ${placement.why}`);

  const dir = mkdtempSync(join(tmpdir(), 'mfa-gw-bench-'));
  let upstream = null;
  let gateway = null;
  let gatewayExit = null;
  const rows = [];
  try {
    // Tokens are minted before pinning, while this process may still use every core.
    const tokens = needsGateway || scenarios.some((s) => s.token) ? await mintTokens(scenarios, o, dir, log) : null;

    if (placement.pinned) pinSelf(placement.others);
    upstream = await startUpstreamProcess({ cpus: placement.others });
    log(`bench: upstream (${upstream.server}) on ${upstream.url}, pid ${upstream.pid}`);
    if (needsGateway) {
      gateway = await startGatewayProcess({
        dir,
        cpus: placement.gateway,
        upstreamUrl: upstream.url,
        jwksFile: tokens.jwksFile,
        threads: o.threads,
        nodeArgs: options.gatewayNodeArgs ?? [],
        ...(options.gatewayCli ? { cli: resolve(options.gatewayCli) } : {}),
      });
      log(`bench: gateway on ${gateway.url} (admin ${gateway.adminPort}), pid ${gateway.pid}, ${o.threads} verifier thread${o.threads === 1 ? '' : 's'}`);
      if (o.warmup > 0) {
        // A fresh process runs interpreted code and opens its upstream connections on
        // the first requests; without this the first gateway scenario pays for it.
        const seconds = Math.max(2, 2 * o.warmup);
        log(`bench: warming the gateway up (${2 * seconds} s, discarded)`);
        const common = { url: gateway.url, path: '/api/hello', connections: o.connections, pipelining: o.pipelining, duration: seconds, signal: options.signal };
        await drive({ ...common, path: '/public/hello' });
        await drive({ ...common, headers: { authorization: `Bearer ${tokens.cached}` } });
      }
    }

    for (const s of scenarios) {
      if (options.signal?.aborted) break;
      const target = s.target === 'gateway' ? gateway : upstream;
      const row = { name: s.name, target: s.target, what: s.what, method: s.method ?? 'GET', path: s.path, expect: s.expect, problems: [], notes: [] };
      if (s.target === 'gateway' && !gateway.alive()) {
        rows.push(failedRow(row, `the gateway is not running any more: ${gateway.stderr().trim().split('\n').slice(-3).join(' | ')}`));
        continue;
      }
      const connections = s.conn === 'body' ? o.bodyConnections : o.connections;
      row.connections = connections;
      log(`▶ ${s.name}: ${s.what}`);
      try {
        const pids = { gateway: gateway?.pid, upstream: upstream.pid };
        Object.assign(row, await runScenario(s, { o, target, tokens, connections, log, tty, signal: options.signal, pids }));
      } catch (err) {
        failedRow(row, `harness error: ${err.message}`);
      }
      if (s.target === 'gateway' && !gateway.alive()) row.problems.push('the gateway exited during the run');
      row.ok = row.problems.length === 0;
      log(
        `  ${row.ok ? '✓' : '✗'} ${s.name}: ${Math.round(row.rps ?? 0).toLocaleString('en-US')} req/s, p99 ${row.latencyMs?.p99?.toFixed(3) ?? '–'} ms${row.ok ? '' : ` FAILED: ${row.problems.join('; ')}`}`,
      );
      rows.push(row);
    }
  } finally {
    if (gateway) {
      gatewayExit = await gateway.stop();
    }
    if (upstream) await upstream.stop();
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
    // A scenario measured interleaved with `none` is compared with those very seconds.
    const noneBase = r.paired?.none ?? (none?.ok ? none : null);
    r.vsNone = s.vsNone && noneBase && r.ok ? r.rps / noneBase.rps : null;
  }

  const budgetResults = budgetsFile ? evaluateBudgets(budgets, byRow, { threads: o.threads }) : [];
  const failures = [
    ...rows.filter((r) => !r.ok).map((r) => `${r.name} failed: ${r.problems.join('; ')}`),
    ...budgetResults.filter((b) => b.ok === false).map((b) => `budget broken: ${b.message}`),
  ];
  if (gatewayExit && gatewayExit.code !== 0) failures.push(`the gateway exited with ${gatewayExit.code ?? gatewayExit.signal} on SIGTERM (expected 0)`);
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
      upstreamServer: upstream?.server ?? 'not started',
      gatewayExit,
      options: o,
    },
    rows: rows.map(({ sortedLatencies, ...r }) => r),
    budgets: budgetResults,
    files: null,
  };
  if (resultsDir) report.files = writeResults(resultsDir, report);
  return report;
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
async function mintTokens(scenarios, o, dir, log) {
  const t0 = performance.now();
  const jwksFile = join(dir, 'jwks.json');
  const keys = await createKeys(jwksFile);
  const names = new Set(scenarios.map((s) => s.name));
  const tokens = { jwksFile, keys, cold: {}, coldWarm: {} };
  tokens.cached = await mint(keys.RS256);
  tokens.stepup = await mint(keys.RS256, { amr: ['pwd'] });
  tokens.invalid = breakSignature(await mint(keys.RS256));
  tokens.sprayTemplate = garbageTemplate(keys.RS256);
  // Cache hits do not depend on the algorithm; EdDSA tokens are the quickest to mint.
  if (names.has('warm-10k')) tokens.warm = await mintMany(keys.EdDSA, o.warmTokens);
  // A few more than the run sends: autocannon builds a connection's next request before it knows the run is over.
  const margin = o.connections * (o.pipelining + 2);
  for (const s of scenarios.filter((x) => x.token === 'cold')) {
    tokens.cold[s.alg] = await mintMany(keys[s.alg], o.coldTokens + margin);
    tokens.coldWarm[s.alg] = o.coldWarmup > 0 ? await mintMany(keys[s.alg], o.coldWarmup + margin) : [];
  }
  const count = 3 + (tokens.warm?.length ?? 0) + Object.values(tokens.cold).reduce((a, l) => a + l.length, 0) + Object.values(tokens.coldWarm).reduce((a, l) => a + l.length, 0);
  log(`bench: minted ${count.toLocaleString('en-US')} tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return tokens;
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

function progress(name, seconds, tty, log) {
  if (!tty) return undefined;
  return (second, count) => {
    process.stderr.write(`\r  ${name}: ${second}/${seconds} s, ${count.toLocaleString('en-US')} req/s   `);
    if (second >= seconds) process.stderr.write('\r\x1b[K');
  };
}

/**
 * CPU used by the gateway, the upstream and this process (the load generator) during a
 * measured run, as % of one core, and the gateway's CPU time per request. On a small
 * machine the load generator is often what limits req/s; the gateway's µs per request
 * does not depend on that.
 */
function startMeter(pids) {
  const t0 = performance.now();
  const self0 = process.cpuUsage();
  const gw0 = cpuTimeMs(pids.gateway);
  const up0 = cpuTimeMs(pids.upstream);
  /** wallMs: the measured time (a run's tail after its last answer is idle and not counted). */
  return (requests, wallMs = performance.now() - t0) => {
    const wall = wallMs;
    const self = process.cpuUsage(self0);
    const gw1 = cpuTimeMs(pids.gateway);
    const up1 = cpuTimeMs(pids.upstream);
    const pct = (a, b) => (a === null || b === null ? null : ((b - a) / wall) * 100);
    return {
      gatewayPercent: pct(gw0, gw1),
      gatewayUsPerRequest: gw0 === null || gw1 === null || requests === 0 ? null : ((gw1 - gw0) * 1000) / requests,
      upstreamPercent: pct(up0, up1),
      loadgenPercent: ((self.user + self.system) / 1000 / wall) * 100,
    };
  };
}

/** The autocannon request of a scenario with a static token (or none). */
function requestFor(s, { target, tokens, connections, o, signal }) {
  const req = {
    url: target.url,
    path: s.path,
    method: s.method ?? 'GET',
    connections,
    pipelining: o.pipelining,
    signal,
    headers: s.body === 'upload' ? { 'content-type': 'application/octet-stream' } : {},
    ...(s.body === 'upload' ? { body: UPLOAD_BODY } : {}),
  };
  const staticToken = { cached: tokens?.cached, stepup: tokens?.stepup, invalid: tokens?.invalid }[s.token];
  if (staticToken) req.headers = { ...req.headers, authorization: `Bearer ${staticToken}` };
  return req;
}

/**
 * A paired measurement: `duration` seconds of this scenario and as many of `partner`,
 * interleaved in slices of PAIR_SLICE_SEC in ABBA order, on the same gateway. This
 * machine's speed drifts by a third over tens of seconds (other tenants of the host),
 * so two runs measured one after the other can differ by more than the 10 % a budget
 * holds; slices a few seconds apart see the same machine. Returns this scenario's
 * merged stats and CPU, and the partner's.
 */
async function pairedRun(req, partnerReq, { o, pids, tty, name }) {
  const slices = Math.max(1, Math.round(o.duration / PAIR_SLICE_SEC));
  const mine = [];
  const theirs = [];
  let myCpuMs = 0;
  let theirCpuMs = 0;
  for (let i = 0; i < slices; i++) {
    const order = i % 2 === 0 ? ['partner', 'mine'] : ['mine', 'partner'];
    for (const who of order) {
      const gw0 = cpuTimeMs(pids.gateway);
      const stats = await drive({ ...(who === 'mine' ? req : partnerReq), duration: PAIR_SLICE_SEC });
      const used = (cpuTimeMs(pids.gateway) ?? 0) - (gw0 ?? 0);
      if (who === 'mine') {
        mine.push(stats);
        myCpuMs += used;
      } else {
        theirs.push(stats);
        theirCpuMs += used;
      }
    }
    if (tty) process.stderr.write(`\r  ${name}: slice pair ${i + 1}/${slices}   ${i + 1 === slices ? '\r\x1b[K' : ''}`);
  }
  const a = mergeStats(mine);
  const b = mergeStats(theirs);
  const perReq = (ms, n) => (pids.gateway === undefined || n === 0 ? null : (ms * 1000) / n);
  return { stats: a, usPerRequest: perReq(myCpuMs, a.requests), partner: { stats: b, usPerRequest: perReq(theirCpuMs, b.requests) } };
}

const PAIR_SLICE_SEC = 2;

/** One RunStats out of several runs of the same request. */
function mergeStats(list) {
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
  return {
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
}

/** Runs one scenario (warm-up included) and returns its row fields. */
async function runScenario(s, { o, target, tokens, connections, log, tty, signal, pids }) {
  if (s.target !== 'gateway') pids = { ...pids, gateway: undefined };
  const req = requestFor(s, { target, tokens, connections, o, signal });
  const problems = [];
  const notes = [];

  if (s.token === 'warm') {
    // Fill the cache: every token verified once, in the order the run will send them.
    log(`  verifying ${tokens.warm.length.toLocaleString('en-US')} tokens into the cache`);
    const fill = await drive({ ...req, amount: tokens.warm.length, token: rotating(tokens.warm) });
    problems.push(...statusProblems(fill, s.expect, 'cache fill'));
    req.token = rotating(tokens.warm);
  }

  if (s.token === 'cold') {
    const warm = tokens.coldWarm[s.alg];
    if (warm.length) await drive({ ...req, amount: o.coldWarmup, token: onceEach(warm) });
    const supply = onceEach(tokens.cold[s.alg]);
    const meter = startMeter(pids);
    const stats = await drive({ ...req, amount: o.coldTokens, token: supply, onTick: progress(s.name, '?', tty, log) });
    const cpu = meter(stats.requests, stats.elapsedSec * 1000);
    problems.push(...statusProblems(stats, s.expect));
    if (supply.reused > 0) problems.push(`${supply.reused} requests reused a token (the pre-minted pool ran dry): not a cold run`);
    const perThread = stats.rps / Math.max(1, o.threads);
    notes.push(`${Math.round(perThread).toLocaleString('en-US')} verifications/s per worker thread`);
    return finish(stats, problems, notes, cpu);
  }

  if (o.warmup > 0) await drive({ ...req, duration: o.warmup });

  if (s.spray) {
    const sprayReq = { ...req, connections: o.sprayConnections, headers: {}, token: () => garbageToken(tokens.keys.RS256, tokens.sprayTemplate) };
    const meter = startMeter(pids);
    const [stats, spray] = await Promise.all([
      drive({ ...req, duration: o.duration, onTick: progress(s.name, o.duration, tty, log) }),
      drive({ ...sprayReq, duration: o.duration }),
    ]);
    const cpu = meter(stats.requests + spray.requests, Math.max(stats.elapsedSec, spray.elapsedSec) * 1000);
    problems.push(...statusProblems(stats, s.expect));
    // A flood of bad tokens is refused (401) or, past the verifier queue, shed (503): both are correct.
    const sprayBad = Object.entries(spray.statuses).filter(([c]) => c !== '401' && c !== '503');
    if (spray.requests === 0) problems.push('spray: no responses');
    if (sprayBad.length) problems.push(`spray: answers other than 401/503 (${sprayBad.map(([c, n]) => `${c}: ${n}`).join(', ')})`);
    notes.push(`beside ${Math.round(spray.rps).toLocaleString('en-US')} garbage tokens/s (${Object.entries(spray.statuses).map(([c, n]) => `${c}: ${n}`).join(', ')})`);
    const { sortedLatencies, ...sprayStats } = spray;
    return { ...finish(stats, problems, notes, cpu), spray: sprayStats };
  }

  if (s.pairedWith) {
    const partner = byName.get(s.pairedWith);
    const partnerReq = requestFor(partner, { target, tokens, connections, o, signal });
    const meter = startMeter(pids);
    const run = await pairedRun(req, partnerReq, { o, pids, tty, name: s.name });
    const cpu = { ...meter(run.stats.requests + run.partner.stats.requests), gatewayUsPerRequest: run.usPerRequest };
    problems.push(...statusProblems(run.stats, s.expect));
    problems.push(...statusProblems(run.partner.stats, partner.expect, `paired ${partner.name}`));
    notes.push(
      `interleaved with ${partner.name} (${PAIR_SLICE_SEC} s slices, ABBA): ${partner.name} ${Math.round(run.partner.stats.rps).toLocaleString('en-US')} req/s, ` +
        `${run.partner.usPerRequest?.toFixed(1) ?? '–'} gw µs/req in the same seconds`,
    );
    const { sortedLatencies, ...partnerStats } = run.partner.stats;
    return { ...finish(run.stats, problems, notes, cpu), paired: { [partner.name]: { ...partnerStats, ok: true, cpu: { gatewayUsPerRequest: run.partner.usPerRequest } } } };
  }

  const meter = startMeter(pids);
  const stats = await drive({ ...req, duration: o.duration, onTick: progress(s.name, o.duration, tty, log) });
  const cpu = meter(stats.requests, stats.elapsedSec * 1000);
  problems.push(...statusProblems(stats, s.expect));
  return finish(stats, problems, notes, cpu);
}

function finish(stats, problems, notes, cpu) {
  return { ...stats, cpu, distribution: distribution(stats.sortedLatencies), problems, notes };
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
      --no-pin              do not pin with taskset [BENCH_PIN=0]
      --gateway-node-args="..."  extra node arguments for the gateway [BENCH_GATEWAY_NODE_ARGS],
                            e.g. --gateway-node-args="--cpu-prof --cpu-prof-dir=.tmp/profiles"
      --gateway-cli FILE    bench another build's cli.js instead of dist/cli.js [BENCH_GATEWAY_CLI]
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
};
const camel = (s) => s.replace(/-(\w)/g, (_, c) => c.toUpperCase());

/** Parses the command line into runSuite options (exported for tests of the CLI). */
export function parseCli(argv, env = process.env) {
  const { values, positionals } = parseArgs({
    args: argv,
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
