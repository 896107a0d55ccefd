/**
 * The verifier as a component, against a real discovery + JWKS server on port 0,
 * with jose-generated RS256, PS256, ES256 and EdDSA keys and a frozen, injected clock.
 * threads: 0 here (the same task code the workers run); pool.test.ts covers the pool.
 */
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { exportSPKI, type JWTPayload } from 'jose';
import { createVerifier, type VerifierOptions } from '../../../src/authn/verifier.js';
import type { Verifier, VerifyResult } from '../../../src/authn/types.js';
import { b64, configWith, deepClaims, makeKey, manualTimers, respellings, sign, signRawRs256, startIdp, startTrap, testClock, type IdpServer, type TestKey } from './idp.js';
import { outputSink } from '../leaks.js';

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
    makeKey('RS256', 'attacker-1'),
  ]);
  idp = await startIdp([rs.jwk, ps.jwk, es.jwk, ed.jwk]);
});

afterAll(async () => {
  await idp?.close();
});

const open: Verifier[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((v) => v.close()));
});

interface Harness {
  v: Verifier;
  clock: ReturnType<typeof testClock>;
  logs: { level: string; msg: string; fields?: Record<string, unknown> }[];
  claims(extra?: JWTPayload): JWTPayload;
  verifications(): number;
}

const ALGS = ['RS256', 'PS256', 'ES256', 'EdDSA'];
/** The verifiers' log lines also go to the whole-run leak check (test/leaks). */
const logSink = outputSink('verifier-log.component');

/** A started verifier for `issuer` (default: the shared IdP by discovery, typ at+jwt). */
async function harness(
  issuerOverrides: Record<string, unknown> = {},
  verifier: Record<string, unknown> = {},
  options: { server?: IdpServer; extraIssuers?: object[]; start?: boolean; opts?: VerifierOptions } = {},
): Promise<Harness> {
  const server = options.server ?? idp;
  const clock = testClock();
  const logs: Harness['logs'] = [];
  const config = configWith(
    [
      {
        name: 'corp',
        issuer: server.issuer,
        discovery: true,
        audience: ['orders-api', 'billing-api'],
        algorithms: ALGS,
        clockTolerance: '30s',
        typ: 'at+jwt',
        claims: { roles: 'realm_access.roles' },
        ...issuerOverrides,
      },
      ...(options.extraIssuers ?? []),
    ],
    verifier,
  );
  const log: VerifierOptions['log'] = (level, msg, fields) => {
    const line = { level, msg, ...(fields ? { fields } : {}) };
    logs.push(line);
    logSink(`${JSON.stringify(line)}\n`);
  };
  // Background refreshes only when a test fires them (refresh.test.ts covers them), at exact delays.
  const timers = manualTimers();
  const v = createVerifier(config, { now: clock.now, log, setTimer: timers.setTimer, random: () => 0, ...options.opts });
  open.push(v);
  if (options.start !== false) await v.start();
  return {
    v,
    clock,
    logs,
    claims: (extra = {}) => ({
      iss: server.issuer,
      aud: 'orders-api',
      sub: 'alice',
      iat: clock.sec(),
      exp: clock.sec() + 600,
      jti: randomUUID(),
      realm_access: { roles: ['orders.reader'] },
      ...extra,
    }),
    verifications: () => v.stats!().verifications,
  };
}

function expectFailure(r: VerifyResult, reason: string, code = 'invalid_token'): void {
  expect(r.ok).toBe(false);
  if (r.ok) return;
  expect(r.reason).toBe(reason);
  expect(r.code).toBe(code);
  expect(r.description).toMatch(/^[\x20-\x21\x23-\x5b\x5d-\x7e]+$/);
}

describe('valid tokens', () => {
  it('verifies RS256, PS256, ES256 and EdDSA tokens and builds the principal', async () => {
    const h = await harness();
    for (const key of [rs, ps, es, ed]) {
      const r = await h.v.verify(await sign(key, h.claims({ sub: `user-${key.alg}` })));
      expect(r.ok, key.alg).toBe(true);
      if (!r.ok) continue;
      expect(r.principal.issuer).toBe('corp');
      expect(r.principal.iss).toBe(idp.issuer);
      expect(r.principal.subject).toBe(`user-${key.alg}`);
      expect(r.principal.roles).toEqual(['orders.reader']);
      expect(r.principal.exp).toBe(h.clock.sec() + 600);
    }
    expect(h.verifications()).toBe(4);
  });

  it('accepts typ application/at+jwt and an aud array holding one configured audience', async () => {
    const h = await harness();
    expect((await h.v.verify(await sign(rs, h.claims(), { header: { typ: 'application/at+jwt' } }))).ok).toBe(true);
    expect((await h.v.verify(await sign(es, h.claims({ aud: ['x', 'billing-api'] })))).ok).toBe(true);
  });

  it('accepts a token without kid only when exactly one key fits its alg', async () => {
    const h = await harness();
    // ES256: one EC P-256 key in the set. RS256: ps-1 is RSA too, but its JWK says alg PS256.
    expect((await h.v.verify(await sign(es, h.claims(), { header: { kid: null } }))).ok).toBe(true);
    expect((await h.v.verify(await sign(rs, h.claims(), { header: { kid: null } }))).ok).toBe(true);

    const rs2 = await makeKey('RS256', 'rs-2');
    const two = await startIdp([rs.jwk, rs2.jwk], '/two');
    try {
      const h2 = await harness({}, {}, { server: two });
      const before = two.jwksHits();
      expectFailure(await h2.v.verify(await sign(rs, h2.claims(), { header: { kid: null } })), 'unknown_kid');
      expect(h2.verifications()).toBe(0);
      // A kid-less token never causes a fetch, even after the cooldown.
      h2.clock.advance(60_000);
      expectFailure(await h2.v.verify(await sign(rs, h2.claims(), { header: { kid: null } })), 'unknown_kid');
      expect(two.jwksHits()).toBe(before);
    } finally {
      await two.close();
    }
  });
});

describe('attacks', () => {
  it('alg none is refused before any key or signature work', async () => {
    const h = await harness();
    for (const header of [{ alg: 'none', kid: 'rs-1', typ: 'at+jwt' }, { alg: 'none', typ: 'at+jwt' }, { alg: 'None', kid: 'rs-1' }]) {
      const token = `${b64(header)}.${b64(h.claims())}.`;
      expectFailure(await h.v.verify(token), 'alg_not_allowed');
    }
    expect(h.verifications()).toBe(0);
  });

  it('HS256 signed with the RSA public key as the HMAC secret is refused', async () => {
    const h = await harness();
    const pem = new TextEncoder().encode(await exportSPKI(rs.publicKey));
    const jwkBytes = new TextEncoder().encode(JSON.stringify(rs.jwk));
    for (const secret of [pem, jwkBytes]) {
      const token = await sign({ privateKey: secret, kid: 'rs-1', alg: 'HS256' }, h.claims());
      expectFailure(await h.v.verify(token), 'alg_not_allowed');
    }
    expect(h.verifications()).toBe(0);
  });

  it('a tampered payload with the original signature fails, and never hits the original token\'s cache entry', async () => {
    const h = await harness();
    const claims = h.claims();
    const good = await sign(rs, claims);
    const ok = await h.v.verify(good);
    expect(ok.ok).toBe(true);
    const [hd, , sig] = good.split('.');
    const tampered = `${hd}.${b64({ ...claims, sub: 'mallory', realm_access: { roles: ['admin'] } })}.${sig}`;
    expect(h.v.lookup(tampered)).toBeUndefined();
    expectFailure(await h.v.verify(tampered), 'bad_signature');
    // The original is still served from the cache, untouched.
    expect(h.v.lookup(good)).toBe(ok);
  });

  it('a stripped signature fails', async () => {
    const h = await harness();
    const [hd, pl] = (await sign(rs, h.claims())).split('.');
    expectFailure(await h.v.verify(`${hd}.${pl}.`), 'bad_signature');
    expectFailure(await h.v.verify(`${hd}.${pl}`), 'malformed');
    const [eh, ep] = (await sign(es, h.claims())).split('.');
    expectFailure(await h.v.verify(`${eh}.${ep}.`), 'bad_signature');
  });

  it('a token signed with another key under a published kid fails the signature check', async () => {
    const h = await harness();
    expectFailure(await h.v.verify(await sign(attacker, h.claims(), { header: { kid: 'rs-1' } })), 'bad_signature');
    const otherEc = await makeKey('ES256', 'x');
    expectFailure(await h.v.verify(await sign(otherEc, h.claims(), { header: { kid: 'es-1' } })), 'bad_signature');
  });

  it('an embedded jwk header is never used as the key', async () => {
    const h = await harness();
    const hits = idp.jwksHits();
    // No kid: the one RS256 key of the configured set is used, and the signature does not match it.
    const embedded = await sign(attacker, h.claims(), { header: { kid: null, jwk: attacker.jwk } });
    expectFailure(await h.v.verify(embedded), 'bad_signature');
    // Its own kid: unknown to the configured set.
    const withKid = await sign(attacker, h.claims(), { header: { jwk: attacker.jwk } });
    expectFailure(await h.v.verify(withKid), 'unknown_kid');
    expect(idp.jwksHits()).toBe(hits); // within the cooldown: not even the configured set was refetched
  });

  it('jku, x5u and x5c never cause a fetch: the server they name sees no request', async () => {
    const trap = await startTrap({ keys: [attacker.jwk] });
    try {
      const h = await harness();
      const header = { jku: `${trap.url}/jwks.json`, x5u: `${trap.url}/cert.pem`, x5c: ['MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA'] };
      // Past the cooldown, so an unknown kid may refetch: it must go to the configured key set only.
      h.clock.advance(31_000);
      const jwksBefore = idp.jwksHits();
      expectFailure(await h.v.verify(await sign(attacker, h.claims(), { header })), 'unknown_kid');
      expect(idp.jwksHits()).toBe(jwksBefore + 1);
      expectFailure(await h.v.verify(await sign(attacker, h.claims(), { header: { ...header, kid: 'rs-1' } })), 'bad_signature');
      expectFailure(await h.v.verify(await sign(attacker, h.claims(), { header: { ...header, kid: null } })), 'bad_signature');
      expect(trap.requests).toEqual([]);
    } finally {
      await trap.close();
    }
  });

  it('an unknown crit extension is refused', async () => {
    const h = await harness();
    // Signed correctly by the IdP's own key: only the extension is wrong (RFC 7515 §4.1.11).
    const unknown = await sign(rs, h.claims(), { header: { crit: ['urn:example:ext'], 'urn:example:ext': true }, crit: { 'urn:example:ext': true } });
    expectFailure(await h.v.verify(unknown), 'crit_unsupported');
    const base = { alg: 'RS256', kid: 'rs-1', typ: 'at+jwt' };
    // Sanity: the raw signer makes tokens that pass.
    expect((await h.v.verify(await signRawRs256(rs, base, h.claims()))).ok).toBe(true);
    for (const crit of [[], ['urn:example:ext'], 'urn:example:ext', ['exp']]) {
      expectFailure(await h.v.verify(await signRawRs256(rs, { ...base, crit }, h.claims())), 'crit_unsupported');
    }
  });

  it('a token over maxTokenBytes is refused before it is decoded', async () => {
    const h = await harness({}, { maxTokenBytes: 1024 });
    const huge = await sign(rs, h.claims({ pad: 'x'.repeat(2000) }));
    expectFailure(await h.v.verify(huge), 'too_large');
    expectFailure(await h.v.verify('%'.repeat(1025)), 'too_large');
    expect(h.verifications()).toBe(0);
    expect(h.v.lookup(huge)).toBeUndefined();
  });

  it('garbage is malformed, without a verification or a fetch', async () => {
    const h = await harness();
    const hits = idp.jwksHits();
    const garbage = [
      '',
      'x',
      'not.a.jwt',
      '...',
      '..',
      'a.b.c.d.e',
      `${b64({ alg: 'RS256', kid: 'rs-1' })}.${b64('not json')}.c2ln`,
      `${b64({ alg: 'RS256', kid: 'rs-1' })}.${b64('null')}.c2ln`,
      `${b64({ alg: 'RS256', kid: 'rs-1' })}.${b64([1, 2])}.c2ln`,
      `${b64('[]')}.${b64(h.claims())}.c2ln`,
      `${b64('{"alg":')}.${b64(h.claims())}.c2ln`,
      `${b64({ alg: 'RS256', kid: 'rs-1' })}.!!!.c2ln`,
      `${b64({ alg: 'RSA-OAEP', enc: 'A256GCM' })}.a.b.c.d`,
      '\u0000\u0001',
    ];
    for (const g of garbage) expectFailure(await h.v.verify(g), 'malformed');
    // A kid of the wrong type is malformed too.
    expectFailure(await h.v.verify(await sign(rs, h.claims(), { header: { kid: 42 as unknown as string } })), 'malformed');
    expect(h.verifications()).toBe(0);
    expect(idp.jwksHits()).toBe(hits);
  });

  it('a key is used only for the algorithm and type it is for', async () => {
    const h = await harness();
    // ES256 header naming an RSA key; RS256 naming the key published for PS256; EdDSA naming an EC key.
    expectFailure(await h.v.verify(await sign(es, h.claims(), { header: { kid: 'rs-1' } })), 'alg_not_allowed');
    expectFailure(await h.v.verify(await sign(rs, h.claims(), { header: { kid: 'ps-1' } })), 'alg_not_allowed');
    expectFailure(await h.v.verify(await sign(ed, h.claims(), { header: { kid: 'es-1' } })), 'alg_not_allowed');
    // An algorithm outside the issuer's allowlist.
    const narrow = await harness({ algorithms: ['RS256'] });
    expectFailure(await narrow.v.verify(await sign(es, narrow.claims())), 'alg_not_allowed');
    expect((await narrow.v.verify(await sign(rs, narrow.claims()))).ok).toBe(true);
  });
});

describe('claims', () => {
  it('exp: valid until exp + clockTolerance, expired from then on', async () => {
    const h = await harness();
    const exp = h.clock.sec() + 100;
    h.clock.set((exp + 30) * 1000 - 1);
    expect((await h.v.verify(await sign(rs, h.claims({ exp })))).ok).toBe(true);
    h.clock.set((exp + 30) * 1000);
    expectFailure(await h.v.verify(await sign(rs, h.claims({ exp }))), 'expired');
  });

  it('nbf: valid from nbf − clockTolerance on', async () => {
    const h = await harness();
    const nbf = h.clock.sec() + 100;
    h.clock.set((nbf - 30) * 1000 - 1);
    const early = await sign(rs, h.claims({ nbf, exp: nbf + 600 }));
    expectFailure(await h.v.verify(early), 'not_yet_valid');
    // Not negative-cached: the same token is valid once its time has come.
    expect(h.v.lookup(early)).toBeUndefined();
    h.clock.set((nbf - 30) * 1000);
    expect((await h.v.verify(early)).ok).toBe(true);
  });

  it('a token without exp is invalid (RFC 9068 §2.2); a non-numeric exp too', async () => {
    const h = await harness();
    const { exp: _omit, ...noExp } = h.claims();
    expectFailure(await h.v.verify(await sign(rs, noExp)), 'exp_missing');
    expectFailure(await h.v.verify(await sign(rs, h.claims({ exp: 'tomorrow' as unknown as number }))), 'claim_invalid');
  });

  it('wrong iss: an unknown issuer, and a known issuer whose keys did not sign the token', async () => {
    const other = await startIdp([(await makeKey('ES256', 'other-1')).jwk], '/other');
    try {
      const h = await harness({}, {}, { extraIssuers: [{ name: 'other', issuer: other.issuer, jwksUri: other.jwksUri, audience: ['orders-api'] }] });
      expectFailure(await h.v.verify(await sign(rs, h.claims({ iss: 'https://evil.example' }))), 'unknown_issuer');
      expectFailure(await h.v.verify(await sign(rs, h.claims({ iss: `${idp.issuer}/` }))), 'unknown_issuer');
      const { iss: _omit, ...noIss } = h.claims();
      expectFailure(await h.v.verify(await sign(rs, noIss)), 'unknown_issuer');
      // iss names "other": only other's keys are considered, and rs-1 is not among them.
      expectFailure(await h.v.verify(await sign(rs, h.claims({ iss: other.issuer }))), 'unknown_kid');
      expect(h.verifications()).toBe(0);
    } finally {
      await other.close();
    }
  });

  it('wrong or missing aud', async () => {
    const h = await harness();
    expectFailure(await h.v.verify(await sign(rs, h.claims({ aud: 'payroll-api' }))), 'wrong_audience');
    expectFailure(await h.v.verify(await sign(rs, h.claims({ aud: ['a', 'b'] }))), 'wrong_audience');
    const { aud: _omit, ...noAud } = h.claims();
    expectFailure(await h.v.verify(await sign(rs, noAud)), 'wrong_audience');
  });

  it('wrong typ: an ID token (typ JWT) or a token without typ is not an access token (RFC 9068 §4)', async () => {
    const h = await harness();
    expectFailure(await h.v.verify(await sign(rs, h.claims(), { header: { typ: 'JWT' } })), 'wrong_typ');
    expectFailure(await h.v.verify(await sign(rs, h.claims(), { header: { typ: null } })), 'wrong_typ');
    expect((await h.v.verify(await sign(rs, h.claims(), { header: { typ: 'AT+JWT' } }))).ok).toBe(true);
    // Without a required typ, an issuer accepts any.
    const loose = await harness({ typ: undefined });
    expect((await loose.v.verify(await sign(rs, loose.claims(), { header: { typ: 'JWT' } }))).ok).toBe(true);
  });
});

describe('keys', () => {
  it('discovery and the key set are fetched once, however many tokens are verified', async () => {
    const server = await startIdp([rs.jwk, es.jwk], '/once');
    try {
      const h = await harness({}, {}, { server });
      expect(server.discoveryHits()).toBe(1);
      expect(server.jwksHits()).toBe(1);
      for (let i = 0; i < 20; i++) expect((await h.v.verify(await sign(i % 2 ? rs : es, h.claims()))).ok).toBe(true);
      expect(server.discoveryHits()).toBe(1);
      expect(server.jwksHits()).toBe(1);
      expect(h.v.readiness()).toEqual({
        ready: true,
        issuers: { corp: { ok: true, state: 'ready', fetchedAt: h.clock.now(), nextAttemptAt: h.clock.now() + 3_600_000 } },
        pool: { ok: true },
      });
    } finally {
      await server.close();
    }
  });

  it('refuses a discovery document whose issuer differs from the configured one', async () => {
    const server = await startIdp([rs.jwk], '/mismatch');
    server.setDiscoveryIssuer('https://evil.example/realms/test');
    try {
      const h = await harness({}, {}, { server });
      const ready = h.v.readiness();
      expect(ready.ready).toBe(false);
      expect(ready.issuers['corp']?.ok).toBe(false);
      expect(ready.issuers['corp']?.error).toMatch(/does not equal the configured issuer/);
      expect(server.jwksHits()).toBe(0);
      // No keys at all is the gateway's problem: 503, not 401.
      expectFailure(await h.v.verify(await sign(rs, h.claims())), 'verifier_unavailable', 'verifier_unavailable');
      expect(h.logs.some((l) => l.level === 'error' && l.msg === 'key set fetch failed')).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('reads keys from a jwksUri and from a jwksFile', async () => {
    const byUri = await harness({ discovery: undefined, jwksUri: idp.jwksUri });
    expect((await byUri.v.verify(await sign(ed, byUri.claims()))).ok).toBe(true);

    const dir = mkdtempSync(join(tmpdir(), 'jwks-'));
    const file = join(dir, 'jwks.json');
    writeFileSync(file, JSON.stringify({ keys: [ps.jwk, { kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' }] }));
    const byFile = await harness({ discovery: undefined, jwksFile: file });
    expect((await byFile.v.verify(await sign(ps, byFile.claims()))).ok).toBe(true);
    // The symmetric key in the file is never a verification key.
    const hs = await sign({ privateKey: new TextEncoder().encode('secret'), kid: 'hmac', alg: 'HS256' }, byFile.claims());
    expectFailure(await byFile.v.verify(hs), 'alg_not_allowed');
  });

  it('key rotation: a token with a new kid is accepted after the refetch one cooldown later', async () => {
    const a = await makeKey('RS256', 'a');
    const b = await makeKey('ES256', 'b');
    const server = await startIdp([a.jwk], '/rotate');
    try {
      const h = await harness({}, { jwksCooldown: '30s', cache: { negativeTtl: '1m' } }, { server });
      expect(server.jwksHits()).toBe(1);
      expect((await h.v.verify(await sign(a, h.claims()))).ok).toBe(true);
      // The IdP rotates: b appears.
      server.setKeys([a.jwk, b.jwk]);
      const tokenB = await sign(b, h.claims());
      // Within the cooldown of the start-up fetch: no refetch, unknown kid…
      h.clock.advance(10_000);
      expectFailure(await h.v.verify(tokenB), 'unknown_kid');
      expect(server.jwksHits()).toBe(1);
      // …cached only until a refetch may happen (20 s left), not for the 1 m negativeTtl.
      h.clock.advance(19_999);
      expect(h.v.lookup(tokenB)).toBe(await h.v.verify(tokenB));
      h.clock.advance(1);
      expect(h.v.lookup(tokenB)).toBeUndefined();
      // One cooldown after the last fetch: the unknown kid refetches, and the same token passes.
      const r = await h.v.verify(tokenB);
      expect(r.ok).toBe(true);
      expect(server.jwksHits()).toBe(2);
      // a is retired. Its kid is still in the set we hold, so a-tokens pass until the
      // next refetch (known kids never cause one)…
      server.setKeys([b.jwk]);
      h.clock.advance(30_000);
      expect((await h.v.verify(await sign(a, h.claims()))).ok).toBe(true);
      expect(server.jwksHits()).toBe(2);
      // …which the next unknown kid causes; from then on a is unknown.
      const c = await makeKey('ES256', 'c');
      expectFailure(await h.v.verify(await sign(c, h.claims())), 'unknown_kid');
      expect(server.jwksHits()).toBe(3);
      expectFailure(await h.v.verify(await sign(a, h.claims())), 'unknown_kid');
      expect((await h.v.verify(await sign(b, h.claims()))).ok).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('an unknown-kid flood costs at most one extra key-set fetch per cooldown', async () => {
    const server = await startIdp([rs.jwk], '/flood');
    try {
      const h = await harness({}, {}, { server });
      expect(server.jwksHits()).toBe(1);
      h.clock.advance(31_000);
      const tokens = await Promise.all(
        Array.from({ length: 100 }, () => sign(attacker, h.claims(), { header: { kid: randomUUID() } })),
      );
      const results = await Promise.all(tokens.map((t) => h.v.verify(t)));
      for (const r of results) expectFailure(r, 'unknown_kid');
      expect(server.jwksHits()).toBe(2);
      // And nothing more within that cooldown.
      h.clock.advance(29_000);
      const more = await Promise.all(
        Array.from({ length: 100 }, async () => h.v.verify(await sign(attacker, h.claims(), { header: { kid: randomUUID() } }))),
      );
      for (const r of more) expectFailure(r, 'unknown_kid');
      expect(server.jwksHits()).toBe(2);
      expect(h.verifications()).toBe(0);
    } finally {
      await server.close();
    }
  });

  it('a failed refetch keeps the last good keys, and readiness and the log say so', async () => {
    const server = await startIdp([rs.jwk], '/outage');
    try {
      const h = await harness({}, {}, { server });
      server.failWith(500);
      h.clock.advance(31_000);
      expectFailure(await h.v.verify(await sign(attacker, h.claims(), { header: { kid: 'new' } })), 'unknown_kid');
      expect(server.jwksHits()).toBe(2);
      const ready = h.v.readiness();
      expect(ready.ready).toBe(true);
      expect(ready.issuers['corp']).toMatchObject({ ok: true, state: 'stale', cause: 'http_status', error: expect.stringMatching(/HTTP 500$/) });
      expect(h.logs).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'key set fetch failed' }));
      // The last good keys still verify.
      expect((await h.v.verify(await sign(rs, h.claims()))).ok).toBe(true);
      // The IdP is back: the next allowed refetch clears the error.
      server.failWith(null);
      h.clock.advance(31_000);
      await h.v.verify(await sign(attacker, h.claims(), { header: { kid: 'newer' } }));
      expect(h.v.readiness().issuers['corp']).toEqual({ ok: true, state: 'ready', fetchedAt: h.clock.now(), nextAttemptAt: h.clock.now() + 3_600_000 });
    } finally {
      await server.close();
    }
  });

  it('no key set at start: not ready and 503, until the IdP answers after a cooldown', async () => {
    const server = await startIdp([rs.jwk], '/late');
    server.failWith(503);
    try {
      const h = await harness({ discovery: undefined, jwksUri: server.jwksUri }, {}, { server });
      expect(h.v.readiness().ready).toBe(false);
      expect(h.v.readiness().issuers['corp']?.error).toMatch(/HTTP 503/);
      const token = await sign(rs, h.claims());
      expectFailure(await h.v.verify(token), 'verifier_unavailable', 'verifier_unavailable');
      expect(h.v.lookup(token)).toBeUndefined(); // never negative-cached
      server.failWith(null);
      h.clock.advance(30_000);
      expect((await h.v.verify(token)).ok).toBe(true);
      expect(h.v.readiness().ready).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('never writes a token into a log line or a failure description', async () => {
    const server = await startIdp([rs.jwk], '/logs');
    try {
      const h = await harness({}, {}, { server });
      const tokens = [await sign(rs, h.claims()), await sign(attacker, h.claims(), { header: { kid: 'zz' } }), `g4rb4ge.${randomUUID()}.x`];
      server.failWith(500);
      h.clock.advance(31_000);
      const results = await Promise.all(tokens.map((t) => h.v.verify(t)));
      const text = JSON.stringify({ logs: h.logs, results });
      expect(h.logs.length).toBeGreaterThan(0);
      for (const t of tokens) {
        expect(text).not.toContain(t);
        expect(text).not.toContain(t.split('.')[1]!);
      }
    } finally {
      await server.close();
    }
  });
});

describe('cache', () => {
  it('a hit does no verification and no fetch, and lookup returns the cached object itself', async () => {
    const h = await harness();
    const token = await sign(rs, h.claims());
    expect(h.v.lookup(token)).toBeUndefined();
    const first = await h.v.verify(token);
    expect(first.ok).toBe(true);
    const hits = idp.jwksHits();
    expect(h.verifications()).toBe(1);
    expect(await h.v.verify(token)).toBe(first);
    expect(h.v.lookup(token)).toBe(first);
    expect(h.v.lookup(token)).toBe(h.v.lookup(token));
    expect(h.verifications()).toBe(1);
    expect(idp.jwksHits()).toBe(hits);
    expect(h.v.stats!().cacheSize).toBe(1);
  });

  it('entries live until exp, at most maxTtl', async () => {
    const h = await harness({}, { cache: { maxTtl: '1m' } });
    const long = await sign(rs, h.claims({ exp: h.clock.sec() + 600 }));
    const short = await sign(rs, h.claims({ exp: h.clock.sec() + 20 }));
    await h.v.verify(long);
    await h.v.verify(short);
    h.clock.advance(20_000);
    expect(h.v.lookup(short)).toBeDefined();
    h.clock.advance(1);
    expect(h.v.lookup(short)).toBeUndefined(); // TTL never past exp
    expect(h.v.lookup(long)?.ok).toBe(true);
    h.clock.advance(40_000);
    expect(h.v.lookup(long)).toBeUndefined(); // maxTtl
    expect((await h.v.verify(long)).ok).toBe(true);
    expect(h.verifications()).toBe(3);
  });

  it('exp is re-checked on every hit against the clock', async () => {
    // Tolerance 0: the cache entry lives until exp, and at exp itself the hit must say expired.
    const h = await harness({ clockTolerance: '0s' });
    const exp = h.clock.sec() + 60;
    const token = await sign(rs, h.claims({ exp }));
    expect((await h.v.verify(token)).ok).toBe(true);
    h.clock.set(exp * 1000 - 1);
    expect(h.v.lookup(token)?.ok).toBe(true);
    h.clock.set(exp * 1000);
    const r = h.v.lookup(token);
    expect(r).toBeDefined();
    expectFailure(r!, 'expired');
  });

  it('a failed token is answered from the negative cache until negativeTtl', async () => {
    const h = await harness({}, { cache: { negativeTtl: '10s' } });
    const [hd, pl] = (await sign(rs, h.claims())).split('.');
    const bad = `${hd}.${pl}.${'A'.repeat(342)}`;
    const first = await h.v.verify(bad);
    expectFailure(first, 'bad_signature');
    expect(h.verifications()).toBe(1);
    expect(h.v.lookup(bad)).toBe(first);
    expect(await h.v.verify(bad)).toBe(first);
    expect(h.verifications()).toBe(1);
    expect(h.v.stats!().negativeSize).toBe(1);
    h.clock.advance(10_001);
    expect(h.v.lookup(bad)).toBeUndefined();
  });

  it('concurrent misses for one token share one verification (single flight)', async () => {
    const h = await harness();
    const token = await sign(es, h.claims());
    const results = await Promise.all(Array.from({ length: 10 }, () => h.v.verify(token)));
    expect(h.verifications()).toBe(1);
    for (const r of results) expect(r).toBe(results[0]);
    expect(results[0]?.ok).toBe(true);
  });

  it('is bounded by cache.max', async () => {
    const h = await harness({}, { cache: { max: 2 } });
    for (let i = 0; i < 3; i++) await h.v.verify(await sign(rs, h.claims()));
    expect(h.v.stats!().cacheSize).toBe(2);
  });

  it('threads 0: more concurrent verifications than maxQueue → overloaded, never cached, then recovers', async () => {
    const h = await harness({}, { maxQueue: 1 });
    const tokens = await Promise.all(Array.from({ length: 5 }, () => sign(rs, h.claims())));
    const results = await Promise.all(tokens.map((t) => h.v.verify(t)));
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    const over = results.filter((r) => !r.ok);
    expect(over).toHaveLength(4);
    for (const r of over) expectFailure(r, 'overloaded', 'overloaded');
    const rejected = tokens[results.findIndex((r) => !r.ok)]!;
    expect(h.v.lookup(rejected)).toBeUndefined();
    expect((await h.v.verify(rejected)).ok).toBe(true);
  });

  it('after close every verification answers verifier_unavailable', async () => {
    const h = await harness();
    const token = await sign(rs, h.claims());
    await h.v.close();
    expectFailure(await h.v.verify(token), 'verifier_unavailable', 'verifier_unavailable');
  });
});

describe('key-set fetch reporting (JWKS fetches and failures per issuer)', () => {
  it('tells onKeyFetch about every load attempt, per issuer, ok or failed, and counts failures in stats', async () => {
    const good = await startIdp([rs.jwk], '/report-good');
    const bad = await startIdp([es.jwk], '/report-bad');
    bad.failWith(500);
    try {
      const fetches: [string, boolean][] = [];
      const h = await harness(
        { name: 'good', issuer: good.issuer, discovery: true },
        {},
        {
          server: good,
          extraIssuers: [{ name: 'bad', issuer: bad.issuer, jwksUri: bad.jwksUri, audience: ['orders-api'], algorithms: ALGS }],
          opts: { onKeyFetch: (issuer, ok) => fetches.push([issuer, ok]) },
        },
      );
      // One load per issuer at start.
      expect(fetches.sort()).toEqual([
        ['bad', false],
        ['good', true],
      ]);
      expect(h.v.stats!()).toMatchObject({ keyFetches: 2, keyFetchFailures: 1 });
      // An unknown kid after the cooldown refetches: reported again, for that issuer only.
      h.clock.advance(31_000);
      good.failWith(503);
      expectFailure(await h.v.verify(await sign(attacker, h.claims({ iss: good.issuer }), { header: { kid: 'rotated' } })), 'unknown_kid');
      expect(fetches.filter(([i]) => i === 'good')).toEqual([
        ['good', true],
        ['good', false],
      ]);
      // The failing issuer recovers on its next allowed refresh (it never had keys, so any token asks).
      bad.failWith(null);
      expect((await h.v.verify(await sign(es, h.claims({ iss: bad.issuer })))).ok).toBe(true);
      expect(fetches.filter(([i]) => i === 'bad')).toEqual([
        ['bad', false],
        ['bad', true],
      ]);
      expect(h.v.stats!()).toMatchObject({ keyFetches: 4, keyFetchFailures: 2 });
    } finally {
      await good.close();
      await bad.close();
    }
  });

  it('a throwing onKeyFetch does not turn a good key set into a failure', async () => {
    const h = await harness({}, {}, { opts: { onKeyFetch: () => { throw new Error('metrics broke'); } } });
    expect(h.v.readiness().ready).toBe(true);
    expect((await h.v.verify(await sign(rs, h.claims()))).ok).toBe(true);
  });
});

describe('floods', () => {
  it('unique garbage, bad-signature, unknown-kid and unknown-issuer tokens stay within the cache bounds and never evict a cached valid token', async () => {
    const h = await harness({}, { cache: { max: 10, negativeMax: 100 } });
    const valid = await sign(rs, h.claims());
    const first = await h.v.verify(valid);
    expect(first.ok).toBe(true);
    const hits = idp.jwksHits();
    const [hd, pl] = valid.split('.');
    const flood: Promise<VerifyResult>[] = [];
    for (let i = 0; i < 5000; i++) flood.push(h.v.verify(`${randomUUID()}.${i}.garbage`));
    for (let i = 0; i < 200; i++) flood.push(h.v.verify(`${hd}.${pl}.${Buffer.from(randomUUID().repeat(8)).toString('base64url')}`));
    for (let i = 0; i < 200; i++) flood.push(h.v.verify(await sign(attacker, h.claims(), { header: { kid: randomUUID() } })));
    for (let i = 0; i < 200; i++) flood.push(h.v.verify(await sign(attacker, h.claims({ iss: `https://evil.example/${i}` }))));
    const results = await Promise.all(flood);
    expect(results.every((r) => !r.ok)).toBe(true);
    const s = h.v.stats!();
    expect(s.negativeSize).toBeLessThanOrEqual(100);
    expect(s.negativeSize).toBeGreaterThan(0);
    expect(s.cacheSize).toBe(1); // failures never enter the positive cache
    expect(s.pending).toBe(0); // no single-flight entry outlives its verification
    // Only the bad signatures reached jose; the valid token is still the same cached object.
    expect(s.verifications).toBe(1 + 200);
    expect(h.v.lookup(valid)).toBe(first);
    expect(await h.v.verify(valid)).toBe(first);
    expect(h.v.stats!().verifications).toBe(201);
    expect(idp.jwksHits()).toBe(hits); // the unknown kids came within the cooldown: no fetch
  });
});

describe('debug lines', () => {
  it('summarizes cache evictions (how many, why) at debug level, at most every 10 s and at close', async () => {
    const h = await harness({}, { cache: { max: 2, negativeTtl: '1s' } });
    for (let i = 0; i < 5; i++) expect((await h.v.verify(await sign(rs, h.claims({ sub: `user-${i}` })))).ok).toBe(true);
    const forged = await sign(attacker, h.claims(), { header: { kid: 'rs-1' } });
    expectFailure(await h.v.verify(forged), 'bad_signature');
    h.clock.advance(1001);
    expect(h.v.lookup(forged)).toBeUndefined(); // its negative entry expired
    expect(h.logs.filter((l) => l.msg === 'token cache evictions')).toEqual([]);
    await h.v.close();
    const lines = h.logs.filter((l) => l.msg === 'token cache evictions');
    expect(lines).toEqual([
      { level: 'debug', msg: 'token cache evictions', fields: { cache: 'positive', evicted: { evict: 3, expire: 0, delete: 0 } } },
      { level: 'debug', msg: 'token cache evictions', fields: { cache: 'negative', evicted: { evict: 0, expire: 1, delete: 0 } } },
    ]);
  });

  it('logs each key-set fetch: url, status, keys', async () => {
    const h = await harness();
    expect(h.logs).toContainEqual({ level: 'debug', msg: 'key set fetched', fields: { issuer: 'corp', url: idp.jwksUri, status: 200, keys: 4, refreshInMs: 3_600_000 } });
  });
});

describe('single flight of key-set fetches', () => {
  it('concurrent unknown kids share one fetch even with no cooldown; sequential ones each fetch', async () => {
    const server = await startIdp([rs.jwk], '/single-flight');
    try {
      const h = await harness({}, { jwksCooldown: '0s' }, { server });
      expect(server.jwksHits()).toBe(1);
      const tokens = await Promise.all(Array.from({ length: 50 }, () => sign(attacker, h.claims(), { header: { kid: randomUUID() } })));
      const results = await Promise.all(tokens.map((t) => h.v.verify(t)));
      for (const r of results) expectFailure(r, 'unknown_kid');
      // Only the single flight held them together: the cooldown would have let every one fetch.
      expect(server.jwksHits()).toBe(2);
      for (let i = 0; i < 3; i++) expectFailure(await h.v.verify(await sign(attacker, h.claims(), { header: { kid: randomUUID() } })), 'unknown_kid');
      expect(server.jwksHits()).toBe(5);
    } finally {
      await server.close();
    }
  });
});

describe('crit b64', () => {
  it('an unencoded-payload token (crit b64, RFC 7797) is never a valid JWT', async () => {
    const h = await harness();
    const token = await signRawRs256(rs, { alg: 'RS256', kid: 'rs-1', typ: 'at+jwt', crit: ['b64'], b64: false }, h.claims());
    // jose knows the b64 extension, so it is not an unknown crit; JWTs must not use it (RFC 7797 §7).
    expectFailure(await h.v.verify(token), 'malformed');
  });
});

describe('one spelling per token (RFC 7515 §2, RFC 4648 §3.5)', () => {
  it('refuses every other spelling of a valid token as malformed, before any decoding, and leaves the original alone', async () => {
    const h = await harness();
    for (const key of [rs, es]) {
      const good = await sign(key, h.claims());
      const others = respellings(good);
      // Pad bits in the 2 or 3 segments whose length is not a multiple of 4, padding, the other alphabet.
      expect(others.length).toBeGreaterThanOrEqual(3);
      const before = h.verifications();
      for (const other of others) {
        expect(h.v.lookup(other)).toBeUndefined();
        expectFailure(await h.v.verify(other), 'malformed');
        // Not remembered: the scan costs less than a cache entry.
        expect(h.v.lookup(other)).toBeUndefined();
      }
      expect(h.verifications()).toBe(before);
      const ok = await h.v.verify(good);
      expect(ok.ok).toBe(true);
      // Refused even once the original is cached: a respelling never finds its entry.
      for (const other of others) expectFailure(await h.v.verify(other), 'malformed');
      expect(h.v.lookup(good)).toBe(ok);
    }
    expect(h.v.stats!().negativeSize).toBe(0);
  });

  it('a JWE (five segments) or an opaque token is malformed', async () => {
    const h = await harness();
    const [hd, pl, sg] = (await sign(rs, h.claims())).split('.');
    for (const t of [`${hd}.${pl}.${sg}.${sg}.${sg}`, 'opaque-access-token-0123456789', `${hd}${pl}${sg}`]) expectFailure(await h.v.verify(t), 'malformed');
    expect(h.verifications()).toBe(0);
  });
});

describe('claims RFC 9068 requires', () => {
  it('a token without sub is refused (sub_missing), and remembered', async () => {
    const h = await harness();
    const { sub: _omit, ...noSub } = h.claims();
    for (const claims of [noSub, { ...noSub, sub: null }, { ...noSub, sub: '' }] as JWTPayload[]) {
      const token = await sign(rs, claims);
      const r = await h.v.verify(token);
      expectFailure(r, 'sub_missing');
      expect(r.ok === false && r.description).toBe('token has no subject');
      expect(h.v.lookup(token)).toBe(r);
    }
    expectFailure(await h.v.verify(await sign(rs, h.claims({ sub: { id: 1 } as unknown as string }))), 'claim_invalid');
    expect(h.v.stats!().cacheSize).toBe(0);
  });

  it('the subject is read at the issuer\'s configured path: nothing there is sub_missing', async () => {
    const h = await harness({ claims: { subject: 'ext.uid' } });
    const r = await h.v.verify(await sign(rs, h.claims({ ext: { uid: 'u-7' } })));
    expect(r.ok && r.principal.subject).toBe('u-7');
    expectFailure(await h.v.verify(await sign(rs, h.claims())), 'sub_missing');
    expectFailure(await h.v.verify(await sign(rs, h.claims({ ext: { id: 'u-7' } }))), 'sub_missing');
  });

  it('iat: refused from clockTolerance in the future on (not_yet_valid, never cached); a non-numeric iat is claim_invalid', async () => {
    const h = await harness();
    const now = h.clock.sec();
    expect((await h.v.verify(await sign(rs, h.claims({ iat: now + 30 })))).ok).toBe(true);
    const ahead = await sign(rs, h.claims({ iat: now + 31 }));
    expectFailure(await h.v.verify(ahead), 'not_yet_valid');
    expect(h.v.lookup(ahead)).toBeUndefined();
    // Once the clock has caught up, the same token is an ordinary one.
    h.clock.advance(1_000);
    expect((await h.v.verify(ahead)).ok).toBe(true);
    const text = await sign(rs, h.claims({ iat: 'yesterday' as unknown as number }));
    expectFailure(await h.v.verify(text), 'claim_invalid');
    expect(h.v.lookup(text)).toBeDefined();
    // No iat at all is fine: RFC 9068 §2.2 requires it of the issuer, RFC 7519 §4.1.6 leaves it optional.
    const { iat: _omit, ...noIat } = h.claims();
    expect((await h.v.verify(await sign(rs, noIat))).ok).toBe(true);
  });
});

describe('claims that can be rendered', () => {
  const lone = 'alice\ud800';

  it('a lone surrogate in sub, acr, or an amr / role / group / scope item is claim_unrenderable: negative-cached, never positive-cached', async () => {
    const h = await harness({ claims: { roles: 'realm_access.roles', groups: 'groups', scopes: 'scope' } });
    const cases: JWTPayload[] = [
      { sub: lone },
      { realm_access: { roles: ['orders.reader', lone] } },
      { groups: [lone] },
      { amr: ['pwd', lone] },
      { acr: lone },
      { scope: `openid ${lone}` },
    ];
    for (const extra of cases) {
      const token = await sign(rs, h.claims(extra));
      // The signed JSON carries the escape: a valid signature over valid JSON.
      expect(Buffer.from(token.split('.')[1]!, 'base64url').toString()).toContain('\\ud800');
      const r = await h.v.verify(token);
      expectFailure(r, 'claim_unrenderable');
      expect(r.ok === false && r.description).toBe('a claim value is not valid Unicode text');
      expect(h.v.lookup(token)).toBe(r);
    }
    expect(h.v.stats!().cacheSize).toBe(0);
    expect(h.verifications()).toBe(cases.length);
    // A surrogate pair is text like any other.
    const r = await h.v.verify(await sign(rs, h.claims({ sub: 'alice😀' })));
    expect(r.ok && r.principal.subject).toBe('alice😀');
  });
});

describe('nesting cap', () => {
  it('32 levels pass; 33 levels in the payload or the header are malformed, refused before a verification and remembered', async () => {
    const h = await harness({}, { maxTokenBytes: 65536 });
    const header = { alg: 'RS256', kid: 'rs-1', typ: 'at+jwt' };
    const ok = await h.v.verify(await signRawRs256(rs, header, deepClaims(h.claims(), 31)));
    expect(ok.ok).toBe(true);
    const tokens = [
      await signRawRs256(rs, header, deepClaims(h.claims(), 32)),
      await signRawRs256(rs, header, deepClaims(h.claims(), 32, 'array')),
      await signRawRs256(rs, header, deepClaims(h.claims(), 20_000, 'array')),
      await signRawRs256(rs, header, deepClaims(h.claims(), 5_000)),
      await signRawRs256(rs, `${JSON.stringify(header).slice(0, -1)},"x":${'['.repeat(40)}${']'.repeat(40)}}`, h.claims()),
    ];
    for (const t of tokens) {
      expect(t.length).toBeLessThanOrEqual(65536);
      const r = await h.v.verify(t);
      expectFailure(r, 'malformed');
      expect(h.v.lookup(t)).toBe(r);
    }
    expect(h.verifications()).toBe(1);
  });
});
