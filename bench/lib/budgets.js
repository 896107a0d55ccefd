/**
 * bench/budgets.yaml: what each scenario must hold, checked after a run.
 *
 *   scenarios:
 *     cached:
 *       - { check: rps_ratio, vs: none, min: 0.9 }       # rps ≥ 0.9 × none's rps (same run)
 *       - { check: p99_added_ms, vs: none, max: 1.0 }    # p99 − none's p99 ≤ 1.0 ms
 *     cold-rs256:
 *       - { check: verifications_per_core, min: 900 }    # rps / cores the gateway runs on ≥ 900
 *     fixed-rate:
 *       - { check: p99_ms, max: 2 }                       # p99 ≤ 2 ms
 *
 * Checks: rps_ratio (vs, min), cpu_per_request_ratio (vs, max: the measured process's
 * CPU time per request over that of `vs`, e.g. the gateway's over the floor proxy's),
 * p50_added_ms / p90_added_ms / p99_added_ms / p99_9_added_ms (vs, max),
 * p50_ms / p90_ms / p99_ms / p99_9_ms (max, absolute), rps (min),
 * verifications_per_core (min: req/s ÷ the cores the gateway process, worker threads
 * included, may run on: 1 when pinned), verifications_per_thread (min: req/s ÷ verifier threads).
 */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';

const ADDED = { p50_added_ms: 'p50', p90_added_ms: 'p90', p99_added_ms: 'p99', p99_9_added_ms: 'p99_9' };
const ABSOLUTE = { p50_ms: 'p50', p90_ms: 'p90', p99_ms: 'p99', p99_9_ms: 'p99_9' };
const KINDS = new Set(['rps_ratio', 'cpu_per_request_ratio', 'rps', 'verifications_per_core', 'verifications_per_thread', ...Object.keys(ADDED), ...Object.keys(ABSOLUTE)]);

/**
 * Reads and validates a budgets file.
 * @returns {Record<string, Array<{check: string, vs?: string, min?: number, max?: number}>>}
 */
export function loadBudgets(file, knownScenarios) {
  const doc = YAML.parse(readFileSync(file, 'utf8')) ?? {};
  const scenarios = doc.scenarios ?? {};
  const problems = [];
  for (const [name, checks] of Object.entries(scenarios)) {
    if (!knownScenarios.has(name)) problems.push(`scenarios.${name}: no such scenario`);
    if (!Array.isArray(checks)) {
      problems.push(`scenarios.${name}: must be a list of checks`);
      continue;
    }
    checks.forEach((c, i) => {
      const at = `scenarios.${name}[${i}]`;
      if (!KINDS.has(c?.check)) problems.push(`${at}.check: one of ${[...KINDS].join(', ')}`);
      const needsVs = c?.check === 'rps_ratio' || c?.check === 'cpu_per_request_ratio' || c?.check in ADDED;
      if (needsVs && !knownScenarios.has(c.vs)) problems.push(`${at}.vs: must name a scenario`);
      if (typeof c?.min !== 'number' && typeof c?.max !== 'number') problems.push(`${at}: needs min or max`);
    });
  }
  if (problems.length) throw new Error(`${file}:\n  ${problems.join('\n  ')}`);
  return scenarios;
}

/** Scenarios a scenario's budgets compare with (run them too). */
export function budgetDeps(budgets, name) {
  return (budgets[name] ?? []).map((c) => c.vs).filter(Boolean);
}

const fmt = (v, unit) => (unit === 'ms' ? `${v.toFixed(3)} ms` : unit === 'x' ? `${v.toFixed(3)}×` : `${Math.round(v).toLocaleString('en-US')}/s`);

/**
 * Evaluates every budget of the scenarios that ran.
 * @param {Record<string, any[]>} budgets
 * @param {Map<string, any>} rows results by scenario name
 * @param {{ threads: number, gatewayCores: number }} ctx
 * @returns {Array<{ scenario: string, check: string, vs?: string, limit: string, actual: string|null, ok: boolean|null, message: string }>}
 */
export function evaluateBudgets(budgets, rows, ctx) {
  const out = [];
  for (const [name, checks] of Object.entries(budgets)) {
    const row = rows.get(name);
    if (!row) continue;
    for (const c of checks) {
      // A scenario measured interleaved with its `vs` (run.js pairedRun) is held against those seconds.
      const base = c.vs ? (row.paired?.[c.vs] ?? rows.get(c.vs)) : null;
      const label = c.vs ? `${c.check} vs ${c.vs}` : c.check;
      const entry = { scenario: name, check: c.check, ...(c.vs ? { vs: c.vs } : {}) };
      if (!row.ok) {
        out.push({ ...entry, limit: limitText(c), actual: null, ok: null, message: `${name}: ${label} not checked (the scenario failed)` });
        continue;
      }
      if (c.vs && (!base || !base.ok)) {
        out.push({ ...entry, limit: limitText(c), actual: null, ok: null, message: `${name}: ${label} not checked (${c.vs} ${base ? 'failed' : 'did not run'})` });
        continue;
      }
      let value;
      let unit;
      if (c.check === 'rps_ratio') {
        value = row.rps / base.rps;
        unit = 'x';
      } else if (c.check === 'cpu_per_request_ratio') {
        const a = row.cpu?.gatewayUsPerRequest;
        const b = base.cpu?.gatewayUsPerRequest;
        if (typeof a !== 'number' || typeof b !== 'number' || b <= 0) {
          out.push({ ...entry, limit: limitText(c), actual: null, ok: null, message: `${name}: ${label} not checked (no CPU accounting on this platform)` });
          continue;
        }
        value = a / b;
        unit = 'x';
      } else if (c.check in ADDED) {
        const k = ADDED[c.check];
        value = row.latencyMs[k] - base.latencyMs[k];
        unit = 'ms';
      } else if (c.check in ABSOLUTE) {
        value = row.latencyMs[ABSOLUTE[c.check]];
        unit = 'ms';
      } else if (c.check === 'rps') {
        value = row.rps;
        unit = 'rps';
      } else if (c.check === 'verifications_per_core') {
        value = row.rps / Math.max(1, ctx.gatewayCores);
        unit = 'rps';
      } else {
        value = row.rps / Math.max(1, ctx.threads);
        unit = 'rps';
      }
      const lowOk = typeof c.min !== 'number' || value >= c.min;
      const highOk = typeof c.max !== 'number' || value <= c.max;
      const ok = lowOk && highOk;
      let message = `${name}: ${label} = ${fmt(value, unit)} (${limitText(c, unit)})`;
      // How far a broken budget is from its limit, in the check's unit and relative to the limit.
      let by = null;
      if (!lowOk) {
        const short = c.min - value;
        by = `${fmt(short, unit)}${c.min !== 0 ? ` (${((short / Math.abs(c.min)) * 100).toFixed(1)}%)` : ''}`;
        message = `${name}: ${label} = ${fmt(value, unit)}, below the minimum ${fmt(c.min, unit)} by ${by}`;
      } else if (!highOk) {
        const over = value - c.max;
        by = `${fmt(over, unit)}${c.max > 0 ? ` (${((over / c.max) * 100).toFixed(1)}%)` : ''}`;
        message = `${name}: ${label} = ${fmt(value, unit)}, above the maximum ${fmt(c.max, unit)} by ${by}`;
      }
      out.push({ ...entry, limit: limitText(c, unit), actual: fmt(value, unit), value, ok, by, message });
    }
  }
  return out;
}

function limitText(c, unit) {
  const parts = [];
  if (typeof c.min === 'number') parts.push(`≥ ${unit ? fmt(c.min, unit) : c.min}`);
  if (typeof c.max === 'number') parts.push(`≤ ${unit ? fmt(c.max, unit) : c.max}`);
  return parts.join(', ');
}
