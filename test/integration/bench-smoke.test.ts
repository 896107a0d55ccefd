/**
 * Keeps the benchmark harness (bench/) working: every scenario runs for about a
 * second with a few connections against the real upstream and the built gateway.
 * It checks that each scenario produced a result row with answers of the expected
 * status class. It never checks budgets or timings (those belong to `npm run bench`).
 *
 * The whole-run leak check (test/leaks) sees only the harness's own log lines from
 * here: bench/ starts its gateway with stdout to /dev/null (its audit lines and
 * operational log go nowhere; stderr is kept inside bench/ for its error messages),
 * and the tokens it mints stay inside runSuite, so neither is checked here.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordOutput } from './leaks.js';
// @ts-expect-error bench/ is plain JavaScript without type declarations
import { runSuite } from '../../bench/run.js';
// @ts-expect-error bench/ is plain JavaScript without type declarations
import { SCENARIOS } from '../../bench/lib/scenarios.js';

interface Stats {
  requests: number;
  statuses: Record<string, number>;
  errors: number;
}
interface Row extends Stats {
  name: string;
  target: 'upstream' | 'gateway';
  expect: '2xx' | number;
  ok: boolean;
  problems: string[];
  distribution: [number, number][];
  spray?: Stats;
}
interface Report {
  ok: boolean;
  failures: string[];
  rows: Row[];
  budgets: unknown[];
  files: { json: string; md: string; svg: string } | null;
  meta: { gatewayExit: { code: number | null } | null; placement: { pinned: boolean } };
}

const ALL = (SCENARIOS as { name: string; expect: '2xx' | number }[]).map((s) => s.name);

describe('bench harness smoke run', () => {
  let report: Report;
  let out: string;
  const lines: string[] = [];

  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), 'mfa-gw-bench-smoke-'));
    report = (await runSuite({ smoke: true, resultsDir: out, log: (l: string) => lines.push(l) })) as Report;
  }, 55_000);

  afterAll(() => {
    recordOutput('bench-smoke.log', lines.join('\n'));
    if (out) rmSync(out, { recursive: true, force: true });
  });

  it('produces one row per scenario, in the table order', () => {
    expect(report.rows.map((r) => r.name)).toEqual(ALL);
  });

  it.each(ALL)('%s: answered, with the expected status class only', (name) => {
    const row = report.rows.find((r) => r.name === name)!;
    const context = `${name}: ${row.problems.join('; ')}\n${lines.join('\n')}`;
    expect(row.requests, context).toBeGreaterThan(0);
    expect(row.errors, context).toBe(0);
    const codes = Object.keys(row.statuses);
    expect(codes.length, context).toBeGreaterThan(0);
    if (row.expect === '2xx') expect(codes.every((c) => c.startsWith('2')), `${context}\n${JSON.stringify(row.statuses)}`).toBe(true);
    else expect(codes, context).toEqual([String(row.expect)]);
    expect(row.ok, context).toBe(true);
    expect(row.distribution.length).toBeGreaterThan(0);
  });

  it('spray sends garbage tokens beside the cached run, and they are refused', () => {
    const spray = report.rows.find((r) => r.name === 'spray')!.spray!;
    expect(spray.requests).toBeGreaterThan(0);
    expect(Object.keys(spray.statuses).every((c) => c === '401' || c === '503'), JSON.stringify(spray.statuses)).toBe(true);
    expect(spray.statuses['401']).toBeGreaterThan(0);
  });

  it('measures cached interleaved with none and compares it with those very slices', () => {
    const cached = report.rows.find((r) => r.name === 'cached') as unknown as Row & {
      paired?: { none?: { requests: number; rps: number; statuses: Record<string, number> } };
      vsNone: number | null;
      rps: number;
    };
    const partner = cached.paired?.none;
    expect(partner?.requests).toBeGreaterThan(0);
    expect(Object.keys(partner!.statuses).every((c) => c.startsWith('2'))).toBe(true);
    expect(cached.vsNone).toBeCloseTo(cached.rps / partner!.rps, 10);
  });

  it('checks no budgets in smoke mode, does not pin, and the gateway exits 0 on SIGTERM', () => {
    expect(report.budgets).toEqual([]);
    expect(report.meta.placement.pinned).toBe(false);
    expect(report.meta.gatewayExit?.code).toBe(0);
    expect(report.failures).toEqual([]);
    expect(report.ok).toBe(true);
  });

  it('writes JSON, Markdown and an SVG chart, plus latest.* copies', () => {
    const files = report.files!;
    for (const f of [files.json, files.md, files.svg, join(out, 'latest.json'), join(out, 'latest.md'), join(out, 'latest.svg')]) {
      expect(existsSync(f), f).toBe(true);
    }
    const json = JSON.parse(readFileSync(files.json, 'utf8')) as Report;
    expect(json.rows.map((r) => r.name)).toEqual(ALL);
    const svg = readFileSync(files.svg, 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.match(/<polyline/g)?.length).toBe(ALL.length);
    const md = readFileSync(files.md, 'utf8');
    for (const name of ALL) expect(md).toContain(`| ${name} |`);
  });
});
