/**
 * Issue 5 from outside the built gateway: metrics that move by known amounts after
 * known traffic, 429s with Retry-After per address and per subject, trusted-proxy
 * handling of X-Forwarded-For, the token-spraying guard (no verification work, logged
 * once per block), and a key-set outage that keeps the last good keys and shows on
 * /readyz and in the log, followed by a key rotation picked up after one cooldown.
 *
 * Each test speaks as its own client address (127.0.0.2 is a trusted proxy, so its
 * X-Forwarded-For names the client), so limits and spraying counters never mix.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import type { JWTPayload } from 'jose';
import { baseConfig, startGatewayProcess, startUpstream, tempDir, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';
import { makeKey, sign, startIdp, type IdpServer, type MintOptions, type TestKey } from '../authn/idp.js';
import { recordToken } from '../leaks.js';

const COOLDOWN_MS = 300;

let rs: TestKey;
let attacker: TestKey;
let idp: IdpServer;
let up: Upstream;
let gw: GatewayProcess;
let dir: string;
/** Connects from 127.0.0.2, the trusted proxy. */
let proxy: Agent;
/** Connects from 127.0.0.3, an ordinary (untrusted) peer. */
let stranger: Agent;
const held: (() => void)[] = [];
const releaseHeld = () => held.splice(0).forEach((f) => f());
const now = () => Math.floor(Date.now() / 1000);

function claims(extra: JWTPayload = {}): JWTPayload {
  return { iss: idp.issuer, aud: 'orders-api', sub: 'alice', iat: now(), exp: now() + 600, jti: randomUUID(), ...extra };
}
const mint = (extra: JWTPayload = {}, options: MintOptions = {}, key: TestKey = rs): Promise<string> => sign(key, claims(extra), options);

beforeAll(async () => {
  [rs, attacker] = await Promise.all([makeKey('RS256', 'rs-1'), makeKey('RS256', 'attacker-1')]);
  idp = await startIdp([rs.jwk], '/realms/corp');
  up = await startUpstream((req, res) => {
    if (req.url!.includes('hold')) {
      held.push(() => res.end('released'));
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ xff: req.headers['x-forwarded-for'] ?? null }));
  });
  // Node's default. The harness's 2 s hint minus undici's default keepAliveTimeoutThreshold
  // (2 s) would make the gateway close every upstream connection after one request.
  up.server.keepAliveTimeout = 5000;
  dir = tempDir('mfa-metrics-');
  gw = await startGatewayProcess(
    writeConfig(
      baseConfig({
        server: { trustedProxies: ['127.0.0.2'] },
        verifier: { threads: 2, jwksCooldown: `${COOLDOWN_MS}ms`, cache: { negativeTtl: '1m' } },
        issuers: [{ name: 'corp', issuer: idp.issuer, discovery: true, audience: ['orders-api'], algorithms: ['RS256'] }],
        upstreams: { app: { url: up.url }, one: { url: up.url, connections: 1, maxQueue: 10 } },
        audit: { destination: 'audit.log', flushInterval: '50ms' },
        rateLimit: { spraying: { invalidTokens: 5, window: '1m', block: '15m' } },
        routes: [
          { path: '/orders/', name: 'orders', upstream: 'app', auth: 'token' },
          { path: '/limited/', name: 'limited', upstream: 'app', auth: 'none', rateLimit: { address: { points: 2, duration: '1m' } } },
          { path: '/subject/', name: 'subject', upstream: 'app', auth: 'token', rateLimit: { subject: { points: 1, duration: '1m' } } },
          { path: '/one/', name: 'one', upstream: 'one', auth: 'none' },
        ],
      }),
      dir,
    ),
  );
  proxy = new Agent({ localAddress: '127.0.0.2' });
  stranger = new Agent({ localAddress: '127.0.0.3' });
});

afterAll(async () => {
  releaseHeld();
  await gw?.stop();
  await Promise.all([proxy?.close(), stranger?.close(), up?.close(), idp?.close()]);
});

interface Answer {
  id: string;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** A request as client `client` (through the trusted proxy), or from `from` as it is. */
async function call(path: string, o: { token?: string; client?: string; from?: Agent; xff?: string } = {}): Promise<Answer> {
  const id = `m-${randomUUID()}`;
  const headers: Record<string, string> = { 'x-request-id': id };
  if (o.token !== undefined) headers['authorization'] = `Bearer ${recordToken(o.token)}`; // forged ones too (test/leaks)
  const xff = o.xff ?? o.client;
  if (xff !== undefined) headers['x-forwarded-for'] = xff;
  const res = await request(`${gw.url}${path}`, { headers, dispatcher: o.from ?? (o.client !== undefined ? proxy : undefined) });
  return { id, status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

async function scrape(): Promise<Map<string, number>> {
  const res = await request(`${gw.adminUrl}/metrics`);
  expect(res.statusCode).toBe(200);
  const out = new Map<string, number>();
  for (const line of (await res.body.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}
const v = (m: Map<string, number>, series: string): number => m.get(series) ?? 0;
/** How much a series moved between two scrapes; it must exist in the later one (a missing series is not a 0). */
const delta = (a: Map<string, number>, b: Map<string, number>, series: string): number => {
  expect(b.has(series), `${series} is not exported`).toBe(true);
  return v(b, series) - v(a, series);
};

async function auditLine(id: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 200; i++) {
    let text = '';
    try {
      text = readFileSync(join(dir, 'audit.log'), 'utf8');
    } catch {
      /* not flushed yet */
    }
    const line = text
      .split('\n')
      .slice(0, -1)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l['request_id'] === id);
    if (line) return line;
    await sleep(25);
  }
  throw new Error(`no audit line for ${id}`);
}

/** The operational log's JSON lines (stdout). */
function logLines(): Record<string, unknown>[] {
  return gw
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('metrics', () => {
  it('requests, latencies, cache outcomes, cache size and verifications move by the expected amounts', async () => {
    const client = '192.0.2.1';
    const good = await mint();
    const [h, p] = good.split('.');
    const bad = `${h}.${p}.${'A'.repeat(342)}`;
    const a = await scrape();
    expect((await call('/orders/1', { token: good, client })).status).toBe(200); // miss, verified
    expect((await call('/orders/2', { token: good, client })).status).toBe(200); // hit
    expect((await call('/orders/3', { token: bad, client })).status).toBe(401); // miss, verified, invalid
    expect((await call('/orders/4', { token: bad, client })).status).toBe(401); // negative hit
    expect((await call('/orders/5', { client })).status).toBe(401); // no token: no look-up at all
    const b = await scrape();

    expect(delta(a, b, 'mfa_gateway_requests_total{route="orders",status="200",reason="ok"}')).toBe(2);
    expect(delta(a, b, 'mfa_gateway_requests_total{route="orders",status="401",reason="bad_signature"}')).toBe(2);
    expect(delta(a, b, 'mfa_gateway_requests_total{route="orders",status="401",reason="credentials_missing"}')).toBe(1);
    // Latency by decision: the two proxied requests, and the three the gateway answered itself.
    expect(delta(a, b, 'mfa_gateway_request_duration_seconds_count{route="orders",decision="allow"}')).toBe(2);
    expect(delta(a, b, 'mfa_gateway_request_duration_seconds_count{route="orders",decision="deny"}')).toBe(3);
    expect(delta(a, b, 'mfa_gateway_request_duration_seconds_bucket{route="orders",decision="deny",le="+Inf"}')).toBe(3);
    expect(delta(a, b, 'mfa_gateway_upstream_duration_seconds_count{upstream="app"}')).toBe(2);
    expect(delta(a, b, 'mfa_gateway_token_cache_lookups_total{outcome="miss"}')).toBe(2);
    expect(delta(a, b, 'mfa_gateway_token_cache_lookups_total{outcome="hit"}')).toBe(1);
    expect(delta(a, b, 'mfa_gateway_token_cache_lookups_total{outcome="negative"}')).toBe(1);
    expect(delta(a, b, 'mfa_gateway_verification_duration_seconds_count{outcome="valid"}')).toBe(1);
    expect(delta(a, b, 'mfa_gateway_verification_duration_seconds_count{outcome="invalid"}')).toBe(1);
    expect(delta(a, b, 'mfa_gateway_token_cache_entries')).toBe(1);
    for (const kind of ['address', 'subject', 'spraying']) expect(delta(a, b, `mfa_gateway_rate_limited_total{kind="${kind}"}`)).toBe(0);
    // Verifier gauges: nothing waits now, and the workers have done some work.
    expect(b.get('mfa_gateway_verifier_queue_depth')).toBe(0);
    expect(v(b, 'mfa_gateway_verifier_utilization_ratio')).toBeGreaterThan(0);
    // Event-loop delay, under the standard Node.js names.
    for (const s of ['nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_p99_seconds']) {
      expect(b.has(s), s).toBe(true);
      expect(Number.isFinite(b.get(s))).toBe(true);
    }
    // Label values are config names and vocabulary words, never raw paths.
    expect([...b.keys()].some((k) => k.includes('/orders/'))).toBe(false);
  });

  it('upstream pool gauges: connected, pending and running per upstream', async () => {
    const before = up.received.length;
    const first = call('/one/hold-1');
    const second = call('/one/hold-2');
    // connections: 1, so one request runs and the other waits in the pool.
    let m = await scrape();
    for (let i = 0; i < 200 && !(v(m, 'mfa_gateway_upstream_requests_running{upstream="one"}') === 1 && v(m, 'mfa_gateway_upstream_requests_pending{upstream="one"}') === 1); i++) {
      await sleep(10);
      m = await scrape();
    }
    expect(v(m, 'mfa_gateway_upstream_requests_running{upstream="one"}')).toBe(1);
    expect(v(m, 'mfa_gateway_upstream_requests_pending{upstream="one"}')).toBe(1);
    expect(v(m, 'mfa_gateway_upstream_connections{upstream="one"}')).toBe(1);
    expect(up.received.length).toBe(before + 1);
    releaseHeld();
    for (let i = 0; i < 200 && up.received.length < before + 2; i++) await sleep(10);
    releaseHeld();
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
    m = await scrape();
    expect(v(m, 'mfa_gateway_upstream_requests_running{upstream="one"}')).toBe(0);
    expect(v(m, 'mfa_gateway_upstream_requests_pending{upstream="one"}')).toBe(0);
    expect(v(m, 'mfa_gateway_upstream_connections{upstream="one"}')).toBe(1); // kept alive for the next request
  });

  it('JWKS fetches and failures per issuer, and the negative cache size', async () => {
    const a = await scrape();
    expect(v(a, 'mfa_gateway_jwks_fetches_total{issuer="corp",result="ok"}')).toBeGreaterThanOrEqual(1); // the start-up load
    idp.failWith(500);
    try {
      await sleep(COOLDOWN_MS + 50);
      expect((await call('/orders/1', { token: await mint({}, { header: { kid: randomUUID() } }, attacker), client: '192.0.2.9' })).status).toBe(401);
    } finally {
      idp.failWith(null);
    }
    await sleep(COOLDOWN_MS + 50);
    expect((await call('/orders/1', { token: await mint({}, { header: { kid: randomUUID() } }, attacker), client: '192.0.2.9' })).status).toBe(401);
    const b = await scrape();
    expect(delta(a, b, 'mfa_gateway_jwks_fetches_total{issuer="corp",result="error"}')).toBe(1);
    // The refetch by the second unknown kid; on a slow machine the background retry after
    // the failure (about 1 s later, src/authn/jwks.ts) may come first and count as well.
    expect(delta(a, b, 'mfa_gateway_jwks_fetches_total{issuer="corp",result="ok"}')).toBeGreaterThanOrEqual(1);
    expect(delta(a, b, 'mfa_gateway_jwks_fetches_total{issuer="corp",result="ok"}')).toBeLessThanOrEqual(2);
    expect(v(b, 'mfa_gateway_token_negative_cache_entries')).toBeGreaterThanOrEqual(1);
  });
});

describe('rate limits', () => {
  it('per address: 429 with Retry-After within the window, counted; another address has its own counter', async () => {
    const a = await scrape();
    expect((await call('/limited/1', { client: '192.0.2.2' })).status).toBe(200);
    expect((await call('/limited/2', { client: '192.0.2.2' })).status).toBe(200);
    const third = await call('/limited/3', { client: '192.0.2.2' });
    expect(third.status).toBe(429);
    const wait = Number(third.headers['retry-after']);
    expect(Number.isInteger(wait)).toBe(true);
    expect(wait).toBeGreaterThanOrEqual(1);
    expect(wait).toBeLessThanOrEqual(60);
    expect(JSON.parse(third.text)).toMatchObject({ error: 'rate_limited', request_id: third.id });
    expect((await call('/limited/4', { client: '192.0.2.3' })).status).toBe(200);
    const b = await scrape();
    expect(delta(a, b, 'mfa_gateway_rate_limited_total{kind="address"}')).toBe(1);
    expect(delta(a, b, 'mfa_gateway_requests_total{route="limited",status="429",reason="rate_limited"}')).toBe(1);
  });

  it('per subject: 429 with Retry-After for the second request of one subject, whatever the token or address', async () => {
    const a = await scrape();
    expect((await call('/subject/1', { token: await mint({ sub: 'erin' }), client: '192.0.2.4' })).status).toBe(200);
    const second = await call('/subject/2', { token: await mint({ sub: 'erin' }), client: '192.0.2.5' });
    expect(second.status).toBe(429);
    expect(Number(second.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(second.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect((await call('/subject/3', { token: await mint({ sub: 'frank' }), client: '192.0.2.4' })).status).toBe(200);
    const b = await scrape();
    expect(delta(a, b, 'mfa_gateway_rate_limited_total{kind="subject"}')).toBe(1);
  });
});

describe('trusted proxies', () => {
  it('an untrusted peer: its X-Forwarded-For is ignored for the client address, replaced upstream, and no way around a limit', async () => {
    const r = await call('/orders/x', { from: stranger, xff: '203.0.113.9', token: await mint() });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toEqual({ xff: '127.0.0.3' });
    expect((await auditLine(r.id))['client']).toBe('127.0.0.3');
    // A new spoofed address on every request does not reset the per-address counter.
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await call('/limited/s', { from: stranger, xff: `203.0.113.${100 + i}` })).status);
    expect(statuses).toEqual([200, 200, 429]);
  });

  it('a trusted proxy: the right-most address it did not add itself is the client, and the chain is appended to', async () => {
    const r = await call('/orders/y', { from: proxy, xff: '203.0.113.9', token: await mint() });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text)).toEqual({ xff: '203.0.113.9, 127.0.0.2' });
    expect((await auditLine(r.id))['client']).toBe('203.0.113.9');
    // What the client wrote further left is not believed.
    const spoof = await call('/orders/z', { from: proxy, xff: '6.6.6.6, 203.0.113.10', token: await mint() });
    expect((await auditLine(spoof.id))['client']).toBe('203.0.113.10');
    // Without X-Forwarded-For the proxy itself is the client.
    const bare = await call('/orders/w', { from: proxy, token: await mint() });
    expect((await auditLine(bare.id))['client']).toBe('127.0.0.2');
  });
});

describe('token spraying', () => {
  it('blocks after more than N invalid tokens, without verification work, logs the block once, and spares other clients', async () => {
    const client = '198.51.100.20';
    const fresh = await mint(); // never seen by the gateway
    for (let i = 0; i < 5; i++) expect((await call('/orders/s', { token: `g.${randomUUID()}.${i}`, client })).status).toBe(401);
    const a = await scrape();
    // The sixth invalid token is still answered 401 (it was verified), and starts the block.
    expect((await call('/orders/s', { token: `g.${randomUUID()}.6`, client })).status).toBe(401);
    const b = await scrape();
    const blocked = await call('/orders/s', { token: fresh, client });
    expect(blocked.status).toBe(429);
    const wait = Number(blocked.headers['retry-after']);
    expect(wait).toBeGreaterThan(800);
    expect(wait).toBeLessThanOrEqual(900);
    expect(await auditLine(blocked.id)).toMatchObject({ reason: 'token_spraying', client, cache: null, verify_ms: null, token_hash: null });
    // More of the same, valid and invalid: all refused, none looked up or verified.
    for (let i = 0; i < 10; i++) expect((await call('/orders/s', { token: i % 2 ? fresh : `g.${randomUUID()}`, client })).status).toBe(429);
    const c = await scrape();
    for (const s of [
      'mfa_gateway_token_cache_lookups_total{outcome="hit"}',
      'mfa_gateway_token_cache_lookups_total{outcome="miss"}',
      'mfa_gateway_token_cache_lookups_total{outcome="negative"}',
      'mfa_gateway_verification_duration_seconds_count{outcome="valid"}',
      'mfa_gateway_verification_duration_seconds_count{outcome="invalid"}',
      'mfa_gateway_verification_duration_seconds_count{outcome="error"}',
    ]) {
      expect(delta(b, c, s), s).toBe(0);
    }
    expect(delta(b, c, 'mfa_gateway_rate_limited_total{kind="spraying"}')).toBe(11);
    expect(delta(a, c, 'mfa_gateway_spraying_blocks_total')).toBe(1);
    expect(delta(b, c, 'mfa_gateway_requests_total{route="orders",status="429",reason="token_spraying"}')).toBe(11);
    // Logged once for the block, not once per request.
    const logged = logLines().filter((l) => l['msg'] === 'token spraying: address blocked');
    expect(logged.filter((l) => l['client'] === client)).toHaveLength(1);
    // Another client with the same (valid) token is served, and that is when it gets verified.
    expect((await call('/orders/t', { token: fresh, client: '198.51.100.21' })).status).toBe(200);
    const d = await scrape();
    expect(delta(c, d, 'mfa_gateway_verification_duration_seconds_count{outcome="valid"}')).toBe(1);
  });
});

describe('key sets', () => {
  it('a failed refetch keeps the last good keys and shows on /readyz and in the log; a rotated key is accepted after one cooldown', async () => {
    const client = '192.0.2.50';
    const hits = idp.jwksHits();
    idp.failWith(500);
    try {
      await sleep(COOLDOWN_MS + 50); // let the cooldown of the last fetch pass, so an unknown kid may refetch
      const unknown = await call('/orders/k', { token: await mint({}, { header: { kid: 'not-yet-published' } }, attacker), client });
      expect(unknown.status).toBe(401);
      expect(unknown.headers['www-authenticate']).toMatch(/error_description="unknown signing key"/);
      expect(idp.jwksHits()).toBe(hits + 1);
      const ready = await request(`${gw.adminUrl}/readyz`);
      expect(ready.statusCode).toBe(200); // still ready: the last good keys serve
      const body = (await ready.body.json()) as { status: string; issuers: Record<string, { ok: boolean; error?: string }> };
      expect(body.status).toBe('ready');
      expect(body.issuers['corp']).toMatchObject({ ok: true, error: expect.stringMatching(/HTTP 500/) });
      // A token signed with a key we already hold still passes.
      expect((await call('/orders/k', { token: await mint(), client })).status).toBe(200);
      // The log says so, as a warning that names the issuer.
      let warned: Record<string, unknown> | undefined;
      for (let i = 0; i < 100 && !warned; i++) {
        warned = logLines().find((l) => l['msg'] === 'key set fetch failed' && l['issuer'] === 'corp');
        if (!warned) await sleep(20);
      }
      expect(warned).toMatchObject({ level: 'warn', servingPreviousKeys: true, cause: 'http_status', error: expect.stringMatching(/HTTP 500/) });
    } finally {
      idp.failWith(null);
    }
    // Rotation: the IdP publishes a new key; a token signed with it is accepted on the first
    // request after the cooldown (one refetch), and /readyz clears the error.
    const rotated = await makeKey('RS256', 'rs-2');
    idp.setKeys([rs.jwk, rotated.jwk]);
    await sleep(COOLDOWN_MS + 50);
    const r = await call('/orders/r', { token: await mint({}, {}, rotated), client });
    expect(r.status).toBe(200);
    // The refetch by the rotated kid, and perhaps the background retry after the failure
    // (about 1 s after it), if this machine was slow enough to reach it first.
    expect(idp.jwksHits()).toBeGreaterThanOrEqual(hits + 2);
    expect(idp.jwksHits()).toBeLessThanOrEqual(hits + 3);
    const after = (await (await request(`${gw.adminUrl}/readyz`)).body.json()) as { issuers: Record<string, { ok: boolean; error?: string }> };
    expect(after.issuers['corp']?.ok).toBe(true);
    expect(after.issuers['corp']?.error).toBeUndefined();
  });
});
