/**
 * Several gateways, one policy (README "Running several instances"): two built gateway
 * processes share a real redis-server. A per-subject limit is counted across both, a
 * spraying block begun on one is honoured by the other, a revocation on one refuses the
 * token on the other, a DPoP proof accepted by one is refused by the other; then Redis is
 * stopped mid-test and started again on the same port: the gateways keep serving (limits
 * count locally, revocations loaded stay enforced, DPoP follows `state.onStoreDown`:
 * gateway A `closed`, gateway B `open`), `mfa_gateway_state_store_up` goes to 0 and back
 * to 1, `/readyz` stays 200 naming the store's state, and what changed meanwhile reaches
 * the other instance once Redis is back.
 *
 * Nothing waits a fixed time: each step polls for the state it needs (a metric, a key in
 * Redis, an answer) within a generous bound.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseConfig, startGatewayProcess, startUpstream, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';
import { startIdp, type TestIdp } from '../auth/tokens.js';
import { dpopKey, JWT_API, JWT_API_AUDIENCE, startTestOp, type DpopKey, type Login, type TestOp } from '../op.js';
import { auditLine, call, metric, type CallOptions } from '../lifecycle/helpers.js';
import { startRedisServer, waitFor, type RedisServer } from './redis-server.js';

const PREFIX = 'gw-test:';
const ORIGIN = 'https://api.example.com';
const HOUR = 3_600_000;
const UP = 'mfa_gateway_state_store_up';
const SYNCS_OK = 'mfa_gateway_state_syncs_total{result="ok"}';

let redis: RedisServer;
let idp: TestIdp;
let op: TestOp;
let up: Upstream;
let a: GatewayProcess;
let b: GatewayProcess;
let key: DpopKey;
let login: Login;

const config = (onStoreDown: 'closed' | 'open') =>
  baseConfig({
    // Every request names its client in X-Forwarded-For, so each test has addresses of its own.
    server: { drainTimeout: '5s', publicOrigin: ORIGIN, trustedProxies: ['127.0.0.1'] },
    verifier: { threads: 1 },
    issuers: [
      { name: 'idp', issuer: idp.issuer, jwksUri: idp.jwksUri, audience: ['orders-api'] },
      { name: 'op', issuer: op.issuer, discovery: true, audience: [JWT_API_AUDIENCE], algorithms: ['ES256', 'RS256'], typ: 'at+jwt' },
    ],
    upstreams: { app: { url: up.url } },
    routes: [
      { path: '/api/', upstream: 'app', auth: 'token' },
      { path: '/limited/', name: 'limited', upstream: 'app', auth: 'token', rateLimit: { subject: { points: 4, duration: '1h' } } },
    ],
    rateLimit: { spraying: { invalidTokens: 3, window: '1h', block: '15m' } },
    audit: { bufferBytes: 0 },
    state: { store: 'redis', onStoreDown, redis: { url: redis.url, keyPrefix: PREFIX } },
  });

beforeAll(async () => {
  [redis, idp, op, up] = await Promise.all([startRedisServer(), startIdp('/realms/shared'), startTestOp(), startUpstream()]);
  [a, b] = await Promise.all([startGatewayProcess(writeConfig(config('closed'))), startGatewayProcess(writeConfig(config('open')))]);
  key = await dpopKey('ES256');
  login = await op.login({ resource: JWT_API, dpop: key });
}, 60_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await Promise.all([up?.close(), op?.close(), idp?.close(), redis?.close()]);
});

/** A request from client address `client` (X-Forwarded-For: the peer, 127.0.0.1, is a trusted proxy). */
const from = (gw: GatewayProcess, client: string, path: string, o: CallOptions = {}) => call(gw.url, path, { ...o, headers: { 'x-forwarded-for': client, ...o.headers } });
const upMetric = (gw: GatewayProcess) => metric(gw, UP);
const readyz = async (gw: GatewayProcess) => {
  const r = await fetch(`${gw.adminUrl}/readyz`);
  return { status: r.status, body: (await r.json()) as Record<string, unknown> & { state: Record<string, unknown> } };
};
/** Resolves once `gw` finished a sync that began after this call (so every total read back before it is applied). */
const afterNextSync = async (gw: GatewayProcess) => {
  const before = (await metric(gw, SYNCS_OK)) ?? 0;
  await waitFor(() => metric(gw, SYNCS_OK), (n) => (n ?? 0) >= before + 2, 15_000, 'a sync');
};
const logs = (gw: GatewayProcess, msg: string) => gw.logLines().filter((l) => typeof l['msg'] === 'string' && (l['msg'] as string).startsWith(msg));

describe('two gateways sharing one Redis', () => {
  it('connect, report the store up in /readyz and the gauge, and name it in the log', async () => {
    for (const gw of [a, b]) {
      expect(await upMetric(gw)).toBe(1);
      const r = await readyz(gw);
      expect(r.status).toBe(200);
      expect(r.body.state).toMatchObject({ store: 'redis', redis: redis.url, up: true });
      expect(logs(gw, 'state store connected')).toHaveLength(1);
    }
  });

  it('count a per-subject limit across both: a request one admits counts on the other once both synced', async () => {
    // The window is aligned to the hour: start well inside one, so the test never straddles two.
    const left = HOUR - (Date.now() % HOUR);
    if (left < 60_000) await new Promise((r) => setTimeout(r, left + 100));
    const window = Math.floor(Date.now() / HOUR);
    const counter = `${PREFIX}rl:subject:limited:${HOUR}:${window}:idp\u0000carol`;
    const token = await idp.mint({ sub: 'carol' });
    const get = (gw: GatewayProcess) => from(gw, '198.51.100.1', '/limited/x', { token });
    const total = () => redis.client.get(counter).then(Number);

    expect([(await get(a)).status, (await get(a)).status]).toEqual([200, 200]);
    await waitFor(total, (n) => n === 2, 15_000, 'A’s two requests in Redis');
    expect([(await get(b)).status, (await get(b)).status]).toEqual([200, 200]);
    await waitFor(total, (n) => n === 4, 15_000, 'all four requests in Redis');
    await afterNextSync(b);
    // B has learned A's two: its own two and those make the limit of 4.
    const refused = await get(b);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(await auditLine(b, refused.requestId)).toMatchObject({ reason: 'rate_limited', subject: 'carol' });
    // A has not asked Redis since its own sync (nothing of its own to send): the one
    // request it admits on what it last learned is the documented slack of one interval.
    expect((await get(a)).status).toBe(200);
    await waitFor(total, (n) => n === 5, 15_000, 'A’s fifth request in Redis');
    await afterNextSync(a);
    expect((await get(a)).status).toBe(429);
    expect((await get(b)).status).toBe(429);
    expect(Math.floor(Date.now() / HOUR)).toBe(window);
    expect(await redis.client.pttl(counter)).toBeGreaterThan(0); // the counter ends with its window
  });

  it('honour a spraying block begun on one on the other, before any verification there', async () => {
    const sprayer = '203.0.113.9';
    // A bearer token with characters outside b64token costs no verification and is no
    // invalid token: 400 while the address is not blocked, 429 once it is.
    const probe = (gw: GatewayProcess) => from(gw, sprayer, '/api/x', { headers: { authorization: 'Bearer !!' } });
    expect((await probe(b)).status).toBe(400);
    const forged = async () => `${(await idp.mint({ sub: 'mallory' })).slice(0, -6)}AAAAAA`;
    for (let i = 0; i < 3; i++) expect((await from(a, sprayer, '/api/x', { token: await forged() })).status).toBe(401);
    expect((await from(a, sprayer, '/api/x', { token: await forged() })).status).toBe(401); // the fourth: over 3, the block begins
    expect((await from(a, sprayer, '/api/x', { token: await forged() })).status).toBe(429);
    expect(logs(a, 'token spraying: address blocked').map((l) => l['client'])).toEqual([sprayer]);
    expect(Number(await redis.client.zscore(`${PREFIX}spray:blocks`, sprayer))).toBeGreaterThan(Date.now());

    const blocked = await waitFor(() => probe(b), (r) => r.status === 429, 15_000, 'the block on B');
    expect(await auditLine(b, blocked.requestId)).toMatchObject({ reason: 'token_spraying', client: sprayer });
    expect((await from(b, sprayer, '/api/x', { token: await forged() })).status).toBe(429);
    // B began no block of its own: it took A's.
    expect(logs(b, 'token spraying: address blocked')).toEqual([]);
    // Another address is not affected on either.
    expect((await from(b, '203.0.113.10', '/api/x', { headers: { authorization: 'Bearer !!' } })).status).toBe(400);
  });

  it('refuse on the other a token revoked on one (a cached token included), and let it through again when the revocation is lifted', async () => {
    const token = await idp.mint({ sub: 'dave' });
    for (const gw of [a, b]) expect((await from(gw, '198.51.100.2', '/api/x', { token })).status).toBe(200);
    const cached = await from(b, '198.51.100.2', '/api/x', { token });
    expect(await auditLine(b, cached.requestId)).toMatchObject({ reason: 'ok', cache: 'hit' });

    const revoke = (method: 'POST' | 'DELETE') =>
      fetch(`${a.adminUrl}/revocations`, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ issuer: 'idp', sub: 'dave' }) });
    expect((await revoke('POST')).status).toBe(201);
    expect((await from(a, '198.51.100.2', '/api/x', { token })).status).toBe(401);
    const refused = await waitFor(() => from(b, '198.51.100.2', '/api/x', { token }), (r) => r.status === 401, 15_000, 'the revocation on B');
    expect(refused.challenge).toContain('error_description="token revoked"');
    expect(await auditLine(b, refused.requestId)).toMatchObject({ reason: 'revoked', cache: 'hit' });
    expect(await redis.client.hget(`${PREFIX}revocations`, 'idp\u0000sub\u0000dave')).toMatch(/^\d+ \d+$/);
    const listed = (await (await fetch(`${b.adminUrl}/revocations`)).json()) as { entries?: unknown[] } | unknown[];
    expect(JSON.stringify(listed)).toContain('"value":"dave"');

    expect((await revoke('DELETE')).status).toBe(204);
    await waitFor(() => from(b, '198.51.100.2', '/api/x', { token }), (r) => r.status === 200, 15_000, 'the lifted revocation on B');
    expect(await redis.client.hget(`${PREFIX}revocations`, 'idp\u0000sub\u0000dave')).toBeNull();
  });

  it('refuse on the other a DPoP proof one accepted (one SET NX per proof)', async () => {
    expect(login.tokenType).toBe('DPoP');
    const proof = await key.proof('GET', `${ORIGIN}/api/orders`, { accessToken: login.accessToken });
    const dpop = (gw: GatewayProcess, p: string) => from(gw, '198.51.100.3', '/api/orders', { token: login.accessToken, scheme: 'DPoP', proofs: [p] });
    expect((await dpop(a, proof)).status).toBe(200);
    const replayed = await dpop(b, proof);
    expect(replayed.status).toBe(401);
    expect(replayed.challenge).toContain('error="invalid_dpop_proof"');
    expect(await auditLine(b, replayed.requestId)).toMatchObject({ reason: 'dpop_replayed' });
    // A fresh proof passes on B, and is then refused on A.
    const next = await key.proof('GET', `${ORIGIN}/api/orders`, { accessToken: login.accessToken });
    expect((await dpop(b, next)).status).toBe(200);
    expect((await dpop(a, next)).status).toBe(401);
  });

  it('keep serving while Redis is stopped, and share again once it is back on the same port', async () => {
    const before = await idp.mint({ sub: 'erin' }); // revoked before the outage
    const during = await idp.mint({ sub: 'frank' }); // revoked on A during it
    const limited = await idp.mint({ sub: 'gina' });
    for (const t of [before, during]) for (const gw of [a, b]) expect((await from(gw, '198.51.100.4', '/api/x', { token: t })).status).toBe(200);
    await fetch(`${a.adminUrl}/revocations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ issuer: 'idp', sub: 'erin' }) });
    await waitFor(() => from(b, '198.51.100.4', '/api/x', { token: before }), (r) => r.status === 401, 15_000, 'erin revoked on B');

    await redis.stop();
    for (const gw of [a, b]) await waitFor(() => upMetric(gw), (v) => v === 0, 15_000, 'the gauge at 0');
    for (const gw of [a, b]) {
      const r = await readyz(gw);
      expect(r.status).toBe(200);
      expect(r.body.status).toBe('ready');
      expect(r.body.state).toMatchObject({ store: 'redis', up: false, error: expect.any(String) });
      expect(logs(gw, 'state store down')).toHaveLength(1);
    }
    // Revocations already loaded stay enforced; other tokens pass.
    expect((await from(b, '198.51.100.4', '/api/x', { token: before })).status).toBe(401);
    expect((await from(b, '198.51.100.4', '/api/x', { token: during })).status).toBe(200);
    // Limits count locally: A alone still stops gina at 4.
    const get = () => from(a, '198.51.100.5', '/limited/x', { token: limited });
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await get()).status);
    expect(statuses).toEqual([200, 200, 200, 200, 429]);
    expect(logs(a, 'state store down')).toHaveLength(1); // once per outage, whatever happens meanwhile

    // DPoP: A (closed) answers 503 temporarily_unavailable; B (open) accepts on its own replay check, and says so.
    const dpop = async (gw: GatewayProcess, p?: string) =>
      from(gw, '198.51.100.6', '/api/orders', { token: login.accessToken, scheme: 'DPoP', proofs: [p ?? (await key.proof('GET', `${ORIGIN}/api/orders`, { accessToken: login.accessToken }))] });
    const closed = await dpop(a);
    expect(closed.status).toBe(503);
    expect(closed.body).toMatchObject({ error: 'temporarily_unavailable' });
    expect(closed.headers['retry-after']).toBe('1');
    expect(await auditLine(a, closed.requestId)).toMatchObject({ reason: 'replay_check_unavailable' });
    const proof = await key.proof('GET', `${ORIGIN}/api/orders`, { accessToken: login.accessToken });
    expect((await dpop(b, proof)).status).toBe(200);
    expect((await dpop(b, proof)).status).toBe(401); // its own replay check still holds
    expect(logs(b, 'DPoP proof accepted on this instance')).toHaveLength(1);

    // A revocation on A during the outage: in force on A at once; B cannot know yet.
    const r = await fetch(`${a.adminUrl}/revocations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ issuer: 'idp', sub: 'frank' }) });
    expect(r.status).toBe(201);
    expect((await from(a, '198.51.100.4', '/api/x', { token: during })).status).toBe(401);
    expect((await from(b, '198.51.100.4', '/api/x', { token: during })).status).toBe(200);

    await redis.start();
    for (const gw of [a, b]) await waitFor(() => upMetric(gw), (v) => v === 1, 15_000, 'the gauge back at 1');
    for (const gw of [a, b]) {
      expect((await readyz(gw)).body.state).toMatchObject({ up: true });
      expect(logs(gw, 'state store up again')).toHaveLength(1);
    }
    // What A revoked meanwhile reaches B; the list Redis lost in its restart is written back.
    await waitFor(() => from(b, '198.51.100.4', '/api/x', { token: during }), (x) => x.status === 401, 15_000, 'frank revoked on B');
    await waitFor(() => redis.client.hlen(`${PREFIX}revocations`), (n) => n === 2, 15_000, 'both revocations in Redis again');
    expect((await from(b, '198.51.100.4', '/api/x', { token: before })).status).toBe(401);
    // DPoP is checked across instances again.
    const fresh = await key.proof('GET', `${ORIGIN}/api/orders`, { accessToken: login.accessToken });
    expect((await dpop(a, fresh)).status).toBe(200);
    expect((await dpop(b, fresh)).status).toBe(401);
  });

  it('take a Redis that stops answering with its connections open for down too: DPoP answers 503 within commandTimeout', async () => {
    redis.pause();
    try {
      for (const gw of [a, b]) await waitFor(() => upMetric(gw), (v) => v === 0, 15_000, 'the gauge at 0 with Redis hung');
      expect((await readyz(a)).body.state).toMatchObject({ up: false, error: 'Command timed out' });
      const proof = await key.proof('GET', `${ORIGIN}/api/orders`, { accessToken: login.accessToken });
      const r = await from(a, '198.51.100.7', '/api/orders', { token: login.accessToken, scheme: 'DPoP', proofs: [proof] });
      expect(r.status).toBe(503);
      expect(await auditLine(a, r.requestId)).toMatchObject({ reason: 'replay_check_unavailable' });
      expect(logs(a, 'state store down')).toHaveLength(2); // one line for this second outage
    } finally {
      redis.resume();
    }
    for (const gw of [a, b]) await waitFor(() => upMetric(gw), (v) => v === 1, 15_000, 'the gauge back at 1');
  });
});
