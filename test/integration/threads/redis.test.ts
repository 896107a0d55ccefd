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
import { dpopKey, JWT_API, JWT_API_AUDIENCE, startTestOp, type DpopKey, type Login, type TestOp } from '../op.js';
import { connectionPerThread, fresh, metricsText, onConnection, samples } from './helpers.js';

const PREFIX = 'gw-threads:';
const ORIGIN = 'https://api.example.com';
const HOUR = 3_600_000;

let redis: RedisServer;
let idp: TestIdp;
let up: Upstream;
let a: GatewayProcess;
let b: GatewayProcess;
let op: TestOp;
let key: DpopKey;
let login: Login;

const config = (threads: number) =>
  baseConfig({
    server: { threads, drainTimeout: '5s', trustedProxies: ['127.0.0.1'], publicOrigin: ORIGIN },
    issuers: [
      { name: 'idp', issuer: idp.issuer, jwksUri: idp.jwksUri, audience: ['orders-api'] },
      { name: 'op', issuer: op.issuer, discovery: true, audience: [JWT_API_AUDIENCE], algorithms: ['ES256', 'RS256'], typ: 'at+jwt' },
    ],
    upstreams: { app: { url: up.url } },
    routes: [
      { path: '/public/', upstream: 'app', auth: 'none' },
      { path: '/api/', upstream: 'app', auth: 'token' },
      { path: '/limited/', name: 'limited', upstream: 'app', auth: 'token', rateLimit: { subject: { points: 1000, duration: '1h' } } },
    ],
    rateLimit: { spraying: { invalidTokens: 3, window: '1h', block: '15m' } },
    state: { store: 'redis', syncInterval: '100ms', onStoreDown: 'closed', redis: { url: redis.url, keyPrefix: PREFIX, commandTimeout: '300ms' } },
  });

beforeAll(async () => {
  [redis, idp, up, op] = await Promise.all([startRedisServer(), startIdp('/realms/threads'), startUpstream(), startTestOp()]);
  [a, b] = await Promise.all([startGatewayProcess(writeConfig(config(2))), startGatewayProcess(writeConfig(config(1)))]);
  key = await dpopKey('ES256');
  login = await op.login({ resource: JWT_API, dpop: key });
}, 60_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await Promise.all([up?.close(), idp?.close(), op?.close(), redis?.close()]);
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

  it('check DPoP proofs once per process, and answer 503 on every thread while Redis does not answer (onStoreDown: closed)', async () => {
    const [x, y] = await connectionPerThread(a, '/public/');
    const headers = (proof: string, client: string) => ({ authorization: `DPoP ${login.accessToken}`, dpop: proof, 'x-forwarded-for': client });
    const proof = () => key.proof('GET', `${ORIGIN}/api/orders`, { accessToken: login.accessToken });
    try {
      // One proof on thread X, then again on thread Y: the replay store is the process's.
      const once = await proof();
      expect(await onConnection(x, '/api/orders', headers(once, '198.51.100.5'))).toBe(200);
      expect(await onConnection(y, '/api/orders', headers(once, '198.51.100.5'))).toBe(401);
      redis.pause();
      try {
        await waitFor(async () => samples(await metricsText(a), 'mfa_gateway_state_store_up').get(''), (v) => v === 0, 15_000, 'the gauge at 0 with Redis hung');
        // A fresh proof that Redis cannot check: 503 on both threads (ReplayUnavailableError crosses to the thread).
        expect(await onConnection(x, '/api/orders', headers(await proof(), '198.51.100.6'))).toBe(503);
        expect(await onConnection(y, '/api/orders', headers(await proof(), '198.51.100.6'))).toBe(503);
        const unavailable = () => a.logLines().filter((l) => l['msg'] === 'audit' && l['client'] === '198.51.100.6' && l['reason'] === 'replay_check_unavailable' && l['status'] === 503);
        await waitFor(() => unavailable().length, (n) => n === 2, 15_000, 'both audit lines');
      } finally {
        redis.resume();
      }
      await waitFor(async () => samples(await metricsText(a), 'mfa_gateway_state_store_up').get(''), (v) => v === 1, 15_000, 'the gauge back at 1');
      expect(await onConnection(y, '/api/orders', headers(await proof(), '198.51.100.7'))).toBe(200);
    } finally {
      await Promise.all([x.destroy(), y.destroy()]);
    }
  }, 60_000);
});
