/**
 * The deployment files (deploy/): the systemd unit passes `systemd-analyze verify`, the
 * alert rules pass `promtool check rules` and their unit tests (`promtool test rules`),
 * and every metric the rules and the Grafana dashboard query is one the gateway exports.
 * The tools are Debian packages (.ci/run installs them); a missing one fails the test
 * with the line that installs it, it never skips.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { createMetrics, readinessExposition } from '../../../src/observe/metrics.js';
import { parseDuration } from '../../../src/config/duration.js';
import { serverSchema } from '../../../src/config/schema.js';
import { CLI, ROOT, tempDir } from '../harness.js';

const DEPLOY = join(ROOT, 'deploy');

function tool(name: string, debianPackage: string): string {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim();
  if (found === '') throw new Error(`${name} is missing: install it with \`apt-get install -y ${debianPackage}\` (.ci/run does this when it is missing)`);
  return found;
}

function run(cmd: string, args: string[], cwd = DEPLOY): { code: number | null; out: string; err: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** `Key=value` lines of a unit file, by section; repeated keys keep every value. */
function unitKeys(text: string): Map<string, string[]> {
  const keys = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      section = s[1]!;
      continue;
    }
    const at = line.indexOf('=');
    const key = `${section}.${line.slice(0, at)}`;
    keys.set(key, [...(keys.get(key) ?? []), line.slice(at + 1)]);
  }
  return keys;
}

describe('deploy/mfa-gateway.service', () => {
  const unit = readFileSync(join(DEPLOY, 'mfa-gateway.service'), 'utf8');

  it('passes systemd-analyze verify (with ExecStart pointed at this node and dist/cli.js)', () => {
    const analyze = tool('systemd-analyze', 'systemd');
    const dir = tempDir('mfa-unit-');
    const copy = join(dir, 'mfa-gateway.service');
    const resolved = unit.replaceAll('/usr/bin/node /opt/mfa-gateway/node_modules/mfa-gateway/dist/cli.js', `${process.execPath} ${CLI}`);
    expect(unitKeys(resolved).get('Service.ExecStart')).toEqual([`${process.execPath} ${CLI} start --config /etc/mfa-gateway/gateway.yaml`]);
    writeFileSync(copy, resolved);
    const r = run(analyze, ['verify', copy], dir);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
  });

  it('has the lifecycle and hardening this gateway needs', () => {
    const k = unitKeys(unit);
    const one = (key: string) => {
      expect(k.get(key), key).toHaveLength(1);
      return k.get(key)![0]!;
    };
    expect(one('Service.ExecStart')).toBe('/usr/bin/node /opt/mfa-gateway/node_modules/mfa-gateway/dist/cli.js start --config /etc/mfa-gateway/gateway.yaml');
    expect(one('Service.ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(one('Service.KillSignal')).toBe('SIGTERM');
    // systemd must wait longer than the drain before it sends SIGKILL.
    const drainMs = parseDuration(serverSchema.parse({}).drainTimeout)!;
    expect(parseDuration(one('Service.TimeoutStopSec'))!).toBeGreaterThan(drainMs);
    expect(one('Service.NoNewPrivileges')).toBe('yes');
    expect(one('Service.ProtectSystem')).toBe('strict');
    expect(one('Service.ProtectHome')).toBe('yes');
    expect(one('Service.PrivateTmp')).toBe('yes');
    expect(one('Service.CapabilityBoundingSet')).toBe('');
    expect(k.has('Service.AmbientCapabilities')).toBe(false);
    expect(unit).toMatch(/^#\s+AmbientCapabilities=CAP_NET_BIND_SERVICE$/m);
    expect(one('Service.RestrictAddressFamilies')).toBe('AF_INET AF_INET6 AF_UNIX');
    expect(Number(one('Service.LimitNOFILE'))).toBeGreaterThanOrEqual(65_536);
    expect(one('Service.User')).toBe('mfa-gateway');
    // V8's JIT needs writable-then-executable memory.
    expect(k.has('Service.MemoryDenyWriteExecute')).toBe(false);
  });
});

/** The metric families the gateway's /metrics serves (names as in `# TYPE` lines). */
async function exportedFamilies(): Promise<Map<string, string>> {
  const m = createMetrics({ defaultMetrics: false });
  m.request('r', 200, 'ok', 0.001, 'allow');
  m.upstream('u', 0.001);
  m.verification(0.001, 'valid');
  m.jwksFetch('i', true);
  const text = `${(await m.text()).body}${readinessExposition(true)}`;
  return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((x) => [x[1]!, x[2]!]));
}

/** Metric names a PromQL expression reads, with a histogram's _bucket / _sum / _count mapped to its family. */
function metricsIn(expr: string, families: Map<string, string>): string[] {
  return [...expr.matchAll(/\bmfa_gateway_[a-z_]+\b/g)].map(([name]) => {
    const family = name.replace(/_(bucket|sum|count)$/, '');
    return families.get(family) === 'histogram' ? family : name;
  });
}

interface Rule {
  alert: string;
  expr: string;
}
const rules = (): Rule[] => (YAML.parse(readFileSync(join(DEPLOY, 'prometheus-rules.yaml'), 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);

describe('deploy/prometheus-rules.yaml', () => {
  it('passes promtool check rules, and its unit tests (each alert fires when and where it should)', () => {
    const promtool = tool('promtool', 'prometheus');
    const check = run(promtool, ['check', 'rules', 'prometheus-rules.yaml']);
    expect(check.out + check.err).toContain('SUCCESS: 9 rules found');
    expect(check.code).toBe(0);
    const test = run(promtool, ['test', 'rules', 'prometheus-rules.test.yaml']);
    expect(test.out + test.err).toMatch(/SUCCESS/);
    expect(test.code).toBe(0);
  });

  it('alerts on 5xx, p99 latency, key-set fetches, verifier timeouts, dropped audit lines, internal errors, readiness, a refused reload and a shared-state store away, with metrics that exist', async () => {
    const families = await exportedFamilies();
    const byAlert = new Map(rules().map((r) => [r.alert, metricsIn(r.expr, families)]));
    expect(Object.fromEntries(byAlert)).toEqual({
      MfaGatewayNotReady: ['mfa_gateway_ready'],
      MfaGatewayHigh5xxRatio: ['mfa_gateway_requests_total', 'mfa_gateway_requests_total'],
      MfaGatewayHighLatencyP99: ['mfa_gateway_request_duration_seconds'],
      MfaGatewayJwksFetchFailing: ['mfa_gateway_jwks_fetches_total', 'mfa_gateway_jwks_fetches_total'],
      MfaGatewayVerifierTimeouts: ['mfa_gateway_verifier_timeouts_total'],
      MfaGatewayAuditLinesDropped: ['mfa_gateway_audit_dropped_lines_total'],
      MfaGatewayInternalErrors: ['mfa_gateway_internal_errors_total'],
      MfaGatewayConfigReloadFailed: ['mfa_gateway_config_last_reload_success'],
      MfaGatewayStateStoreDown: ['mfa_gateway_state_store_up'],
    });
    for (const names of byAlert.values()) for (const n of names) expect(families.has(n), n).toBe(true);
  });
});

describe('deploy/grafana-dashboard.json', () => {
  interface Panel {
    type: string;
    title: string;
    targets?: { expr: string }[];
  }
  const dashboard = JSON.parse(readFileSync(join(DEPLOY, 'grafana-dashboard.json'), 'utf8')) as { uid: string; panels: Panel[]; templating: { list: { name: string }[] } };
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

  it('queries only metrics the gateway exports, and covers each of them that matters', async () => {
    const families = await exportedFamilies();
    const used = new Set(exprs.flatMap((e) => metricsIn(e.expr, families)));
    for (const name of used) expect(families.has(name), name).toBe(true);
    for (const name of [
      'mfa_gateway_requests_total',
      'mfa_gateway_request_duration_seconds',
      'mfa_gateway_token_cache_lookups_total',
      'mfa_gateway_verifier_queue_depth',
      'mfa_gateway_verifier_timeouts_total',
      'mfa_gateway_upstream_connections',
      'mfa_gateway_upstream_requests_pending',
      'mfa_gateway_jwks_fetches_total',
      'mfa_gateway_rate_limited_total',
      'mfa_gateway_internal_errors_total',
      'mfa_gateway_audit_dropped_lines_total',
      'mfa_gateway_ready',
      'mfa_gateway_state_store_up',
    ]) {
      expect(used, name).toContain(name);
    }
    expect(exprs.find((e) => e.panel.startsWith('Latency'))!.expr).toMatch(/sum by \(le, route, decision\)/);
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'instance']);
  });

  it('every query is valid PromQL (promtool checks them as recording rules, Grafana variables filled in)', () => {
    const promtool = tool('promtool', 'prometheus');
    const dir = tempDir('mfa-dash-');
    const asRules = {
      groups: [
        {
          name: 'dashboard',
          rules: exprs.map((e, i) => ({
            record: `dashboard:query_${i}`,
            expr: e.expr.replaceAll('$__rate_interval', '5m').replaceAll('$__range', '1h').replaceAll('$instance', '.*'),
          })),
        },
      ],
    };
    writeFileSync(join(dir, 'dashboard-rules.yaml'), YAML.stringify(asRules));
    const r = run(promtool, ['check', 'rules', 'dashboard-rules.yaml'], dir);
    expect(r.out + r.err).toContain(`SUCCESS: ${exprs.length} rules found`);
    expect(r.code).toBe(0);
  });
});
