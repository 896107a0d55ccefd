#!/usr/bin/env node
/**
 * Reads V8 CPU profiles (`node --cpu-prof`, e.g. taken of the gateway under bench load,
 * bench/README.md "Profiling") and prints where the busy time went: the top N
 * functions by self time, and the share of uWS, undici, pino, jose, the gateway's own
 * code, Node's core and the rest.
 *
 *   node bench/lib/profile-top.js FILE.cpuprofile|DIR [--top N] [--json]
 *
 * A directory means every .cpuprofile in it (a gateway writes one per thread: the main
 * thread's and each verifier worker's). Self time of a sample is the interval to the
 * next sample; `(idle)` and a piscina worker waiting for a task are not busy time.
 * uWS's methods (cork, writeHeader, tryEnd, …) have no frames of their own in V8's
 * profile: their C++ time is the self time of the JavaScript function that called them. Time in native code called from JavaScript (a socket write, a regular
 * expression) has no script of its own: it is counted where it was called from. Time in
 * C++ that JavaScript did not call (uWS parsing and writing HTTP in its event loop,
 * libuv) is `(program)`: the profiler cannot see into it, `perf` can.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(import.meta.dirname, '..', '..');

/** Packages grouped under one name (pino writes through sonic-boom, and so on). */
const FAMILIES = {
  'uWebSockets.js': 'uWS',
  undici: 'undici',
  pino: 'pino',
  'sonic-boom': 'pino',
  'thread-stream': 'pino',
  'pino-std-serializers': 'pino',
  'quick-format-unescaped': 'pino',
  'fast-redact': 'pino',
  'safe-stable-stringify': 'pino',
  'atomic-sleep': 'pino',
  'on-exit-leak-free': 'pino',
  jose: 'jose',
  piscina: 'piscina',
  'lru-cache': 'lru-cache',
};
const SPECIAL = new Set(['(idle)', '(program)', '(garbage collector)']);
/**
 * Functions a thread blocks in (its samples are waiting, not work): a piscina worker
 * with no task sleeps in Atomics.wait inside this one.
 */
const WAITING = new Set(['atomicsWaitLoop']);

/** The group a script belongs to: a package family, the gateway, this bench, Node's core. */
export function category(url) {
  if (!url) return null;
  if (url.startsWith('node:')) return 'node core';
  // undici's HTTP parser is llhttp compiled to WebAssembly; nothing else here ships wasm.
  if (url.startsWith('wasm://')) return 'undici';
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nm = path.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const rest = path.slice(nm + '/node_modules/'.length).split('/');
    const pkg = rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
    return FAMILIES[pkg] ?? pkg;
  }
  if (path.includes('/bench/floor.js')) return 'floor proxy';
  if (path.includes('/bench/')) return 'bench';
  return 'gateway';
}

/**
 * Self time per function and per group of one profile.
 * @returns {{ file: string, wallMs: number, busyMs: number, idleMs: number, functions: object[], where: Record<string, number>, byCaller: Record<string, number> }}
 */
export function analyze(profile, file = '') {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const { samples, timeDeltas } = profile;
  const selfUs = new Map();
  for (let i = 0; i < samples.length; i++) {
    const dt = i + 1 < timeDeltas.length ? timeDeltas[i + 1] : (profile.endTime - profile.startTime) / Math.max(1, samples.length);
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + Math.max(0, dt));
  }
  // The group a node's time counts towards: its own script's; native code without a
  // script takes its caller's. `byCaller` also looks through Node's core to the first
  // frame outside it (a socket write is undici's when undici asked for it).
  const own = new Map();
  const caller = new Map();
  const resolveNode = (id) => {
    if (own.has(id)) return;
    const n = byId.get(id);
    const name = n.callFrame.functionName;
    let mine = SPECIAL.has(name) ? name : name === '(root)' ? 'node core' : category(n.callFrame.url);
    let outside = mine && mine !== 'node core' ? mine : null;
    if (!mine || !outside) {
      const p = parent.get(id);
      if (p !== undefined) {
        resolveNode(p);
        mine ??= own.get(p) ?? '(native)';
        outside ??= caller.get(p);
      }
    }
    own.set(id, mine ?? '(native)');
    caller.set(id, outside ?? mine ?? '(native)');
  };
  const functions = new Map();
  const where = {};
  const byCaller = {};
  let idleUs = 0;
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    resolveNode(id);
    totalUs += us;
    const n = byId.get(id);
    const name = n.callFrame.functionName || '(anonymous)';
    if (name === '(idle)' || WAITING.has(name)) {
      idleUs += us;
      continue;
    }
    const g = own.get(id);
    where[g] = (where[g] ?? 0) + us;
    const c = caller.get(id);
    byCaller[c] = (byCaller[c] ?? 0) + us;
    const url = n.callFrame.url;
    const loc = url ? `${url.startsWith('file://') ? relative(ROOT, fileURLToPath(url)) : url}:${n.callFrame.lineNumber + 1}` : '';
    const key = `${name}\u0000${loc}`;
    const f = functions.get(key) ?? { name, location: loc, group: g, selfMs: 0 };
    f.selfMs += us / 1000;
    functions.set(key, f);
  }
  const busyUs = totalUs - idleUs;
  const ms = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, v / 1000]).sort((a, b) => b[1] - a[1]));
  return {
    file,
    wallMs: (profile.endTime - profile.startTime) / 1000,
    busyMs: busyUs / 1000,
    idleMs: idleUs / 1000,
    functions: [...functions.values()].sort((a, b) => b.selfMs - a.selfMs),
    where: ms(where),
    byCaller: ms(byCaller),
  };
}

function printable(a, top) {
  const pct = (v) => `${((v / Math.max(a.busyMs, 1e-9)) * 100).toFixed(1)}%`;
  const lines = [];
  lines.push(`${a.file}: ${(a.wallMs / 1000).toFixed(1)} s profiled, ${(a.busyMs / 1000).toFixed(2)} s busy (${((a.busyMs / Math.max(a.wallMs, 1e-9)) * 100).toFixed(0)}%), ${(a.idleMs / 1000).toFixed(2)} s idle`);
  lines.push(`  top ${top} functions by self time (share of busy time):`);
  for (const f of a.functions.slice(0, top)) {
    lines.push(`    ${f.selfMs.toFixed(1).padStart(9)} ms ${pct(f.selfMs).padStart(6)}  ${f.name.slice(0, 48).padEnd(48)} ${f.group.padEnd(12)} ${f.location}`);
  }
  // Groups under half a percent are summed as "other": startup code (yaml, zod) and the like.
  const shares = (o) => {
    const big = Object.entries(o).filter(([, v]) => v / Math.max(a.busyMs, 1e-9) >= 0.005);
    const rest = Object.values(o).reduce((x, v) => x + v, 0) - big.reduce((x, [, v]) => x + v, 0);
    return [...big.map(([k, v]) => `${k} ${pct(v)}`), ...(rest > 0 ? [`other ${pct(rest)}`] : [])].join(', ');
  };
  lines.push(`  where the busy time was (native code counts as its caller's): ${shares(a.where)}`);
  lines.push(`  who asked for it (Node's core counts as the first caller outside it): ${shares(a.byCaller)}`);
  return lines.join('\n');
}

function profilesIn(target) {
  if (!statSync(target).isDirectory()) return [target];
  const files = readdirSync(target).filter((f) => f.endsWith('.cpuprofile')).sort();
  if (!files.length) throw new Error(`no .cpuprofile in ${target}`);
  return files.map((f) => join(target, f));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string' }, json: { type: 'boolean' } } });
  if (positionals.length !== 1) {
    process.stderr.write('usage: node bench/lib/profile-top.js FILE.cpuprofile|DIR [--top N] [--json]\n');
    process.exit(2);
  }
  const top = Number(values.top ?? 25);
  try {
    const all = profilesIn(positionals[0]).map((f) => analyze(JSON.parse(readFileSync(f, 'utf8')), f));
    if (values.json) process.stdout.write(`${JSON.stringify(all.map((a) => ({ ...a, functions: a.functions.slice(0, top) })), null, 2)}\n`);
    else process.stdout.write(`${all.map((a) => printable(a, top)).join('\n\n')}\n`);
  } catch (err) {
    process.stderr.write(`profile-top: ${err.message}\n`);
    process.exit(1);
  }
}
