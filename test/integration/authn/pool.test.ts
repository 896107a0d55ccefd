/**
 * The verifier with its Piscina pool, loaded from the build (dist/authn/verifier.js
 * starts dist/authn/worker/verify.js): threads 0 and threads 2 answer alike, a
 * crashed worker costs one 503 and the pool recovers, a full queue answers overloaded.
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
import type { createMetrics as CreateMetrics } from '../../../src/observe/metrics.js';
import type { Verifier, VerifyResult } from '../../../src/authn/types.js';
import { b64, configWith, deepClaims, makeKey, respellings, sign, signRawRs256, startIdp, testClock, type IdpServer, type TestKey } from './idp.js';
import { outputSink } from '../leaks.js';

const createVerifier = createBuiltVerifier as typeof CreateVerifier;
const verifyTask = verifyBuiltTask as typeof verifyTaskType;
const createMetrics = createBuiltMetrics as typeof CreateMetrics;

/** While this file exists, the stall worker answers no task (fixtures/stall-worker.mjs). */
const STALL_FILE = join(tmpdir(), `mfa-gw-stall-${process.pid}-${randomUUID()}`);
process.env['MFA_GW_STALL_FILE'] = STALL_FILE;
const STALL_WORKER = new URL('./fixtures/stall-worker.mjs', import.meta.url);

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
    const v = await started({ threads: 2, maxQueue: 1 });
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
    let pool = v.readiness().pool;
    for (let i = 0; i < 100 && !pool.ok; i++) {
      await sleep(50);
      pool = v.readiness().pool;
    }
    expect(pool).toEqual({ ok: true });
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
