/**
 * Presenting a run: the console table, the Markdown and JSON files, and the latency
 * distribution chart (a hand-written SVG, so no charting dependency).
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { percentile } from './load.js';

const int = (v) => Math.round(v).toLocaleString('en-US');
/** Milliseconds with three significant decimals' worth of precision. */
export const ms = (v) => (v === null || v === undefined ? '–' : v >= 100 ? v.toFixed(1) : v >= 10 ? v.toFixed(2) : v.toFixed(3));
const pct = (v) => (v === null || v === undefined ? '–' : `${Math.round(v)}%`);
const us = (v) => (v === null || v === undefined ? '–' : v >= 100 ? Math.round(v).toString() : v.toFixed(1));
const ratio = (v) => (v === null || v === undefined ? '–' : `${v.toFixed(2)}×`);

/** The x positions of the distribution: 0 … 4 "nines" (0 %, 90 %, 99 %, 99.9 %, 99.99 %). */
const NINES = Array.from({ length: 41 }, (_, i) => i / 10);

/** Latency at log-spaced percentiles, for the chart and for later comparison. */
export function distribution(sorted) {
  if (!sorted.length) return [];
  const pts = NINES.map((n) => {
    const p = 100 * (1 - 10 ** -n);
    return [Number(p.toFixed(4)), n === 0 ? sorted[0] : percentile(sorted, p)];
  });
  pts.push([100, sorted[sorted.length - 1]]);
  return pts;
}

const COLUMNS = [
  ['scenario', (r) => r.name, 'l'],
  ['req/s', (r) => int(r.rps), 'r'],
  ['p50 ms', (r) => ms(r.latencyMs.p50), 'r'],
  ['p90 ms', (r) => ms(r.latencyMs.p90), 'r'],
  ['p99 ms', (r) => ms(r.latencyMs.p99), 'r'],
  ['p99.9 ms', (r) => ms(r.latencyMs.p99_9), 'r'],
  ['non-2xx', (r) => int(r.non2xx), 'r'],
  ['× direct', (r) => ratio(r.vsDirect), 'r'],
  ['× none', (r) => ratio(r.vsNone), 'r'],
  ['gw CPU', (r) => pct(r.cpu?.gatewayPercent), 'r'],
  ['gw µs/req', (r) => us(r.cpu?.gatewayUsPerRequest), 'r'],
  ['× floor CPU', (r) => ratio(r.vsFloorCpu), 'r'],
  ['gen CPU', (r) => pct(r.cpu?.loadgenPercent), 'r'],
  ['result', (r) => (r.ok ? 'ok' : 'FAIL'), 'l'],
  ['notes', (r) => r.notes.join('; '), 'l'],
];

/** Side by side with the baseline build (--baseline-dist): the rows that ran against both. */
const BASELINE_COLUMNS = [
  ['scenario', (r) => r.name, 'l'],
  ['req/s', (r) => int(r.rps), 'r'],
  ['baseline req/s', (r) => int(r.baseline.rps), 'r'],
  ['req/s ÷ baseline', (r) => ratio(r.vsBaseline?.rps), 'r'],
  ['gw µs/req', (r) => us(r.cpu?.gatewayUsPerRequest), 'r'],
  ['baseline µs/req', (r) => us(r.baseline.cpu?.gatewayUsPerRequest), 'r'],
  ['µs/req ÷ baseline', (r) => ratio(r.vsBaseline?.cpuPerRequest), 'r'],
  ['p99 ms', (r) => ms(r.latencyMs.p99), 'r'],
  ['baseline p99 ms', (r) => ms(r.baseline.latencyMs?.p99), 'r'],
  ['result', (r) => (r.ok && r.baseline.ok ? 'ok' : `FAIL${r.baseline.ok ? '' : ' (baseline)'}`), 'l'],
];

function plainTable(columns, rows) {
  const cells = rows.map((r) => columns.map(([, f]) => f(r)));
  const widths = columns.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (vals) =>
    vals
      .map((v, i) => (columns[i][2] === 'r' ? v.padStart(widths[i]) : v.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(columns.map(([h]) => h)), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

/** The results as a plain-text table for the terminal. */
export function textTable(rows) {
  return plainTable(COLUMNS, rows);
}

/** The comparison with the baseline build as a plain-text table. */
export function baselineTable(rows) {
  return plainTable(BASELINE_COLUMNS, rows.filter((r) => r.baseline));
}

function mdTable(header, rows, align) {
  const esc = (s) => String(s).replace(/\|/g, '\\|');
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `|${align.map((a) => (a === 'r' ? '---:' : '---')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

/** A Markdown table of `rows` with `columns` ([header, cell, alignment] each). */
function columnsTable(columns, rows) {
  return mdTable(
    columns.map(([h]) => h),
    rows.map((r) => columns.map(([, f]) => f(r))),
    columns.map(([, , a]) => a),
  );
}

/** The Markdown report of a run (with a comparison against `previous` when given). */
export function markdown(report, { svgName, previous }) {
  const { meta, rows, budgets } = report;
  const out = [];
  out.push(`# Bench run ${meta.timestamp}`, '');
  out.push(
    `- commit \`${meta.commit ?? 'unknown'}\`${meta.dirty ? ' (with uncommitted changes)' : ''}, Node ${meta.node}, ${meta.cpu} × ${meta.cores}`,
    `- placement: ${meta.placement.why}`,
    `- upstream: ${meta.upstreamServer}; gateway verifier threads: ${meta.options.threads}`,
    `- ${meta.options.connections} connections (large bodies: ${meta.options.bodyConnections}, spray: ${meta.options.sprayConnections}), pipelining ${meta.options.pipelining}, ${meta.options.duration} s per scenario after ${meta.options.warmup} s of warm-up${meta.options.smoke ? ' (smoke run)' : ''}`,
    `- result: **${report.ok ? 'ok' : 'FAILED'}**${report.failures.length ? ` (${report.failures.join('; ')})` : ''}`,
    '',
  );
  out.push(columnsTable(COLUMNS, rows), '');
  const withBase = rows.filter((r) => r.baseline);
  if (withBase.length) {
    out.push(`## Against the baseline build (\`${meta.baselineDist}\`)`, '');
    out.push(
      'Each gateway scenario ran against this build and the baseline build in the same invocation, interleaved in ABBA slices: `req/s ÷ baseline` above 1 and `µs/req ÷ baseline` below 1 mean this build is faster.',
      '',
    );
    out.push(columnsTable(BASELINE_COLUMNS, withBase), '');
  }
  if (budgets.length) {
    out.push('## Budgets (bench/budgets.yaml)', '');
    out.push(
      mdTable(
        ['scenario', 'check', 'limit', 'measured', '', 'by'],
        budgets.map((b) => [b.scenario, b.vs ? `${b.check} vs ${b.vs}` : b.check, b.limit, b.actual ?? '–', b.ok === null ? 'not checked' : b.ok ? 'ok' : '**broken**', b.by ?? '']),
        ['l', 'l', 'r', 'r', 'l', 'r'],
      ),
      '',
    );
  }
  if (previous) {
    const prev = new Map(previous.rows.map((r) => [r.name, r]));
    const both = rows.filter((r) => prev.has(r.name));
    if (both.length) {
      out.push(`## Against the previous run (${previous.meta.timestamp}, commit \`${previous.meta.commit ?? 'unknown'}\`)`, '');
      const pct = (a, b) => (b ? `${(((a - b) / b) * 100).toFixed(1)}%` : '–');
      out.push(
        mdTable(
          ['scenario', 'req/s', 'before', 'change', 'p99 ms', 'before', '× direct', 'before', '× floor CPU', 'before'],
          both.map((r) => {
            const p = prev.get(r.name);
            return [r.name, int(r.rps), int(p.rps), pct(r.rps, p.rps), ms(r.latencyMs.p99), ms(p.latencyMs?.p99), ratio(r.vsDirect), ratio(p.vsDirect), ratio(r.vsFloorCpu), ratio(p.vsFloorCpu)];
          }),
          ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
        ),
        '',
        'Compare the ratios first (× direct, × floor CPU): absolute numbers move with whatever else the machine is doing. For a before/after comparison of two builds, `--baseline-dist` measures both in the same seconds.',
        '',
      );
    }
  }
  out.push('## Latency distribution', '', `![latency distribution](${svgName})`, '');
  out.push('## Scenarios', '');
  for (const r of rows) out.push(`- **${r.name}**: ${r.what}`);
  out.push('');
  return out.join('\n');
}

const PALETTE = [
  '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f',
  '#bcbd22', '#17becf', '#393b79', '#ad494a', '#637939', '#843c39', '#7b4173', '#3182bd',
];
const xmlEsc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/**
 * The latency distribution of every scenario on one chart: x is the percentile on a
 * "nines" scale (0 %, 90 %, 99 %, 99.9 %, 99.99 %, as HdrHistogram plots it), y the
 * latency in ms on a log scale, so a 0.3 ms cache hit and a 50 ms slow upstream both
 * read clearly.
 */
export function svgChart(report) {
  const W = 1000;
  const H = 560;
  const m = { l: 70, r: 230, t: 50, b: 60 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const series = report.rows.filter((r) => r.distribution.length);
  const all = series.flatMap((r) => r.distribution.map(([, v]) => v)).filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(all.length ? Math.min(...all) : 0.1));
  const hi = 10 ** Math.ceil(Math.log10(all.length ? Math.max(...all) : 100));
  const maxX = 4.3;
  const x = (p) => m.l + (Math.min(maxX, p >= 100 ? maxX : -Math.log10(1 - p / 100)) / maxX) * pw;
  const y = (v) => m.t + ph - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * ph;
  const o = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  o.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  o.push(
    `<text x="${m.l}" y="24" font-size="15" font-weight="bold">Latency distribution, ${xmlEsc(report.meta.timestamp)} (${report.meta.options.connections} connections, ${xmlEsc(report.meta.placement.pinned ? 'pinned' : 'not pinned')})</text>`,
  );
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    for (const k of [1, 2, 5]) {
      const v = d * k;
      if (v > hi * 1.0001) break;
      const yy = y(v).toFixed(1);
      o.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${yy}" y2="${yy}" stroke="${k === 1 ? '#ccc' : '#eee'}"/>`);
      o.push(`<text x="${m.l - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#555">${v >= 1 ? v : Number(v.toPrecision(1))}</text>`);
    }
  }
  for (const [p, label] of [[0, '0%'], [90, '90%'], [99, '99%'], [99.9, '99.9%'], [99.99, '99.99%'], [100, 'max']]) {
    const xx = x(p).toFixed(1);
    o.push(`<line x1="${xx}" x2="${xx}" y1="${m.t}" y2="${m.t + ph}" stroke="#ddd"/>`);
    o.push(`<text x="${xx}" y="${m.t + ph + 18}" text-anchor="middle" fill="#555">${label}</text>`);
  }
  o.push(`<text x="${m.l + pw / 2}" y="${H - 14}" text-anchor="middle">percentile</text>`);
  o.push(`<text transform="translate(18 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">latency (ms, log scale)</text>`);
  o.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  series.forEach((r, i) => {
    const color = PALETTE[i % PALETTE.length];
    const dash = i >= PALETTE.length ? ' stroke-dasharray="5 3"' : r.target === 'upstream' ? ' stroke-dasharray="2 2"' : '';
    const pts = r.distribution.map(([p, v]) => `${x(p).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    o.push(`<polyline fill="none" stroke="${color}" stroke-width="1.8"${dash} points="${pts}"><title>${xmlEsc(r.name)}</title></polyline>`);
    const ly = m.t + 8 + i * 18;
    o.push(`<line x1="${m.l + pw + 14}" x2="${m.l + pw + 40}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2.5"${dash}/>`);
    o.push(`<text x="${m.l + pw + 46}" y="${ly + 4}">${xmlEsc(r.name)}${r.ok ? '' : ' (FAIL)'} p99 ${ms(r.latencyMs.p99)}</text>`);
  });
  o.push('</svg>');
  return `${o.join('\n')}\n`;
}

/**
 * Writes `<stamp>.json`, `<stamp>.md`, `<stamp>.svg` and the `latest.*` copies into
 * `dir`, comparing with the previous `latest.json` when there is one.
 * @returns {{ json: string, md: string, svg: string }}
 */
export function writeResults(dir, report) {
  mkdirSync(dir, { recursive: true });
  const stamp = report.meta.timestamp.replace(/[:.]/g, '-');
  let previous = null;
  const latestJson = join(dir, 'latest.json');
  if (existsSync(latestJson)) {
    try {
      previous = JSON.parse(readFileSync(latestJson, 'utf8'));
    } catch {
      previous = null;
    }
  }
  const files = { json: join(dir, `${stamp}.json`), md: join(dir, `${stamp}.md`), svg: join(dir, `${stamp}.svg`) };
  writeFileSync(files.json, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(files.svg, svgChart(report));
  writeFileSync(files.md, markdown(report, { svgName: `${stamp}.svg`, previous }));
  copyFileSync(files.json, latestJson);
  copyFileSync(files.svg, join(dir, 'latest.svg'));
  writeFileSync(join(dir, 'latest.md'), markdown(report, { svgName: 'latest.svg', previous }));
  return files;
}
