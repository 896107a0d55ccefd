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
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { SignJWT } from 'jose';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordOutput } from './leaks.js';
// @ts-expect-error bench/ is plain JavaScript without type declarations
import { runSuite } from '../../bench/run.js';
// @ts-expect-error bench/ is plain JavaScript without type declarations
import { SCENARIOS } from '../../bench/lib/scenarios.js';
// @ts-expect-error bench/ is plain JavaScript without type declarations
import { analyze } from '../../bench/lib/profile-top.js';
// @ts-expect-error bench/ is plain JavaScript without type declarations
import { HAPROXY_MISSING, startHaproxyProcess, startUpstreamProcess } from '../../bench/lib/processes.js';
// @ts-expect-error bench/ is plain JavaScript without type declarations
import { AUDIENCE, breakSignature, claims, createKeys, ISSUER, mint } from '../../bench/lib/tokens.js';
// @ts-expect-error bench/ is plain JavaScript without type declarations
import { SMALL_BODY } from '../../bench/upstream.js';

interface Stats {
  requests: number;
  statuses: Record<string, number>;
  errors: number;
}
interface Cpu {
  gatewayUsPerRequest: number | null;
}
interface Paired extends Stats {
  rps: number;
  ok: boolean;
  cpu: Cpu;
}
interface Rate {
  offered: number;
  generated: number;
  achieved: number;
  connectionsUsed: number;
}
interface Row extends Stats {
  name: string;
  target: 'upstream' | 'gateway' | 'floor' | 'haproxy';
  expect: '2xx' | number;
  ok: boolean;
  rps: number;
  problems: string[];
  distribution: [number, number][];
  spray?: Stats;
  cpu: Cpu;
  floor: string | null;
  vsFloorCpu: number | null;
  paired?: Record<string, Paired>;
  rate?: Rate;
  baseline?: Paired & { problems: string[] };
  vsBaseline?: { rps: number; cpuPerRequest: number | null } | null;
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
const ROOT = resolve(import.meta.dirname, '..', '..');
/** The smoke run's fixed rate (bench/run.js SMOKE.rate) and duration (1 s). */
const SMOKE_RATE = 200;

/** CPU per request of a row or partner, which must have been measured (Linux /proc). */
function usPerRequest(x: { cpu: Cpu } | undefined): number {
  const v = x?.cpu.gatewayUsPerRequest;
  expect(typeof v, 'CPU per request measured').toBe('number');
  expect(v).toBeGreaterThan(0);
  return v!;
}

describe('bench harness smoke run', () => {
  let report: Report;
  let out: string;
  const lines: string[] = [];

  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), 'mfa-gw-bench-smoke-'));
    report = (await runSuite({ smoke: true, resultsDir: out, log: (l: string) => lines.push(l) })) as Report;
  }, 90_000);
  const row = (name: string): Row => report.rows.find((r) => r.name === name)!;

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

  it('runs the floor proxy, and divides each gateway row\'s CPU per request by its floor\'s', () => {
    for (const name of ['floor', 'floor-download-64k', 'floor-download-1m', 'floor-upload-1m', 'floor-fixed-rate']) {
      expect(row(name).target).toBe('floor');
      expect(row(name).vsFloorCpu).toBeNull();
    }
    // A standalone row against the standalone floor …
    const none = row('none');
    expect(none.floor).toBe('floor');
    expect(none.vsFloorCpu).toBeCloseTo(usPerRequest(none) / usPerRequest(row('floor')), 10);
    expect(row('upload-1m').floor).toBe('floor-upload-1m');
    expect(row('upload-1m').vsFloorCpu).toBeCloseTo(usPerRequest(row('upload-1m')) / usPerRequest(row('floor-upload-1m')), 10);
    // … and the interleaved ones against the floor slices measured beside them.
    const cached = row('cached');
    expect(Object.keys(cached.paired!)).toEqual(['none', 'floor', 'haproxy']);
    expect(cached.paired!.floor!.requests).toBeGreaterThan(0);
    expect(cached.vsFloorCpu).toBeCloseTo(usPerRequest(cached) / usPerRequest(cached.paired!.floor), 10);
    const dl = row('download-64k');
    expect(dl.floor).toBe('floor-download-64k');
    expect(dl.vsFloorCpu).toBeCloseTo(usPerRequest(dl) / usPerRequest(dl.paired!['floor-download-64k']), 10);
  });

  it('runs HAProxy as a peer, interleaved with cached and warm-10k, and notes the ratios', () => {
    for (const name of ['haproxy', 'haproxy-10k']) {
      expect(row(name).target).toBe('haproxy');
      expect(row(name).vsFloorCpu).toBeCloseTo(usPerRequest(row(name)) / usPerRequest(row('floor')), 10);
    }
    for (const [name, peer] of [['cached', 'haproxy'], ['warm-10k', 'haproxy-10k']] as const) {
      const r = row(name) as Row & { notes: string[] };
      const p = r.paired![peer]!;
      expect(p.ok, name).toBe(true);
      expect(p.requests, name).toBeGreaterThan(0);
      expect(Object.keys(p.statuses), name).toEqual(['200']);
      usPerRequest(p);
      expect(r.notes.some((n) => n.startsWith(`÷ ${peer}: ${(r.rps / p.rps).toFixed(2)}× req/s`)), r.notes.join('; ')).toBe(true);
    }
    expect(Object.keys(row('warm-10k').paired!)).toEqual(['haproxy-10k']);
  });

  it('offers fixed-rate its rate open loop, and every request it generated was answered', () => {
    for (const name of ['fixed-rate', 'floor-fixed-rate']) {
      const r = row(name);
      expect(r.rate!.offered, name).toBe(SMOKE_RATE);
      expect(r.rate!.generated, name).toBe(SMOKE_RATE);
      expect(r.requests, name).toBe(SMOKE_RATE);
      expect(r.rate!.connectionsUsed, name).toBe(4);
    }
    const fr = row('fixed-rate');
    expect(fr.paired!['floor-fixed-rate']!.requests).toBe(SMOKE_RATE);
    expect(fr.vsFloorCpu).toBeCloseTo(usPerRequest(fr) / usPerRequest(fr.paired!['floor-fixed-rate']), 10);
  });

  it("notes the gateway's GCs, event-loop delay and the kernel's TCP retransmissions over fixed-rate", () => {
    const notes = (row('fixed-rate') as Row & { notes: string[] }).notes;
    // A metric the gateway stopped exporting reads as NaN, which these do not match.
    const pauses = notes.map((n) => /^gateway during the run: (\d+) major GCs? \([\d.]+ ms in all, (\d+) over 100 ms\), longest event-loop delay ([\d.]+) ms; heap (\d+) MB, ([\d,]+) tokens cached$/.exec(n)).filter((m) => m !== null);
    expect(pauses, notes.join('; ')).toHaveLength(1);
    // The smoke run's one cached token, at least, is in the cache it reports.
    expect(Number(pauses[0]![5]!.replaceAll(',', ''))).toBeGreaterThanOrEqual(1);
    expect(Number(pauses[0]![4])).toBeGreaterThan(0);
    const tcp = notes.filter((n) => /^TCP on this host during the run \(\/proc\/net\): \d+ retransmission timeouts, \d+ segments retransmitted, \d+ receive queues pruned, \d+ SYNs retransmitted$/.test(n));
    expect(tcp, notes.join('; ')).toHaveLength(1);
    expect((row('floor-fixed-rate') as Row & { notes: string[] }).notes.some((n) => n.startsWith('gateway during the run'))).toBe(false);
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
    expect(md).toContain('| × floor CPU |');
  });
});

describe('bench harness against a baseline build, with node arguments for the gateways', () => {
  let report: Report;
  let out: string;
  let profiles: string;
  const lines: string[] = [];

  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), 'mfa-gw-bench-baseline-'));
    profiles = join(out, 'profiles');
    // The same build on both sides (an A/A run): what matters here is that both ran.
    report = (await runSuite({
      smoke: true,
      scenarios: ['none'],
      baselineDist: join(ROOT, 'dist'),
      gatewayNodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profiles}`],
      resultsDir: out,
      log: (l: string) => lines.push(l),
    })) as Report;
  }, 60_000);

  afterAll(() => {
    recordOutput('bench-smoke-baseline.log', lines.join('\n'));
    if (out) rmSync(out, { recursive: true, force: true });
  });

  it('runs each gateway scenario against both builds and reports both side by side', () => {
    expect(report.failures, lines.join('\n')).toEqual([]);
    expect(report.rows.map((r) => r.name)).toEqual(['direct', 'floor', 'none']);
    const none = report.rows.find((r) => r.name === 'none')!;
    expect(none.baseline!.ok, none.baseline!.problems.join('; ')).toBe(true);
    expect(none.baseline!.requests).toBeGreaterThan(0);
    expect(none.vsBaseline!.rps).toBeCloseTo(none.rps / none.baseline!.rps, 10);
    expect(none.vsBaseline!.cpuPerRequest).toBeCloseTo(usPerRequest(none) / usPerRequest(none.baseline), 10);
    // Only gateway scenarios have a second build to run against.
    for (const name of ['direct', 'floor']) expect(report.rows.find((r) => r.name === name)!.baseline).toBeUndefined();
    const md = readFileSync(report.files!.md, 'utf8');
    expect(md).toContain('## Against the baseline build');
    expect(md).toMatch(/\| none \| [\d,]+ \| [\d,]+ \| \d+\.\d\d× \|/);
  });

  it('passes --gateway-node-args to both gateways: each wrote CPU profiles that profile-top reads', () => {
    const files = readdirSync(profiles).filter((f) => f.endsWith('.cpuprofile'));
    // Two gateways, each a main thread and one verifier worker.
    expect(files.length).toBe(4);
    // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile
    const pids = new Set(files.map((f) => f.split('.')[3]));
    expect(pids.size).toBe(2);
    const main = files.filter((f) => f.split('.')[4] === '0');
    expect(main.length).toBe(2);
    for (const f of main) {
      const a = analyze(JSON.parse(readFileSync(join(profiles, f), 'utf8')), f);
      expect(a.busyMs).toBeGreaterThan(0);
      expect(a.functions.length).toBeGreaterThan(0);
      // The main thread proxied requests: undici and the gateway's own code used CPU.
      expect(Object.keys(a.where)).toEqual(expect.arrayContaining(['gateway', 'undici']));
    }
  });
});

describe('the HAProxy peer verifies every request and refuses what it must', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mfa-gw-bench-haproxy-'));
  let upstream: { url: string; stop(): Promise<unknown> };
  let haproxy: { url: string; configFile: string; stop(): Promise<unknown> };
  let keys: Record<string, { kid: string; alg: string; privateKey: CryptoKey }>;

  beforeAll(async () => {
    keys = await createKeys(join(dir, 'jwks.json'));
    upstream = await startUpstreamProcess({ cpus: null });
    haproxy = await startHaproxyProcess({ dir, cpus: null, upstreamUrl: upstream.url, jwksFile: join(dir, 'jwks.json') });
  });
  afterAll(async () => {
    await haproxy?.stop();
    await upstream?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const send = async (authorization?: string) => {
    const r = await fetch(`${haproxy.url}/api/hello`, { headers: authorization ? { authorization } : {} });
    return { status: r.status, body: await r.text() };
  };
  /** The bench's claims, signed with its RS256 key unless said otherwise, with `change` applied. */
  const signed = (change: Record<string, unknown>, { alg = 'RS256', key = keys.RS256!.privateKey as CryptoKey | Uint8Array } = {}) => {
    const now = Math.floor(Date.now() / 1000);
    const body = { ...claims({ nowSec: now }), iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 600, ...change };
    for (const [k, v] of Object.entries(body)) if (v === undefined) delete body[k as keyof typeof body];
    return new SignJWT(body).setProtectedHeader({ alg, kid: keys.RS256!.kid, typ: 'JWT' }).sign(key);
  };
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

  it('passes a valid RS256 token of the bench key through to the upstream', async () => {
    expect(await send(`Bearer ${await mint(keys.RS256)}`)).toEqual({ status: 200, body: SMALL_BODY });
    expect(await send(`Bearer ${await signed({})}`)).toEqual({ status: 200, body: SMALL_BODY });
  });

  it('refuses with 401: no token, not a bearer token, a broken signature, another key, alg not RS256', async () => {
    const valid = await mint(keys.RS256);
    const [, payload] = valid.split('.');
    const cases: Record<string, string | undefined> = {
      'no Authorization header': undefined,
      'Basic credentials': `Basic ${Buffer.from('a:b').toString('base64')}`,
      'a broken signature': `Bearer ${breakSignature(valid)}`,
      // The same claims under the ES256 key: alg ES256 is refused before any signature work.
      'alg ES256': `Bearer ${await mint(keys.ES256)}`,
      // alg HS256 keyed with the public key's bytes: the classic confusion attack (RFC 8725 §2.1).
      'alg HS256': `Bearer ${await signed({}, { alg: 'HS256', key: new Uint8Array(readFileSync(join(dir, 'haproxy-rs256.pem'))) })}`,
      'alg none': `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${payload}.`,
      'an RS256 header on a body signed for another': `Bearer ${valid.split('.')[0]}.${(await signed({ sub: 'mallory' })).split('.')[1]}.${valid.split('.')[2]}`,
    };
    for (const [what, authorization] of Object.entries(cases)) expect((await send(authorization)).status, what).toBe(401);
  });

  it('refuses with 401 a validly signed token that is expired, has no exp, or another issuer or audience', async () => {
    const now = Math.floor(Date.now() / 1000);
    const cases: Record<string, Record<string, unknown>> = {
      'expired a second ago': { exp: now - 1 },
      'expiring now (RFC 7519 §4.1.4: not on or after exp)': { exp: now },
      'no exp': { exp: undefined },
      'another issuer': { iss: `${ISSUER}-other` },
      'another audience': { aud: 'another-api' },
    };
    for (const [what, change] of Object.entries(cases)) expect((await send(`Bearer ${await signed(change)}`)).status, what).toBe(401);
  });

  it('has the key named literally in its config, logs nothing, one thread, upstream connections reused', () => {
    const cfg = readFileSync(haproxy.configFile, 'utf8');
    expect(cfg).toContain(`jwt_verify("RS256","${join(dir, 'haproxy-rs256.pem')}")`);
    expect(cfg).toMatch(/^\s*nbthread 1$/m);
    expect(cfg).toMatch(/^\s*http-reuse always$/m);
    expect(cfg).not.toMatch(/^\s*log\b/m);
  });
});

describe('bench harness without haproxy', () => {
  it('fails the haproxy scenarios with the install line, not a skip', async () => {
    const report = (await runSuite({ smoke: true, scenarios: ['cached'], haproxyBin: join(tmpdir(), 'no-such-haproxy'), resultsDir: null, log: () => {} })) as Report;
    expect(report.rows.map((r) => r.name)).toEqual(['direct', 'floor', 'haproxy', 'none', 'cached']);
    const hp = report.rows.find((r) => r.name === 'haproxy')!;
    expect(hp.ok).toBe(false);
    expect(hp.requests).toBe(0);
    expect(hp.problems.join('; ')).toContain(HAPROXY_MISSING);
    expect(HAPROXY_MISSING).toBe("haproxy is not installed: apt-get install -y haproxy (Debian's package), needed by the haproxy scenarios");
    // cached, which HAProxy is interleaved with, is measured without it and says so.
    const cached = report.rows.find((r) => r.name === 'cached')! as Row & { notes: string[] };
    expect(cached.ok, cached.problems.join('; ')).toBe(true);
    expect(Object.keys(cached.paired!)).toEqual(['none', 'floor']);
    expect(cached.notes.filter((n) => n.startsWith('not interleaved with haproxy ('))).toHaveLength(1);
    expect(report.ok).toBe(false);
    expect(report.failures).toHaveLength(1);
    expect(report.failures.some((f) => f.startsWith('haproxy failed: ') && f.includes(HAPROXY_MISSING))).toBe(true);
  }, 60_000);
});
