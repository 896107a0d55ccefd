/**
 * `server.threads: 2` with `state.store: redis` (README "Threads"): the main thread's
 * hub hands every thread's counts on to Redis with the instance's sync, and what other
 * instances publish (revocations, spraying blocks) reaches every thread. Gateway A runs
 * two threads, gateway B one; both share a real redis-server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { baseConfig, startGatewayProcess, startUpstream, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';
import { startIdp, type TestIdp } from '../auth/tokens.js';
import { startRedisServer, waitFor, type RedisServer } from '../state/redis-server.js';
import { fresh, metricsText, samples } from './helpers.js';

const PREFIX = 'gw-threads:';
const HOUR = 3_600_000;

let redis: RedisServer;
let idp: TestIdp;
let up: Upstream;
let a: GatewayProcess;
let b: GatewayProcess;

const config = (threads: number) =>
  baseConfig({
    server: { threads, drainTimeout: '5s', trustedProxies: ['127.0.0.1'] },
    issuers: [{ name: 'idp', issuer: idp.issuer, jwksUri: idp.jwksUri, audience: ['orders-api'] }],
    upstreams: { app: { url: up.url } },
    routes: [
      { path: '/api/', upstream: 'app', auth: 'token' },
      { path: '/limited/', name: 'limited', upstream: 'app', auth: 'token', rateLimit: { subject: { points: 1000, duration: '1h' } } },
    ],
    rateLimit: { spraying: { invalidTokens: 3, window: '1h', block: '15m' } },
    state: { store: 'redis', syncInterval: '100ms', redis: { url: redis.url, keyPrefix: PREFIX } },
  });

beforeAll(async () => {
  [redis, idp, up] = await Promise.all([startRedisServer(), startIdp('/realms/threads'), startUpstream()]);
  [a, b] = await Promise.all([startGatewayProcess(writeConfig(config(2))), startGatewayProcess(writeConfig(config(1)))]);
}, 60_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await Promise.all([up?.close(), idp?.close(), redis?.close()]);
});

describe('two threads sharing state with other instances through Redis', () => {
  it('send the counts of both threads to the window counter in Redis', async () => {
    // The window is aligned to the hour: start well inside one.
    const left = HOUR - (Date.now() % HOUR);
    if (left < 60_000) await new Promise((r) => setTimeout(r, left + 100));
    const window = Math.floor(Date.now() / HOUR);
    const sub = `counted-${randomUUID()}`;
    const token = await idp.mint({ sub });
    const n = 30;
    const answers = await Promise.all(Array.from({ length: n }, (_, i) => fresh(`${a.url}/limited/x-${i}`, { authorization: `Bearer ${token}`, 'x-forwarded-for': '198.51.100.1' })));
    expect(answers.map((r) => r.status)).toEqual(Array.from({ length: n }, () => 200));
    const perThread = samples(await metricsText(a), 'mfa_gateway_thread_requests_total');
    expect([...perThread.values()].every((v) => v > 0)).toBe(true);
    const counter = `${PREFIX}rl:subject:limited:${HOUR}:${window}:idp\u0000${sub}`;
    expect(await waitFor(() => redis.client.get(counter).then(Number), (v) => v === n, 15_000, 'every count in Redis')).toBe(n);
  });

  it('refuse on every thread a token revoked on the other instance', async () => {
    const sub = `revoked-${randomUUID()}`;
    const token = await idp.mint({ sub, iat: Math.floor(Date.now() / 1000) - 5 });
    const auth = { authorization: `Bearer ${token}`, 'x-forwarded-for': '198.51.100.2' };
    expect((await fresh(`${a.url}/api/before`, auth)).status).toBe(200);
    const res = await request(`${b.adminUrl}/revocations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ issuer: 'idp', sub }) });
    expect(res.statusCode).toBe(201);
    await res.body.text();
    await waitFor(() => fresh(`${a.url}/api/probe`, auth).then((r) => r.status), (s) => s === 401, 15_000, 'the revocation on A');
    const after = await Promise.all(Array.from({ length: 20 }, (_, i) => fresh(`${a.url}/api/after-${i}`, auth)));
    expect(after.map((r) => r.status)).toEqual(Array.from({ length: 20 }, () => 401));
  });

  it('block on every thread an address the other instance blocked for spraying', async () => {
    const client = '198.51.100.3';
    const forged = (await idp.mint({ sub: 'x' })).slice(0, -4) + 'AAAA';
    for (let i = 0; i < 4; i++) await fresh(`${b.url}/api/spray-${i}`, { authorization: `Bearer ${forged}`, 'x-forwarded-for': client });
    expect((await fresh(`${b.url}/api/spray`, { authorization: `Bearer ${forged}`, 'x-forwarded-for': client })).status).toBe(429);
    const valid = await idp.mint({ sub: `sprayer-${randomUUID()}` });
    await waitFor(() => fresh(`${a.url}/api/probe`, { authorization: `Bearer ${valid}`, 'x-forwarded-for': client }).then((r) => r.status), (s) => s === 429, 15_000, 'the block on A');
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => fresh(`${a.url}/api/blocked-${i}`, { authorization: `Bearer ${valid}`, 'x-forwarded-for': client })));
    expect(answers.map((r) => r.status)).toEqual(Array.from({ length: 20 }, () => 429));
    // Another address is served.
    expect((await fresh(`${a.url}/api/other`, { authorization: `Bearer ${valid}`, 'x-forwarded-for': '198.51.100.4' })).status).toBe(200);
  });
});
