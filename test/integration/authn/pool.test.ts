/**
 * The verifier with its Piscina pool, loaded from the build (dist/authn/verifier.js
 * starts dist/authn/worker/verify.js): threads 0 and threads 2 answer alike, a
 * crashed worker costs one 503 and the pool recovers, a full queue answers overloaded.
 * The pool's batches (src/authn/pool.ts): many verifications in flight in one worker,
 * each answered as threads 0 answers it; keys and issuers sent to the workers by
 * number, once per key-set version; the bound of threads × concurrency + maxQueue
 * tokens; task timeouts and worker crashes with co-passengers in a batch.
 * Needs `npm run build` first (the test command builds).
 */
import { randomUUID } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { JWTPayload } from 'jose';
// @ts-expect-error dist/ has no declarations (tsconfig.build.json); the shapes are src/authn's.
import { createVerifier as createBuiltVerifier } from '../../../dist/authn/verifier.js';
// @ts-expect-error as above
import verifyBuiltTask from '../../../dist/authn/worker/verify.js';
// @ts-expect-error as above
import { createMetrics as createBuiltMetrics } from '../../../dist/observe/metrics.js';
import type { createVerifier as CreateVerifier, VerifierOptions } from '../../../src/authn/verifier.js';
import type verifyTaskType from '../../../src/authn/worker/verify.js';
import type { IssuerDefinition, KeyDefinition, VerifyBatch } from '../../../src/authn/worker/verify.js';
import type { createMetrics as CreateMetrics } from '../../../src/observe/metrics.js';
import type { Verifier, VerifierReadiness, VerifyResult } from '../../../src/authn/types.js';
import { b64, configWith, deepClaims, makeKey, respellings, sign, signRawRs256, startIdp, testClock, type IdpServer, type TestKey } from './idp.js';
import { outputSink } from '../leaks.js';

const createVerifier = createBuiltVerifier as typeof CreateVerifier;
const verifyTask = verifyBuiltTask as typeof verifyTaskType;
const createMetrics = createBuiltMetrics as typeof CreateMetrics;

/** While this file exists, the stall worker answers no task (fixtures/stall-worker.mjs). */
const STALL_FILE = join(tmpdir(), `mfa-gw-stall-${process.pid}-${randomUUID()}`);
process.env['MFA_GW_STALL_FILE'] = STALL_FILE;
const STALL_WORKER = new URL('./fixtures/stall-worker.mjs', import.meta.url);
/** The gather worker answers nothing until it holds this many tokens at once (fixtures/gather-worker.mjs). */
const GATHER = 64;
process.env['MFA_GW_GATHER'] = String(GATHER);
const GATHER_WORKER = new URL('./fixtures/gather-worker.mjs', import.meta.url);
const CRASH_WORKER = new URL('./fixtures/crash-worker.mjs', import.meta.url);

let rs: TestKey;
let ps: TestKey;
let es: TestKey;
let ed: TestKey;
let attacker: TestKey;
let idp: IdpServer;

beforeAll(async () => {
  [rs, ps, es, ed, attacker] = await Promise.all([
    makeKey('RS256', 'rs-1'),
    makeKey('PS256', 'ps-1'),
    makeKey('ES256', 'es-1'),
    makeKey('EdDSA', 'ed-1'),
    makeKey('RS256', 'rs-1'),
  ]);
  idp = await startIdp([rs.jwk, ps.jwk, es.jwk, ed.jwk], '/pool');
});

afterAll(async () => {
  rmSync(STALL_FILE, { force: true });
  await idp?.close();
});

const open: Verifier[] = [];
afterEach(async () => {
  rmSync(STALL_FILE, { force: true });
  await Promise.all(open.splice(0).map((v) => v.close()));
});

function config(verifier: Record<string, unknown>) {
  return configWith(
    [
      {
        name: 'corp',
        issuer: idp.issuer,
        discovery: true,
        audience: ['orders-api'],
        algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
        clockTolerance: '30s',
        typ: 'at+jwt',
        claims: { roles: 'realm_access.roles', groups: 'groups' },
      },
    ],
    verifier,
  );
}

const clock = testClock();
const logs: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
/** The verifier's log lines also go to the whole-run leak check (test/leaks). */
const logSink = outputSink('verifier-log.pool');

async function started(verifier: Record<string, unknown>, workerFile?: URL, options: VerifierOptions = {}): Promise<Verifier> {
  const v = createVerifier(config(verifier), {
    ...options,
    now: clock.now,
    log: (level, msg, fields) => {
      const line = { level, msg, ...(fields ? { fields } : {}) };
      logs.push(line);
      logSink(`${JSON.stringify(line)}\n`);
    },
    ...(workerFile ? { workerFile } : {}),
  });
  open.push(v);
  await v.start();
  return v;
}

const claims = (extra: JWTPayload = {}): JWTPayload => ({
  iss: idp.issuer,
  aud: 'orders-api',
  sub: 'alice',
  iat: clock.sec(),
  exp: clock.sec() + 600,
  jti: randomUUID(),
  realm_access: { roles: ['orders.reader'] },
  groups: 'ops',
  amr: ['pwd', 'otp'],
  ...extra,
});

/** What a caller can observe of an answer. */
function view(r: VerifyResult): unknown {
  return r.ok ? { ok: true, principal: { ...r.principal } } : { ok: false, code: r.code, reason: r.reason, description: r.description };
}

/** Readiness's pool state once its own probes had up to 5 s to bring the pool back. */
async function recovered(v: Verifier): Promise<VerifierReadiness['pool']> {
  let pool = v.readiness().pool;
  for (let i = 0; i < 100 && !pool.ok; i++) {
    await sleep(50);
    pool = v.readiness().pool;
  }
  return pool;
}

/** The subject of a success, the reason of a failure. */
const okSubject = (r: VerifyResult | undefined) => (r?.ok ? r.principal.subject : r?.reason);

describe('threads: 0 and threads: 2', () => {
  it('give identical answers over the same token set', async () => {
    const good = await sign(rs, claims());
    const [h, p] = good.split('.');
    const tokens: string[] = [
      good,
      await sign(ps, claims({ sub: 'bob' })),
      await sign(es, claims({ acr: 'phr', auth_time: clock.sec() - 10 })),
      await sign(ed, claims({ realm_access: { roles: 'single' } })),
      await sign(es, claims(), { header: { kid: null } }),
      await sign(rs, claims({ exp: clock.sec() - 31 })),
      await sign(rs, claims({ exp: clock.sec() - 29 })),
      await sign(rs, claims({ nbf: clock.sec() + 31 })),
      await sign(rs, claims({ aud: 'billing-api' })),
      await sign(rs, claims(), { header: { typ: 'JWT' } }),
      await sign(rs, { ...claims(), exp: undefined }),
      await sign(rs, claims({ iss: 'https://evil.example' })),
      `${h}.${p}.${'A'.repeat(342)}`,
      `${h}.${b64({ ...claims(), sub: 'mallory' })}.${good.split('.')[2]}`,
      `${h}.${p}.`,
      `${b64({ alg: 'none', kid: 'rs-1' })}.${p}.`,
      await sign({ privateKey: new TextEncoder().encode(JSON.stringify(rs.jwk)), kid: 'rs-1', alg: 'HS256' }, claims()),
      await sign(attacker, claims()),
      await sign(attacker, claims(), { header: { kid: 'unknown-kid' } }),
      await sign(es, claims(), { header: { kid: 'rs-1' } }),
      await signRawRs256(rs, { alg: 'RS256', kid: 'rs-1', typ: 'at+jwt', crit: ['urn:x'], 'urn:x': 1 }, claims()),
      'not.a.jwt',
      'garbage',
      ...respellings(good),
      await sign(rs, { ...claims(), sub: undefined }),
      await sign(rs, claims({ iat: clock.sec() + 31 })),
      await sign(rs, claims({ iat: 'now' as unknown as number })),
      await sign(rs, claims({ sub: 'alice\ud800' })),
      await sign(es, claims({ realm_access: { roles: ['\udfff'] } })),
      await signRawRs256(rs, { alg: 'RS256', kid: 'rs-1', typ: 'at+jwt' }, deepClaims(claims(), 32)),
    ];
    const inline = await started({ threads: 0 });
    const pooled = await started({ threads: 2 });
    const a = await Promise.all(tokens.map((t) => inline.verify(t)));
    const b = await Promise.all(tokens.map((t) => pooled.verify(t)));
    expect(b.map(view)).toEqual(a.map(view));
    // The set exercises both outcomes and many reasons.
    expect(a.filter((r) => r.ok).length).toBe(6);
    expect(new Set(a.filter((r) => !r.ok).map((r) => !r.ok && r.reason)).size).toBeGreaterThanOrEqual(13);
    expect(pooled.stats!().verifications).toBe(inline.stats!().verifications);
    // And the cache answers the same afterwards.
    expect(tokens.map((t) => pooled.lookup(t)).map((r) => r && view(r))).toEqual(tokens.map((t) => inline.lookup(t)).map((r) => r && view(r)));
  });
});

describe('the worker pool', () => {
  it('a worker crash answers verifier_unavailable (503), is not cached, and the pool recovers', async () => {
    const v = await started({ threads: 2 }, new URL('./fixtures/crash-worker.mjs', import.meta.url));
    expect((await v.verify(await sign(rs, claims()))).ok).toBe(true);
    const crash = await sign(rs, claims({ jti: 'crash-worker' }));
    const r = await v.verify(crash);
    expect(r).toMatchObject({ ok: false, code: 'verifier_unavailable', reason: 'verifier_unavailable' });
    expect(v.lookup(crash)).toBeUndefined();
    expect(logs).toContainEqual(expect.objectContaining({ level: 'error', msg: 'verifier worker task failed' }));
    // Recovered: fresh tokens verify, and more crashes are answered the same way.
    for (let i = 0; i < 4; i++) expect((await v.verify(await sign(es, claims()))).ok).toBe(true);
    const again = await Promise.all([v.verify(crash), v.verify(await sign(ed, claims())), v.verify(await sign(ps, claims()))]);
    expect(again[0]).toMatchObject({ ok: false, code: 'verifier_unavailable' });
    expect(again[1]?.ok).toBe(true);
    expect(again[2]?.ok).toBe(true);
    expect((await v.verify(await sign(rs, claims()))).ok).toBe(true);
  });

  it('a full queue answers overloaded (503), uncached, and the pool drains', async () => {
    // concurrency 1: room for threads + maxQueue = 3 verifications ("the bound" below holds it with more).
    const v = await started({ threads: 2, concurrency: 1, maxQueue: 1 });
    expect((await v.verify(await sign(rs, claims()))).ok).toBe(true);
    const tokens = await Promise.all(Array.from({ length: 40 }, () => sign(rs, claims())));
    const results = await Promise.all(tokens.map((t) => v.verify(t)));
    const overloaded = results.filter((r) => !r.ok);
    const ok = results.filter((r) => r.ok);
    expect(overloaded.length).toBeGreaterThan(0);
    expect(ok.length).toBeGreaterThan(0);
    expect(ok.length + overloaded.length).toBe(40);
    for (const r of overloaded) expect(r).toMatchObject({ ok: false, code: 'overloaded', reason: 'overloaded' });
    const refused = tokens[results.findIndex((r) => !r.ok)]!;
    expect(v.lookup(refused)).toBeUndefined();
    expect((await v.verify(refused)).ok).toBe(true);
    expect(v.stats!().queued).toBe(0);
  });

  it('close() destroys the pool; later verifications answer verifier_unavailable', async () => {
    const v = await started({ threads: 2 });
    const token = await sign(rs, claims());
    await v.close();
    expect(await v.verify(token)).toMatchObject({ ok: false, code: 'verifier_unavailable' });
  });
});

describe('the worker answers with the principal, never the payload', () => {
  it('a built worker task returns the principal the policy needs and nothing of the rest of the payload', async () => {
    const token = await sign(rs, claims({ jti: 'token-1', secret_note: 'not for the main thread', nested: { a: { b: [1, 2, 3] } } }));
    const c = config({ threads: 0 }).issuers[0]!;
    const result = await verifyTask({
      token,
      jwk: rs.jwk,
      keyId: 'rs-1-thumbprint',
      alg: 'RS256',
      algorithms: c.algorithms,
      issuer: c.issuer,
      issuerName: c.name,
      claims: c.claims,
      audience: c.audience,
      clockToleranceSec: c.clockToleranceSec,
      typ: c.typ,
      nowMs: clock.now(),
    });
    expect(result).toEqual({
      ok: true,
      principal: {
        issuer: 'corp',
        iss: idp.issuer,
        subject: 'alice',
        exp: clock.sec() + 600,
        amr: ['pwd', 'otp'],
        acr: undefined,
        authTime: undefined,
        roles: ['orders.reader'],
        scopes: [],
        groups: ['ops'],
        sub: 'alice',
        sid: undefined,
        jti: 'token-1',
        iat: clock.sec(),
        cnfJkt: undefined,
        clientId: undefined,
      },
    });
    expect(JSON.stringify(result)).not.toContain('not for the main thread');
    // A probe verifies nothing and answers at once.
    expect(await verifyTask({ probe: true })).toBe('probe');
  });

  it('a pooled principal is as frozen as an inline one, and cached', async () => {
    const v = await started({ threads: 2 });
    const token = await sign(rs, claims());
    const r = await v.verify(token);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    for (const x of [r, r.principal, r.principal.amr, r.principal.roles, r.principal.scopes, r.principal.groups]) expect(Object.isFrozen(x)).toBe(true);
    expect(v.lookup(token)).toBe(r);
  });
});

describe('task timeout and a stalled pool', () => {
  it('a task that never settles answers verifier_unavailable after taskTimeout, is counted and not cached, and its worker is replaced', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    let timeouts = 0;
    const v = await started({ threads: 1, taskTimeout: '1s' }, STALL_WORKER, {
      onTaskTimeout: () => {
        timeouts++;
        metrics.verifierTimeout();
      },
    });
    expect((await v.verify(await sign(rs, claims()))).ok).toBe(true);
    const hang = await sign(rs, claims({ jti: 'hang' }));
    const r = await v.verify(hang);
    expect(r).toMatchObject({ ok: false, code: 'verifier_unavailable', reason: 'verifier_unavailable' });
    expect(v.lookup(hang)).toBeUndefined();
    expect(timeouts).toBe(1);
    expect(v.stats!().timeouts).toBe(1);
    expect(logs).toContainEqual({ level: 'error', msg: 'verifier task timed out', fields: { issuer: 'corp', timeoutMs: 1000 } });
    expect((await metrics.text()).body).toMatch(/^mfa_gateway_verifier_timeouts_total 1$/m);
    // The only worker was the one that hung: a fresh one verifies.
    for (let i = 0; i < 3; i++) expect((await v.verify(await sign(es, claims()))).ok).toBe(true);
    expect(v.readiness().pool).toEqual({ ok: true });
  });

  it('the wedge: a result the main thread cannot rebuild (messageerror) costs one 503, not the pool', async () => {
    const v = await started({ threads: 1, taskTimeout: '1s' }, STALL_WORKER);
    const wedge = await sign(rs, claims({ jti: 'unclonable' }));
    for (let i = 0; i < 3; i++) expect(await v.verify(wedge)).toMatchObject({ ok: false, code: 'verifier_unavailable' });
    expect(v.stats!().timeouts).toBe(3);
    const normal = await Promise.all(Array.from({ length: 4 }, async () => v.verify(await sign(rs, claims()))));
    expect(normal.map((r) => r.ok)).toEqual([true, true, true, true]);
  });

  it('readiness says the pool is stalled while no task completes, and recovers by itself once workers answer again', async () => {
    const v = await started({ threads: 2, taskTimeout: '1s' }, STALL_WORKER);
    expect((await v.verify(await sign(rs, claims()))).ok).toBe(true);
    expect(v.readiness()).toMatchObject({ ready: true, pool: { ok: true } });
    writeFileSync(STALL_FILE, '');
    try {
      const stuck = await Promise.all([v.verify(await sign(rs, claims())), v.verify(await sign(es, claims()))]);
      for (const r of stuck) expect(r).toMatchObject({ ok: false, code: 'verifier_unavailable' });
      const ready = v.readiness();
      expect(ready.ready).toBe(false);
      expect(ready.issuers['corp']?.ok).toBe(true); // the keys are fine; the pool is not
      expect(ready.pool).toEqual({ ok: false, error: 'worker pool stalled: a verification timed out after 1000 ms and none has completed since' });
    } finally {
      rmSync(STALL_FILE, { force: true });
    }
    // No verification traffic from here on: readiness's own probes bring it back.
    expect(await recovered(v)).toEqual({ ok: true });
    expect(v.readiness().ready).toBe(true);
    expect((await v.verify(await sign(rs, claims()))).ok).toBe(true);
  });

  it('threads 0 has no task timeout and is never stalled', async () => {
    const v = await started({ threads: 0, taskTimeout: '10ms' });
    expect((await v.verify(await sign(rs, claims()))).ok).toBe(true);
    expect(v.readiness()).toMatchObject({ ready: true, pool: { ok: true } });
    expect(v.stats!().timeouts).toBe(0);
  });
});

describe('key sets with a pool', () => {
  it('are fetched once per process, not once per worker, and an unknown-kid flood costs one refetch per cooldown', async () => {
    const server = await startIdp([rs.jwk, es.jwk], '/pool-once');
    try {
      const c = testClock();
      const fetches: [string, boolean][] = [];
      const v = createVerifier(
        configWith(
          [{ name: 'corp', issuer: server.issuer, discovery: true, audience: ['orders-api'], algorithms: ['RS256', 'ES256'], clockTolerance: '30s' }],
          { threads: 2, jwksCooldown: '30s' },
        ),
        { now: c.now, onKeyFetch: (issuer, ok) => fetches.push([issuer, ok]) },
      );
      open.push(v);
      await v.start();
      const base = (): JWTPayload => ({ iss: server.issuer, aud: 'orders-api', sub: 'alice', exp: c.sec() + 600, jti: randomUUID() });
      // Enough distinct tokens that both workers verify some.
      const good = await Promise.all(Array.from({ length: 40 }, (_, i) => sign(i % 2 ? rs : es, base())));
      const results = await Promise.all(good.map((t) => v.verify(t)));
      expect(results.every((r) => r.ok)).toBe(true);
      expect(v.stats!().verifications).toBe(40);
      expect(server.discoveryHits()).toBe(1);
      expect(server.jwksHits()).toBe(1);
      // Worker time was spent: utilization is reported, and nothing is left queued.
      expect(v.stats!().utilization).toBeGreaterThan(0);
      expect(v.stats!().queued).toBe(0);
      // A flood of unknown kids, past the cooldown: one refetch, made by the main thread.
      c.advance(31_000);
      const flood = await Promise.all(Array.from({ length: 100 }, () => sign(attacker, base(), { header: { kid: randomUUID() } })));
      const answers = await Promise.all(flood.map((t) => v.verify(t)));
      for (const r of answers) expect(r).toMatchObject({ ok: false, reason: 'unknown_kid' });
      expect(server.jwksHits()).toBe(2);
      expect(fetches).toEqual([
        ['corp', true],
        ['corp', true],
      ]);
      expect(v.stats!().verifications).toBe(40);
      expect(v.stats!().pending).toBe(0);
    } finally {
      await server.close();
    }
  });
});

describe('many verifications in flight in one worker', () => {
  it(`one worker holds ${GATHER} tokens at once, and each is answered as threads 0 answers it`, async () => {
    // The gather worker answers nothing until it holds 64 tokens: one token (or a few) per
    // worker at a time would leave every one of them to time out.
    const keys = [rs, es, ed];
    const tokens = await Promise.all(
      Array.from({ length: GATHER }, (_, i) => {
        const key = keys[i % 3]!;
        if (i % 8 === 5) return sign(key, claims({ sub: `user-${i}`, exp: clock.sec() - 31 })); // expired
        if (i % 8 === 6) return sign(key, claims({ sub: `user-${i}`, aud: 'billing-api' })); // wrong audience
        return sign(key, claims({ sub: `user-${i}` }));
      }),
    );
    // Tampered: user-7's signature on user-3's claims.
    const [h3, p3] = tokens[3]!.split('.');
    tokens[7] = `${h3}.${p3}.${tokens[7]!.split('.')[2]}`;
    const inline = await started({ threads: 0 });
    const pooled = await started({ threads: 1, concurrency: GATHER, taskTimeout: '10s' }, GATHER_WORKER);
    const [a, b] = await Promise.all([Promise.all(tokens.map((t) => inline.verify(t))), Promise.all(tokens.map((t) => pooled.verify(t)))]);
    expect(b.map(view)).toEqual(a.map(view));
    // Each answer is its own token's, none another's.
    for (let i = 0; i < GATHER; i++) {
      const expected = i === 7 ? 'bad_signature' : i % 8 === 5 ? 'expired' : i % 8 === 6 ? 'wrong_audience' : `user-${i}`;
      expect(okSubject(b[i]), `token ${i}`).toBe(expected);
    }
    expect(pooled.stats!().verifications).toBe(GATHER);
    expect(pooled.stats!().timeouts).toBe(0);
  });
});

describe('the bound: threads × concurrency + maxQueue tokens', () => {
  it('refuses exactly the tokens beyond it (503 overloaded, never cached), and verifies them later', async () => {
    const v = await started({ threads: 2, concurrency: 4, maxQueue: 3 });
    const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => sign(rs, claims({ sub: `user-${i}` }))));
    const results = await Promise.all(tokens.map((t) => v.verify(t)));
    // 2 × 4 in the workers and 3 waiting: the first 11, in the order they came.
    expect(results.slice(0, 11).map(okSubject)).toEqual(Array.from({ length: 11 }, (_, i) => `user-${i}`));
    for (const r of results.slice(11)) expect(r).toMatchObject({ ok: false, code: 'overloaded', reason: 'overloaded', description: 'token verification overloaded' });
    expect(v.lookup(tokens[11]!)).toBeUndefined();
    expect(okSubject(await v.verify(tokens[19]!))).toBe('user-19');
    expect(v.stats!().queued).toBe(0);
  });
});

describe('a reload', () => {
  it('moves the bound: concurrency and maxQueue follow it, threads stay', async () => {
    const v = await started({ threads: 1, concurrency: 2, maxQueue: 1 });
    const accepted = async () => {
      const tokens = await Promise.all(Array.from({ length: 10 }, () => sign(es, claims())));
      return (await Promise.all(tokens.map((t) => v.verify(t)))).filter((r) => r.ok).length;
    };
    expect(await accepted()).toBe(3);
    const change = await v.reconfigure(config({ threads: 1, concurrency: 5, maxQueue: 1 }));
    expect(change).toMatchObject({ kept: ['corp'], replaced: [], added: [], removed: [] });
    change.commit();
    expect(await accepted()).toBe(6);
  });
});

describe('keys and issuers travel to the workers by number', () => {
  const issuer: IssuerDefinition = {
    algorithms: ['RS256', 'ES256'],
    issuer: '',
    issuerName: 'corp',
    claims: { subject: ['sub'], roles: ['realm_access', 'roles'], scopes: ['scope'], groups: ['groups'] } as IssuerDefinition['claims'],
    audience: ['orders-api'],
    clockToleranceSec: 30,
    typ: null,
  };

  it('a worker answers MISSING for a definition it was never sent, then keeps the ones it was', async () => {
    const def = { ...issuer, issuer: idp.issuer };
    const rsKey: KeyDefinition = { jwk: { kty: 'RSA', n: rs.jwk.n!, e: rs.jwk.e! }, keyId: 'rs-thumbprint' };
    const good = await sign(rs, claims({ sub: 'bob' }));
    const late = await sign(rs, claims({ exp: clock.sec() - 60 }));
    const items = [good, late].map((token) => ({ token, key: 900_001, issuer: 900_002, alg: 'RS256', nowMs: clock.now() }));
    const batch: VerifyBatch = { items };
    expect(await verifyTask(batch)).toBe('missing');
    const answered = await verifyTask({ items, keys: { 900_001: rsKey }, issuers: { 900_002: def } });
    expect(answered).toMatchObject([{ ok: true, principal: { subject: 'bob', issuer: 'corp' } }, { ok: false, reason: 'expired' }]);
    // Kept: the same numbers need no definitions any more.
    expect(await verifyTask(batch)).toEqual(answered);
    // A number this worker never saw still is MISSING, even beside known ones.
    expect(await verifyTask({ items: [...items, { ...items[0]!, key: 900_003 }] })).toBe('missing');
  });

  it('a key-set rotation reaches the workers: a new key verifies after the refetch, a removed one does not', async () => {
    const a = await makeKey('RS256', 'a');
    const b = await makeKey('ES256', 'b');
    const server = await startIdp([a.jwk], '/pool-rotate');
    try {
      const v = createVerifier(
        configWith([{ name: 'corp', issuer: server.issuer, discovery: true, audience: ['orders-api'], algorithms: ['RS256', 'ES256'] }], { threads: 2, jwksCooldown: '30s' }),
        { now: clock.now },
      );
      open.push(v);
      await v.start();
      const as = (extra: JWTPayload) => ({ ...claims(extra), iss: server.issuer });
      // Both workers verify a-tokens (enough of them that each gets some).
      const first = await Promise.all(Array.from({ length: 8 }, (_, i) => sign(a, as({ sub: `a-${i}` }))));
      expect((await Promise.all(first.map((t) => v.verify(t)))).map(okSubject)).toEqual(first.map((_, i) => `a-${i}`));
      // The IdP replaces a with b; one cooldown later a b-token refetches the set.
      server.setKeys([b.jwk]);
      clock.advance(31_000);
      const withB = await Promise.all(Array.from({ length: 8 }, (_, i) => sign(b, as({ sub: `b-${i}` }))));
      expect((await Promise.all(withB.map((t) => v.verify(t)))).map(okSubject)).toEqual(withB.map((_, i) => `b-${i}`));
      expect(server.jwksHits()).toBe(2);
      // a is gone from the set the main thread holds: a fresh a-token never reaches a worker
      // that may still hold a's definition.
      const verificationsBefore = v.stats!().verifications;
      expect(await v.verify(await sign(a, as({ sub: 'a-late' })))).toMatchObject({ ok: false, reason: 'unknown_kid' });
      expect(v.stats!().verifications).toBe(verificationsBefore);
      // The same b published again is a new key-set version; its tokens still verify.
      clock.advance(31_000);
      server.setKeys([b.jwk]);
      expect(await v.verify(await sign(a, as({})))).toMatchObject({ ok: false, reason: 'unknown_kid' });
      expect(server.jwksHits()).toBe(3);
      expect(okSubject(await v.verify(await sign(b, as({ sub: 'b-again' }))))).toBe('b-again');
    } finally {
      await server.close();
    }
  });
});

describe('timeouts and crashes with several tokens per worker', () => {
  it('a batch that never settles: its tokens answer 503 after taskTimeout, each counted; the other worker\'s batch is answered', async () => {
    let timeouts = 0;
    const v = await started({ threads: 2, concurrency: 4, taskTimeout: '1s' }, STALL_WORKER, { onTaskTimeout: () => timeouts++ });
    expect((await v.verify(await sign(rs, claims()))).ok).toBe(true);
    // In one turn, shared out over the two workers: [hang, u1] and [u2]. u1 shares the
    // hung batch's fate; u2 does not.
    const tokens = [await sign(rs, claims({ jti: 'hang' })), await sign(rs, claims({ sub: 'u1' })), await sign(es, claims({ sub: 'u2' }))];
    const results = await Promise.all(tokens.map((t) => v.verify(t)));
    for (const r of results.slice(0, 2)) expect(r).toMatchObject({ ok: false, code: 'verifier_unavailable', reason: 'verifier_unavailable' });
    expect(okSubject(results[2])).toBe('u2');
    expect(timeouts).toBe(2);
    expect(v.stats!().timeouts).toBe(2);
    expect(logs).toContainEqual({ level: 'error', msg: 'verifier task timed out', fields: { issuer: 'corp', timeoutMs: 1000, verifications: 2 } });
    for (const t of tokens.slice(0, 2)) expect(v.lookup(t)).toBeUndefined();
    // The hung worker was ended and replaced: both workers verify again.
    const after = await Promise.all(['x1', 'x2', 'x3', 'x4'].map(async (sub) => v.verify(await sign(ed, claims({ sub })))));
    expect(after.map(okSubject)).toEqual(['x1', 'x2', 'x3', 'x4']);
  });

  it('tokens still waiting for room in a stalled pool answer 503 at their deadline without being sent, and the pool recovers', async () => {
    const v = await started({ threads: 1, concurrency: 2, maxQueue: 16, taskTimeout: '1s' }, STALL_WORKER);
    expect((await v.verify(await sign(rs, claims()))).ok).toBe(true);
    writeFileSync(STALL_FILE, '');
    const tokens = await Promise.all(Array.from({ length: 6 }, (_, i) => sign(rs, claims({ sub: `s-${i}` }))));
    const pending = tokens.map((t) => v.verify(t));
    await sleep(50);
    // Two in the worker's batch (concurrency 2), four waiting on the main thread.
    expect(v.stats!().queued).toBe(4);
    const results = await Promise.all(pending);
    for (const r of results) expect(r).toMatchObject({ ok: false, code: 'verifier_unavailable' });
    expect(v.stats!().timeouts).toBe(6);
    expect(v.stats!().queued).toBe(0);
    expect(v.readiness().pool).toEqual({ ok: false, error: 'worker pool stalled: a verification timed out after 1000 ms and none has completed since' });
    rmSync(STALL_FILE, { force: true });
    expect(await recovered(v)).toEqual({ ok: true });
    expect(okSubject(await v.verify(tokens[0]!))).toBe('s-0');
  });

  it('a worker crash with co-passengers: only the token that crashes it is refused', async () => {
    const v = await started({ threads: 1, concurrency: 8 }, CRASH_WORKER);
    expect((await v.verify(await sign(rs, claims()))).ok).toBe(true);
    const before = logs.filter((l) => l.msg === 'verifier worker task failed').length;
    // One batch of three; the worker dies under all of them.
    const tokens = [await sign(rs, claims({ sub: 'c1' })), await sign(es, claims({ jti: 'crash-worker' })), await sign(ed, claims({ sub: 'c2' }))];
    const results = await Promise.all(tokens.map((t) => v.verify(t)));
    expect(results.map(okSubject)).toEqual(['c1', 'verifier_unavailable', 'c2']);
    expect(results[1]).toMatchObject({ ok: false, code: 'verifier_unavailable' });
    expect(v.lookup(tokens[1]!)).toBeUndefined();
    expect(logs.filter((l) => l.msg === 'verifier worker task failed').slice(before)).toEqual([
      { level: 'error', msg: 'verifier worker task failed', fields: { issuer: 'corp', error: expect.any(String) } },
    ]);
    expect(okSubject(await v.verify(await sign(rs, claims({ sub: 'c3' }))))).toBe('c3');
  });
});
