import { describe, expect, it } from 'vitest';
import { LATENCY_BUCKETS, createMetrics } from '../../../src/observe/metrics.js';
import type { AuditReason } from '../../../src/observe/audit.js';

/** Parses exposition text into `name{labels}` → value (labels as printed). */
function series(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}
const names = (s: Map<string, number>, prefix: string): string[] => [...s.keys()].filter((k) => k.startsWith(prefix));

describe('createMetrics', () => {
  it('counts requests by route, status and reason, and observes their latency per route and decision', async () => {
    const m = createMetrics({ defaultMetrics: false });
    const before = series((await m.text()).body);
    expect(names(before, 'mfa_gateway_requests_total')).toEqual([]);

    m.request('orders', 200, 'ok', 0.0007, 'allow');
    m.request('orders', 200, 'ok', 0.002, 'allow');
    m.request('orders', 401, 'expired', 0.00004, 'deny');
    m.request('refunds', 401, 'mfa_required', 0.00009, 'deny');
    m.request(null, 404, 'not_found', 0.00002, 'deny');
    const { contentType, body } = await m.text();
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const s = series(body);
    expect(s.get('mfa_gateway_requests_total{route="orders",status="200",reason="ok"}')).toBe(2);
    expect(s.get('mfa_gateway_requests_total{route="orders",status="401",reason="expired"}')).toBe(1);
    expect(s.get('mfa_gateway_requests_total{route="refunds",status="401",reason="mfa_required"}')).toBe(1);
    expect(s.get('mfa_gateway_requests_total{route="(none)",status="404",reason="not_found"}')).toBe(1);
    expect(names(s, 'mfa_gateway_requests_total')).toHaveLength(4);

    // Histogram: cumulative buckets, +Inf = count, sum; one per route and decision.
    const b = (le: string, decision = 'allow') => s.get(`mfa_gateway_request_duration_seconds_bucket{route="orders",decision="${decision}",le="${le}"}`);
    expect(b('0.0001')).toBe(0);
    expect(b('0.001')).toBe(1); // 0.0007 (le is inclusive)
    expect(b('0.0025')).toBe(2); // + 0.002
    expect(b('30')).toBe(2);
    expect(b('+Inf')).toBe(2);
    expect(b('0.0001', 'deny')).toBe(1); // 0.00004
    expect(b('+Inf', 'deny')).toBe(1);
    expect(s.get('mfa_gateway_request_duration_seconds_count{route="orders",decision="allow"}')).toBe(2);
    expect(s.get('mfa_gateway_request_duration_seconds_sum{route="orders",decision="allow"}')).toBeCloseTo(0.0027, 10);
    expect(s.get('mfa_gateway_request_duration_seconds_count{route="orders",decision="deny"}')).toBe(1);
    expect(s.get('mfa_gateway_request_duration_seconds_count{route="refunds",decision="deny"}')).toBe(1);
    expect(s.get('mfa_gateway_request_duration_seconds_count{route="(none)",decision="deny"}')).toBe(1);
    expect(names(s, 'mfa_gateway_request_duration_seconds_bucket{route="orders",decision="allow"')).toHaveLength(LATENCY_BUCKETS.length + 1);
  });

  it('follows the naming conventions: counters end in _total, the ratio in _ratio, and build_info is 1', async () => {
    const m = createMetrics({ defaultMetrics: false, build: { version: '9.9.9', node: '20.20.2', uws: '20.30.0-unofficial.0' } });
    m.setCollectors({ verifierUtilization: () => 0.5, auditDropped: () => 3 });
    const text = (await m.text()).body;
    for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      if (type === 'counter') expect(name).toMatch(/_total$/);
      if (name!.endsWith('_total')) expect(type).toBe('counter');
    }
    expect(text).toMatch(/^# TYPE mfa_gateway_audit_dropped_lines_total counter$/m);
    expect(text).toMatch(/^# TYPE mfa_gateway_verifier_utilization_ratio gauge$/m);
    const s = series(text);
    expect(s.get('mfa_gateway_audit_dropped_lines_total')).toBe(3);
    expect(s.get('mfa_gateway_verifier_utilization_ratio')).toBe(0.5);
    expect(s.get('mfa_gateway_build_info{version="9.9.9",node="20.20.2",uws="20.30.0-unofficial.0"}')).toBe(1);
    expect(names(s, 'mfa_gateway_audit_dropped_lines{')).toEqual([]);
    expect(s.has('mfa_gateway_verifier_utilization')).toBe(false);
    // Without a build given, the package's own versions.
    const own = series((await createMetrics({ defaultMetrics: false }).text()).body);
    const info = names(own, 'mfa_gateway_build_info');
    expect(info).toEqual([`mfa_gateway_build_info{version="0.1.0",node="${process.versions.node}",uws="20.30.0-unofficial.0"}`]);
  });

  it('puts a bucket bound in its own bucket and values beyond the largest bound only in +Inf', async () => {
    const m = createMetrics({ defaultMetrics: false });
    m.upstream('orders', 0.001);
    m.upstream('orders', 31);
    const s = series((await m.text()).body);
    expect(s.get('mfa_gateway_upstream_duration_seconds_bucket{upstream="orders",le="0.0005"}')).toBe(0);
    expect(s.get('mfa_gateway_upstream_duration_seconds_bucket{upstream="orders",le="0.001"}')).toBe(1);
    expect(s.get('mfa_gateway_upstream_duration_seconds_bucket{upstream="orders",le="30"}')).toBe(1);
    expect(s.get('mfa_gateway_upstream_duration_seconds_bucket{upstream="orders",le="+Inf"}')).toBe(2);
  });

  it('moves the cache, verification, rate-limit, spraying and JWKS metrics by the expected amounts', async () => {
    const m = createMetrics({ defaultMetrics: false });
    for (let i = 0; i < 5; i++) m.cache('hit');
    m.cache('miss');
    m.cache('negative');
    m.cache('negative');
    m.verification(0.00007, 'valid');
    m.verification(0.0002, 'invalid');
    m.verification(5, 'error');
    m.rateLimited('address');
    m.rateLimited('spraying');
    m.rateLimited('spraying');
    m.sprayingBlocked();
    m.jwksFetch('corp', true);
    m.jwksFetch('corp', true);
    m.jwksFetch('corp', false);
    m.jwksFetch('partner', false);
    const s = series((await m.text()).body);
    expect(s.get('mfa_gateway_token_cache_lookups_total{outcome="hit"}')).toBe(5);
    expect(s.get('mfa_gateway_token_cache_lookups_total{outcome="miss"}')).toBe(1);
    expect(s.get('mfa_gateway_token_cache_lookups_total{outcome="negative"}')).toBe(2);
    expect(s.get('mfa_gateway_verification_duration_seconds_count{outcome="valid"}')).toBe(1);
    expect(s.get('mfa_gateway_verification_duration_seconds_bucket{outcome="valid",le="0.0001"}')).toBe(1);
    expect(s.get('mfa_gateway_verification_duration_seconds_count{outcome="invalid"}')).toBe(1);
    expect(s.get('mfa_gateway_verification_duration_seconds_bucket{outcome="error",le="2.5"}')).toBe(0);
    expect(s.get('mfa_gateway_verification_duration_seconds_count{outcome="error"}')).toBe(1);
    expect(s.get('mfa_gateway_rate_limited_total{kind="address"}')).toBe(1);
    expect(s.get('mfa_gateway_rate_limited_total{kind="subject"}')).toBe(0);
    expect(s.get('mfa_gateway_rate_limited_total{kind="spraying"}')).toBe(2);
    expect(s.get('mfa_gateway_spraying_blocks_total')).toBe(1);
    expect(s.get('mfa_gateway_jwks_fetches_total{issuer="corp",result="ok"}')).toBe(2);
    expect(s.get('mfa_gateway_jwks_fetches_total{issuer="corp",result="error"}')).toBe(1);
    expect(s.get('mfa_gateway_jwks_fetches_total{issuer="partner",result="error"}')).toBe(1);
    expect(s.get('mfa_gateway_jwks_fetches_total{issuer="partner",result="ok"}')).toBe(0);
  });

  it('reads gauges from the collectors at scrape time, and forgets upstreams no longer reported', async () => {
    const m = createMetrics({ defaultMetrics: false });
    let size = 10;
    let pools = [
      { upstream: 'orders', connected: 3, pending: 1, running: 2 },
      { upstream: 'billing', connected: 1, pending: 0, running: 0 },
    ];
    m.setCollectors({ cacheSize: () => size, negativeCacheSize: () => size * 2, verifierQueue: () => 4, verifierUtilization: () => 0.25, pools: () => pools, auditDropped: () => 7 });
    let s = series((await m.text()).body);
    expect(s.get('mfa_gateway_token_cache_entries')).toBe(10);
    expect(s.get('mfa_gateway_token_negative_cache_entries')).toBe(20);
    expect(s.get('mfa_gateway_verifier_queue_depth')).toBe(4);
    expect(s.get('mfa_gateway_verifier_utilization_ratio')).toBe(0.25);
    expect(s.get('mfa_gateway_audit_dropped_lines_total')).toBe(7);
    expect(s.get('mfa_gateway_upstream_connections{upstream="orders"}')).toBe(3);
    expect(s.get('mfa_gateway_upstream_requests_pending{upstream="orders"}')).toBe(1);
    expect(s.get('mfa_gateway_upstream_requests_running{upstream="orders"}')).toBe(2);
    expect(s.get('mfa_gateway_upstream_connections{upstream="billing"}')).toBe(1);
    size = 11;
    pools = [{ upstream: 'orders', connected: 5, pending: 0, running: 5 }];
    s = series((await m.text()).body);
    expect(s.get('mfa_gateway_token_cache_entries')).toBe(11);
    expect(s.get('mfa_gateway_token_negative_cache_entries')).toBe(22);
    expect(s.get('mfa_gateway_upstream_connections{upstream="orders"}')).toBe(5);
    expect(s.has('mfa_gateway_upstream_connections{upstream="billing"}')).toBe(false);
  });

  it('keeps label sets bounded: unknown reasons, odd statuses and too many route names collapse', async () => {
    const m = createMetrics({ defaultMetrics: false });
    // A raw path passed by mistake, and other junk, never becomes a label value.
    m.request('orders', 200, '/orders/12345' as AuditReason, 0.001, 'allow');
    m.request('orders', 200, 'not a reason' as AuditReason, 0.001, 'allow');
    m.request('orders', 7, 'ok', 0.001, 'allow');
    m.request('orders', 200.5, 'ok', 0.001, 'allow');
    for (let i = 0; i < 3000; i++) m.request(`route-${i}`, 200, 'ok', 0.001, 'allow');
    for (let i = 0; i < 3000; i++) m.upstream(`up-${i}`, 0.001);
    const s = series((await m.text()).body);
    expect(s.get('mfa_gateway_requests_total{route="orders",status="200",reason="other"}')).toBe(2);
    expect(s.get('mfa_gateway_requests_total{route="orders",status="0",reason="ok"}')).toBe(2);
    const reqSeries = names(s, 'mfa_gateway_requests_total');
    expect(reqSeries.length).toBeLessThanOrEqual(1002);
    expect(reqSeries.some((k) => k.includes('/orders/'))).toBe(false);
    expect(s.get('mfa_gateway_requests_total{route="other",status="200",reason="ok"}')).toBe(3000 - 999);
    const routes = new Set(names(s, 'mfa_gateway_request_duration_seconds_count').map((k) => k));
    expect(routes.size).toBeLessThanOrEqual(2 * 1001); // allow and deny per route
    expect(names(s, 'mfa_gateway_upstream_duration_seconds_count').length).toBeLessThanOrEqual(1001);
    expect(s.get('mfa_gateway_upstream_duration_seconds_count{upstream="other"}')).toBe(2000);
  });

  it('uses its own registry with mfa_gateway_ names, plus the standard process and event-loop metrics', async () => {
    const a = createMetrics();
    const b = createMetrics();
    a.cache('hit');
    const s = series((await a.text()).body);
    const sb = series((await b.text()).body);
    expect(s.get('mfa_gateway_token_cache_lookups_total{outcome="hit"}')).toBe(1);
    expect(sb.get('mfa_gateway_token_cache_lookups_total{outcome="hit"}')).toBe(0);
    expect([...s.keys()].some((k) => k.startsWith('nodejs_eventloop_lag_p99_seconds'))).toBe(true);
    const own = [...s.keys()].filter((k) => !k.startsWith('nodejs_') && !k.startsWith('process_'));
    expect(own.length).toBeGreaterThan(0);
    for (const k of own) expect(k).toMatch(/^mfa_gateway_/);
  });
});
