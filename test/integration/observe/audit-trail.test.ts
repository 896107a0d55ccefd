/**
 * The audit trail of the built gateway, request by request (issue 5): one JSON line per
 * request, with every field, for the allow and for every deny reason the gateway can
 * reach from outside (path, method, credentials, each token failure, each MFA and RBAC
 * failure, rate limits, token spraying, verifier and upstream failures, client abort,
 * shutdown).
 *
 * Every token this file mints, and every attack token it builds, goes into a ledger;
 * at the end, with the gateway stopped and its buffers flushed, the audit file and
 * everything the process printed (operational log at level trace) are searched for
 * each token, its payload and signature segments, and the unique `jti` inside it.
 * This covers everything one gateway process wrote during the traffic of this file;
 * test/leaks/no-token-in-output.test.ts does the same for the whole run (every gateway,
 * demo and CLI process, every token every file minted).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { exportSPKI, type JWTPayload } from 'jose';
import { baseConfig, startGatewayProcess, startUpstream, tempDir, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';
import { b64, makeKey, REFUSED_PORT, sign, signRawRs256, startIdp, startTrap, type IdpServer, type MintOptions, type TestKey } from '../authn/idp.js';
import { recordToken } from '../leaks.js';

let rs: TestKey;
let es: TestKey;
let attacker: TestKey;
let partnerKey: TestKey;
let corp: IdpServer;
let partner: IdpServer;
let down: IdpServer;
let trap: Awaited<ReturnType<typeof startTrap>>;
let up: Upstream;
let gw: GatewayProcess;
let dir: string;
let proxy: Agent;

/** Every token sent (minted or forged), and the unique jti inside each minted one. */
const ledger: string[] = [];
const markers: string[] = [];
/** Every x-request-id sent, in order. */
const ids: string[] = [];
/** Upstream requests held open until released. */
const held: (() => void)[] = [];
const releaseHeld = () => held.splice(0).forEach((f) => f());

const now = () => Math.floor(Date.now() / 1000);
const keep = (t: string): string => {
  ledger.push(t);
  return recordToken(t); // and into the whole-run leak check's list (test/leaks)
};

function claims(extra: JWTPayload = {}, iss?: string): JWTPayload {
  const jti = `jti-${randomUUID()}`;
  markers.push(jti);
  return {
    iss: iss ?? corp.issuer,
    aud: 'orders-api',
    sub: 'alice',
    iat: now(),
    exp: now() + 600,
    jti,
    amr: ['pwd', 'otp'],
    acr: 'phr',
    auth_time: now() - 60,
    realm_access: { roles: ['orders.reader'] },
    scope: 'openid orders:read',
    groups: ['ops'],
    ...extra,
  };
}

async function mint(extra: JWTPayload = {}, options: MintOptions = {}, key: TestKey = rs): Promise<string> {
  return keep(await sign(key, claims(extra), options));
}

beforeAll(async () => {
  [rs, es, attacker, partnerKey] = await Promise.all([
    makeKey('RS256', 'rs-1'),
    makeKey('ES256', 'es-1'),
    makeKey('RS256', 'attacker-1'),
    makeKey('ES256', 'p-1'),
  ]);
  corp = await startIdp([rs.jwk, es.jwk], '/realms/corp');
  partner = await startIdp([partnerKey.jwk], '/realms/partner');
  down = await startIdp([rs.jwk], '/realms/down');
  down.failWith(503); // this IdP never serves keys: its tokens meet a verifier with nothing to verify with
  trap = await startTrap({ keys: [attacker.jwk] });
  up = await startUpstream((req, res) => {
    if (req.url!.includes('hold') || req.url!.startsWith('/slow/')) {
      held.push(() => res.end('released'));
      return;
    }
    res.setHeader('content-type', 'text/plain');
    res.end('ok');
  });

  dir = tempDir('mfa-audit-trail-');
  gw = await startGatewayProcess(
    writeConfig(
      baseConfig({
        server: { drainTimeout: '30s', maxBodyBytes: 1024, trustedProxies: ['127.0.0.2'] },
        verifier: { threads: 2, maxTokenBytes: 4096, jwksCooldown: '1h' },
        issuers: [
          {
            name: 'corp',
            issuer: corp.issuer,
            discovery: true,
            audience: ['orders-api'],
            algorithms: ['RS256', 'ES256'],
            typ: 'at+jwt',
            claims: { roles: 'realm_access.roles', groups: 'groups' },
          },
          { name: 'partner', issuer: partner.issuer, jwksUri: partner.jwksUri, audience: ['orders-api'], algorithms: ['ES256'] },
          { name: 'down', issuer: down.issuer, jwksUri: down.jwksUri, audience: ['orders-api'], algorithms: ['RS256'] },
        ],
        upstreams: {
          app: { url: up.url },
          dead: { url: `http://127.0.0.1:${REFUSED_PORT}` },
          slow: { url: up.url, timeouts: { headers: '300ms' } },
          tight: { url: up.url, connections: 1, maxQueue: 0 },
        },
        mfa: { amr: ['mfa'], maxAge: '1h' },
        audit: { destination: 'audit.log', flushInterval: '50ms' },
        rateLimit: { spraying: { invalidTokens: 40, window: '1m', block: '15m' } },
        routes: [
          { path: '/public/', name: 'public', upstream: 'app', auth: 'none' },
          { path: '/get-only/', name: 'get-only', upstream: 'app', auth: 'none', methods: ['GET'] },
          { path: '/limited/', name: 'limited', upstream: 'app', auth: 'none', rateLimit: { address: { points: 1, duration: '1m' } } },
          { path: '/orders/', name: 'orders', upstream: 'app', issuers: ['corp'], roles: ['orders.reader'], scopes: ['orders:read'], groups: ['ops'] },
          { path: '/refunds/', name: 'refunds', upstream: 'app', issuers: ['corp'], mfa: { maxAge: '5m' }, acr: ['phr'] },
          { path: '/token/', name: 'token', upstream: 'app', auth: 'token' },
          { path: '/subject/', name: 'subject', upstream: 'app', auth: 'token', rateLimit: { subject: { points: 1, duration: '1m' } } },
          { path: '/dead/', name: 'dead', upstream: 'dead', auth: 'token' },
          { path: '/slow/', name: 'slow', upstream: 'slow', auth: 'token' },
          { path: '/tight/', name: 'tight', upstream: 'tight', auth: 'none' },
        ],
      }),
      dir,
    ),
    // The most verbose operational log: whatever the gateway can say, it says here.
    { MFA_GATEWAY_LOG_LEVEL: 'trace' },
  );
  proxy = new Agent({ localAddress: '127.0.0.2' });
});

afterAll(async () => {
  releaseHeld();
  await gw?.stop();
  await proxy?.close();
  await Promise.all([up?.close(), corp?.close(), partner?.close(), down?.close(), trap?.close()]);
});

// --- requests and audit lines -------------------------------------------------------------

let seq = 0;
const nextId = (): string => {
  const id = `trail-${++seq}`;
  ids.push(id);
  return id;
};

interface Answer {
  id: string;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function call(
  path: string,
  o: { token?: string; headers?: Record<string, string>; method?: string; body?: string; from?: Agent; signal?: AbortSignal } = {},
): Promise<Answer> {
  const id = nextId();
  const res = await request(`${gw.url}${path}`, {
    method: (o.method ?? 'GET') as 'GET',
    headers: { 'x-request-id': id, ...(o.token !== undefined ? { authorization: `Bearer ${o.token}` } : {}), ...o.headers },
    ...(o.body !== undefined ? { body: o.body } : {}),
    ...(o.from ? { dispatcher: o.from } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
  });
  const text = await res.body.text();
  return { id, status: res.statusCode, headers: res.headers, text };
}

/** Sends `head` (request line and headers, no blank line) and `body` on a fresh connection; resolves with the status. */
function raw(head: string, body = ''): Promise<{ id: string; status: number; text: string }> {
  const id = nextId();
  return new Promise((resolve, reject) => {
    const sock = connect(gw.port, '127.0.0.1', () => sock.write(`${head}\r\nx-request-id: ${id}\r\nconnection: close\r\n\r\n${body}`));
    let text = '';
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (text += d));
    sock.on('error', () => {}); // the gateway may close while the body is still being sent
    sock.on('close', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (m) resolve({ id, status: Number(m[1]), text });
      else reject(new Error(`no answer: ${JSON.stringify(text.slice(0, 200))}`));
    });
  });
}

type Line = Record<string, unknown>;

function auditLines(): Line[] {
  let text = '';
  try {
    text = readFileSync(join(dir, 'audit.log'), 'utf8');
  } catch {
    return []; // the file appears with the first flush
  }
  // Only complete lines: the last one may still be half written.
  return text
    .split('\n')
    .slice(0, -1)
    .map((l) => JSON.parse(l) as Line);
}

async function lineFor(id: string): Promise<Line> {
  for (let i = 0; i < 200; i++) {
    const line = auditLines().find((l) => l['request_id'] === id);
    if (line) return line;
    await sleep(25);
  }
  throw new Error(`no audit line for ${id}`);
}

const FIELDS = [
  'level', 'time', 'msg', 'request_id', 'client', 'method', 'path', 'route', 'upstream', 'status', 'decision', 'reason', 'issuer',
  'subject', 'amr', 'acr', 'token_hash', 'cache', 'total_ms', 'verify_ms', 'upstream_ms',
].sort();
const HASH = /^[0-9a-f]{16}$/;

/** The audit line of `id` has every field, and these values. */
async function expectLine(id: string, want: Line): Promise<Line> {
  const line = await lineFor(id);
  expect(Object.keys(line).sort(), id).toEqual(FIELDS);
  expect(line).toMatchObject({ level: 'info', msg: 'audit' });
  expect(Number.isNaN(Date.parse(line['time'] as string))).toBe(false);
  expect(typeof line['total_ms']).toBe('number');
  expect(line, `audit line of ${id}`).toMatchObject(want);
  return line;
}

/** A token failure (401 invalid_token): the line names the reason, the token only as a hash. */
async function expectTokenFailure(a: Answer, reason: string, cache: 'miss' | 'negative' = 'miss'): Promise<void> {
  expect(a.status, reason).toBe(401);
  expect(a.headers['www-authenticate'], reason).toMatch(/error="invalid_token"/);
  await expectLine(a.id, {
    status: 401,
    decision: 'deny',
    reason,
    route: 'orders',
    upstream: 'app',
    issuer: null,
    subject: null,
    amr: null,
    acr: null,
    token_hash: expect.stringMatching(HASH),
    cache,
    upstream_ms: null,
  });
}

// --- the traffic ---------------------------------------------------------------------------

describe('allow', () => {
  it('a valid token: allow line with every field; again: a cache hit with the same hash and no verification time', async () => {
    const t = await mint({ sub: 'alice' });
    const a = await call('/orders/1?q=1', { token: t });
    expect(a.status).toBe(200);
    const first = await expectLine(a.id, {
      client: '127.0.0.1',
      method: 'GET',
      path: '/orders/1',
      route: 'orders',
      upstream: 'app',
      status: 200,
      decision: 'allow',
      reason: 'ok',
      issuer: 'corp',
      subject: 'alice',
      amr: ['pwd', 'otp'],
      acr: 'phr',
      token_hash: expect.stringMatching(HASH),
      cache: 'miss',
      verify_ms: expect.any(Number),
      upstream_ms: expect.any(Number),
    });
    const b = await call('/orders/2', { token: t });
    expect(b.status).toBe(200);
    await expectLine(b.id, { decision: 'allow', reason: 'ok', cache: 'hit', token_hash: first['token_hash'], verify_ms: null, upstream_ms: expect.any(Number) });
    // Another token has another hash.
    const c = await call('/orders/3', { token: await mint() });
    expect((await lineFor(c.id))['token_hash']).not.toBe(first['token_hash']);
  });
});

describe('deny before any token is looked at', () => {
  it('bad path, ambiguous framing, oversized headers and body, no route, wrong method', async () => {
    const t = await mint();
    const badPath = await call('/public/a%2Fb', { token: t });
    expect(badPath.status).toBe(400);
    await expectLine(badPath.id, { status: 400, decision: 'deny', reason: 'bad_path', path: null, route: null, token_hash: null, cache: null });

    // Differing Content-Length values (uWS itself drops Content-Length with Transfer-Encoding unanswered).
    const framing = await raw(`POST /orders/1 HTTP/1.1\r\nhost: t\r\nauthorization: Bearer ${t}\r\ncontent-length: 5\r\ncontent-length: 6`, 'hello!');
    expect(framing.status).toBe(400);
    await expectLine(framing.id, { status: 400, decision: 'deny', reason: 'bad_request', path: null, token_hash: null });

    const big = await raw(`GET /orders/1 HTTP/1.1\r\nhost: t\r\nauthorization: Bearer ${t}\r\nx-filler: ${'f'.repeat(17 * 1024)}`);
    expect(big.status).toBe(431);
    await expectLine(big.id, { status: 431, decision: 'deny', reason: 'headers_too_large', token_hash: null });

    const body = await raw(`POST /public/upload HTTP/1.1\r\nhost: t\r\ncontent-length: 2048`, 'x'.repeat(2048));
    expect(body.status).toBe(413);
    await expectLine(body.id, { status: 413, decision: 'deny', reason: 'payload_too_large' });

    const nowhere = await call('/nowhere', { token: t });
    expect(nowhere.status).toBe(404);
    await expectLine(nowhere.id, { status: 404, decision: 'deny', reason: 'not_found', path: '/nowhere', route: null, upstream: null, token_hash: null });

    const method = await call('/get-only/x', { method: 'DELETE' });
    expect(method.status).toBe(405);
    await expectLine(method.id, { status: 405, decision: 'deny', reason: 'method_not_allowed', route: 'get-only', upstream: 'app' });
  });

  it('per-address rate limit: 429 with Retry-After, reason rate_limited', async () => {
    expect((await call('/limited/a')).status).toBe(200);
    const second = await call('/limited/b');
    expect(second.status).toBe(429);
    expect(Number(second.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(second.headers['retry-after'])).toBeLessThanOrEqual(60);
    await expectLine(second.id, { status: 429, decision: 'deny', reason: 'rate_limited', route: 'limited', client: '127.0.0.1' });
  });
});

describe('credentials', () => {
  it('no bearer token in Authorization: credentials_missing, whatever else carries a token', async () => {
    const t = await mint();
    const cases: Answer[] = [
      await call('/orders/1'),
      await call(`/orders/1?access_token=${t}`),
      await call('/orders/1', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `access_token=${t}` }),
      await call('/orders/1', { headers: { cookie: `access_token=${t}` } }),
      await call('/orders/1', { headers: { 'proxy-authorization': `Bearer ${t}` } }),
      await call('/orders/1', { headers: { 'x-access-token': t } }),
      await call('/orders/1', { headers: { authorization: `Token ${t}` } }),
    ];
    for (const a of cases) {
      expect(a.status, a.id).toBe(401);
      expect(a.headers['www-authenticate']).toBe('Bearer realm="mfa-gateway"');
      await expectLine(a.id, { status: 401, decision: 'deny', reason: 'credentials_missing', token_hash: null, cache: null, path: '/orders/1' });
    }
  });

  it('two Authorization headers or an empty bearer token: invalid_request', async () => {
    const t = await mint();
    const two = await raw(`GET /orders/1 HTTP/1.1\r\nhost: t\r\nauthorization: Bearer ${t}\r\nauthorization: Bearer ${t}`);
    expect(two.status).toBe(400);
    await expectLine(two.id, { status: 400, decision: 'deny', reason: 'invalid_request', token_hash: null });
    const empty = await call('/orders/1', { headers: { authorization: 'Bearer ' } });
    expect(empty.status).toBe(400);
    await expectLine(empty.id, { status: 400, decision: 'deny', reason: 'invalid_request' });
  });
});

describe('token failures: one line per reason', () => {
  it('malformed, too large, unknown issuer', async () => {
    await expectTokenFailure(await call('/orders/1', { token: keep(`garbage.${randomUUID()}.token`) }), 'malformed');
    const huge = keep(`${b64({ alg: 'RS256', kid: 'rs-1' })}.${b64(claims({ pad: 'x'.repeat(5000) }))}.${'A'.repeat(342)}`);
    const big = await call('/orders/1', { token: huge });
    expect(big.status).toBe(401);
    // Refused before the token is even kept for hashing.
    await expectLine(big.id, { status: 401, decision: 'deny', reason: 'too_large', token_hash: null, cache: null });
    await expectTokenFailure(await call('/orders/1', { token: await mint({ iss: 'https://evil.example/realms/corp' }) }), 'unknown_issuer');
  });

  it('alg none, HS256 with the RSA public key, a key of the wrong type', async () => {
    const none = keep(`${b64({ alg: 'none', kid: 'rs-1', typ: 'at+jwt' })}.${b64(claims())}.`);
    await expectTokenFailure(await call('/orders/1', { token: none }), 'alg_not_allowed');
    const pem = new TextEncoder().encode(await exportSPKI(rs.publicKey));
    const hs = keep(await sign({ privateKey: pem, kid: 'rs-1', alg: 'HS256' }, claims()));
    await expectTokenFailure(await call('/orders/1', { token: hs }), 'alg_not_allowed');
    await expectTokenFailure(await call('/orders/1', { token: await mint({}, { header: { kid: 'rs-1' } }, es) }), 'alg_not_allowed');
  });

  it('tampered payload, stripped signature, another key under a published kid; a replay is a negative hit', async () => {
    const good = await mint();
    const [h, p, s] = good.split('.');
    const tampered = keep(`${h}.${b64({ ...(JSON.parse(Buffer.from(p!, 'base64url').toString()) as object), realm_access: { roles: ['admin'] } })}.${s}`);
    await expectTokenFailure(await call('/orders/1', { token: tampered }), 'bad_signature');
    await expectTokenFailure(await call('/orders/1', { token: tampered }), 'bad_signature', 'negative');
    await expectTokenFailure(await call('/orders/1', { token: keep(`${h}.${p}.`) }), 'bad_signature');
    await expectTokenFailure(await call('/orders/1', { token: await mint({}, { header: { kid: 'rs-1' } }, attacker) }), 'bad_signature');
  });

  it('unknown kid, an embedded jwk, and jku / x5u that the named server never hears about', async () => {
    await expectTokenFailure(await call('/orders/1', { token: await mint({}, {}, attacker) }), 'unknown_kid');
    await expectTokenFailure(await call('/orders/1', { token: await mint({}, { header: { kid: 'attacker-2', jwk: attacker.jwk } }, attacker) }), 'unknown_kid');
    const pointed = await mint({}, { header: { kid: 'attacker-3', jku: `${trap.url}/jwks.json`, x5u: `${trap.url}/cert.pem` } }, attacker);
    await expectTokenFailure(await call('/orders/1', { token: pointed }), 'unknown_kid');
    expect(trap.requests).toEqual([]);
  });

  it('expired, not yet valid, no exp, wrong audience, ID token as access token, unknown crit, invalid claim', async () => {
    await expectTokenFailure(await call('/orders/1', { token: await mint({ exp: now() - 600 }) }), 'expired');
    await expectTokenFailure(await call('/orders/1', { token: await mint({ nbf: now() + 600, exp: now() + 1200 }) }), 'not_yet_valid');
    await expectTokenFailure(await call('/orders/1', { token: await mint({ exp: undefined }) }), 'exp_missing');
    await expectTokenFailure(await call('/orders/1', { token: await mint({ aud: 'payroll-api' }) }), 'wrong_audience');
    await expectTokenFailure(await call('/orders/1', { token: await mint({}, { header: { typ: 'JWT' } }) }), 'wrong_typ');
    const crit = keep(await signRawRs256(rs, { alg: 'RS256', kid: 'rs-1', typ: 'at+jwt', crit: ['urn:x'], 'urn:x': 1 }, claims()));
    await expectTokenFailure(await call('/orders/1', { token: crit }), 'crit_unsupported');
    await expectTokenFailure(await call('/orders/1', { token: await mint({ exp: 'tomorrow' as unknown as number }) }), 'claim_invalid');
  });

  it('issuer not allowed on the route, even for a token the cache already holds from a route that allows it', async () => {
    const t = keep(await sign(partnerKey, claims({}, partner.issuer)));
    const allowed = await call('/token/1', { token: t });
    expect(allowed.status).toBe(200);
    await expectLine(allowed.id, { decision: 'allow', issuer: 'partner', cache: 'miss' });
    // The cached claims are reused; the decision is not: this route takes corp tokens only.
    const refused = await call('/orders/1', { token: t });
    expect(refused.status).toBe(401);
    expect(refused.headers['www-authenticate']).toMatch(/error="invalid_token"/);
    await expectLine(refused.id, { status: 401, decision: 'deny', reason: 'issuer_not_allowed', issuer: 'partner', subject: 'alice', cache: 'hit' });
  });

  it('an issuer whose keys never loaded: 503 verifier_unavailable with Retry-After', async () => {
    const t = keep(await sign(rs, claims({}, down.issuer)));
    const a = await call('/token/1', { token: t });
    expect(a.status).toBe(503);
    expect(Number(a.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    await expectLine(a.id, { status: 503, decision: 'deny', reason: 'verifier_unavailable', route: 'token', cache: 'miss', token_hash: expect.stringMatching(HASH) });
  });
});

describe('MFA and RBAC', () => {
  it('one line per policy reason, with the principal', async () => {
    const cases: [string, string, number, string][] = [
      ['/orders/1', await mint({ amr: ['pwd'] }), 401, 'mfa_required'],
      ['/orders/1', await mint({ auth_time: undefined }), 401, 'auth_time_missing'],
      ['/refunds/1', await mint({ auth_time: now() - 600 }), 401, 'auth_too_old'],
      ['/refunds/1', await mint({ acr: 'basic' }), 401, 'acr_insufficient'],
      ['/orders/1', await mint({ realm_access: { roles: ['billing'] } }), 403, 'role_missing'],
      ['/orders/1', await mint({ scope: 'openid' }), 403, 'scope_missing'],
      ['/orders/1', await mint({ groups: ['sales'] }), 403, 'group_missing'],
    ];
    for (const [path, token, status, reason] of cases) {
      const a = await call(path, { token });
      expect(a.status, reason).toBe(status);
      await expectLine(a.id, {
        status,
        decision: 'deny',
        reason,
        issuer: 'corp',
        subject: 'alice',
        amr: expect.any(Array),
        token_hash: expect.stringMatching(HASH),
        cache: 'miss',
        upstream_ms: null,
      });
    }
  });

  it('per-subject rate limit: 429 with Retry-After after the policy allowed, with the subject on the line', async () => {
    const t = await mint({ sub: 'carol' });
    expect((await call('/subject/1', { token: t })).status).toBe(200);
    const second = await call('/subject/2', { token: await mint({ sub: 'carol' }) });
    expect(second.status).toBe(429);
    expect(Number(second.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    await expectLine(second.id, { status: 429, decision: 'deny', reason: 'rate_limited', subject: 'carol', issuer: 'corp', route: 'subject' });
  });

  it('token spraying: the blocked address gets 429 before its token is even extracted', async () => {
    const client = '198.51.100.7';
    for (let i = 0; i < 41; i++) {
      const a = await call('/orders/s', { token: keep(`spray.${randomUUID()}.${i}`), from: proxy, headers: { 'x-forwarded-for': client } });
      expect(a.status).toBe(401);
    }
    const blocked = await call('/orders/s', { token: await mint(), from: proxy, headers: { 'x-forwarded-for': client } });
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(800);
    await expectLine(blocked.id, { status: 429, decision: 'deny', reason: 'token_spraying', client, token_hash: null, cache: null, verify_ms: null });
  });
});

describe('upstream outcomes (the policy allowed: decision allow)', () => {
  it('refused connection 502, timeout 504, full queue 503, client gone 499', async () => {
    const t = await mint({ sub: 'dave' });
    const dead = await call('/dead/1', { token: t });
    expect(dead.status).toBe(502);
    await expectLine(dead.id, { status: 502, decision: 'allow', reason: 'upstream_unavailable', upstream: 'dead', subject: 'dave', cache: 'miss' });

    const slow = await call('/slow/1', { token: t });
    expect(slow.status).toBe(504);
    await expectLine(slow.id, { status: 504, decision: 'allow', reason: 'upstream_timeout', upstream: 'slow', cache: 'hit' });

    const before = up.received.length;
    const holding = call('/tight/hold');
    for (let i = 0; i < 200 && up.received.length === before; i++) await sleep(10);
    const full = await call('/tight/2');
    expect(full.status).toBe(503);
    expect(Number(full.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    await expectLine(full.id, { status: 503, reason: 'overloaded', route: 'tight', upstream: 'tight' });
    releaseHeld();
    expect((await holding).status).toBe(200);

    const ac = new AbortController();
    const count = up.received.length;
    const gone = call('/token/hold', { token: t, signal: ac.signal });
    for (let i = 0; i < 200 && up.received.length === count; i++) await sleep(10);
    ac.abort();
    await expect(gone).rejects.toThrow();
    const id = ids.at(-1)!;
    await expectLine(id, { status: 499, decision: 'allow', reason: 'client_aborted', subject: 'dave', route: 'token' });
    releaseHeld();
  });
});

describe('shutdown, then the whole trail', () => {
  it('a request on a kept-alive connection during the drain: 503 shutting_down', async () => {
    const sock = connect(gw.port, '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', () => r()));
    const first = nextId();
    expect(await exchange(sock, `GET /public/ka HTTP/1.1\r\nhost: t\r\nx-request-id: ${first}\r\n\r\n`)).toMatch(/^HTTP\/1\.1 200 /);
    // Something in flight keeps the drain open.
    const before = up.received.length;
    const inflight = call('/public/hold');
    for (let i = 0; i < 200 && up.received.length === before; i++) await sleep(10);
    gw.proc.kill('SIGTERM');
    for (let i = 0; i < 200 && !gw.stdout().includes('"msg":"draining"'); i++) await sleep(10);
    const last = nextId();
    const t = await mint();
    expect(await exchange(sock, `GET /orders/1 HTTP/1.1\r\nhost: t\r\nauthorization: Bearer ${t}\r\nx-request-id: ${last}\r\n\r\n`)).toMatch(/^HTTP\/1\.1 503 /);
    sock.destroy();
    releaseHeld();
    expect((await inflight).status).toBe(200);
    expect(await gw.exited).toBe(0);
    await expectLine(last, { status: 503, decision: 'deny', reason: 'shutting_down' });
  });

  it('wrote exactly one audit line per request', () => {
    const lines = auditLines();
    const count = new Map<string, number>();
    for (const l of lines) count.set(l['request_id'] as string, (count.get(l['request_id'] as string) ?? 0) + 1);
    expect(ids.length).toBeGreaterThan(60);
    for (const id of ids) expect(count.get(id), id).toBe(1);
    expect(lines.length).toBe(ids.length);
  });

  it('no token, token segment or token jti appears in the audit file or anything the process printed', () => {
    const written = [readFileSync(join(dir, 'audit.log'), 'utf8'), gw.stdout(), gw.stderr()];
    expect(written[0]!.length).toBeGreaterThan(0);
    expect(gw.stdout().length).toBeGreaterThan(0); // the operational log did speak (listening, key sets, spraying, …)
    expect(ledger.length).toBeGreaterThan(50);
    const needles = new Set<string>();
    for (const t of ledger) {
      needles.add(t);
      // Header segments are shared by many tokens and carry no secret; payload and signature are per token.
      for (const part of t.split('.').slice(1)) if (part.length >= 16) needles.add(part);
    }
    for (const m of markers) needles.add(m);
    const found: string[] = [];
    for (const n of needles) for (const text of written) if (text.includes(n)) found.push(n.slice(0, 40));
    expect(found).toEqual([]);
  });
});

/** Writes one request on a kept-alive socket and resolves with the whole answer. */
function exchange(sock: Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += d.toString('latin1');
      const end = got.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = got.slice(0, end);
      const len = /\r\ncontent-length: *(\d+)/i.exec(head);
      const done = len ? got.length >= end + 4 + Number(len[1]) : /\r\ntransfer-encoding: *chunked/i.test(head) ? got.endsWith('0\r\n\r\n') : true;
      if (done) {
        sock.off('data', onData);
        resolve(got);
      }
    };
    sock.on('data', onData);
    sock.once('error', reject);
    sock.write(text);
  });
}
