/**
 * Token hardening through the built gateway (dist/cli.js) with a real discovery + JWKS
 * server and a real upstream: one spelling per token, `sub` and `iat`, claims that can
 * be rendered, and the verifier pool that deeply nested claims once wedged.
 *
 * The wedge, as it was: with maxTokenBytes raised to 64 KiB, a validly signed token
 * whose claim nests ~2,000 objects deep verified in the worker, but rebuilding the
 * payload on the main thread overflowed the stack, Node reported that only as a
 * `messageerror`, the task never settled and that worker was gone for good; two such
 * tokens (threads: 2) left no worker, and every later cold token waited forever while
 * /readyz said 200.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import type { JWTPayload } from 'jose';
import { baseConfig, startGatewayProcess, startUpstream, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';
import { recordToken } from '../leaks.js';
import { deepClaims, makeKey, respellings, sign, signRawRs256, startIdp, type IdpServer, type TestKey } from './idp.js';

let rs: TestKey;
let es: TestKey;
let idp: IdpServer;
let up: Upstream;
let gw: GatewayProcess;
const now = () => Math.floor(Date.now() / 1000);
const HEADER = { alg: 'RS256', kid: 'rs-1', typ: 'at+jwt' };

beforeAll(async () => {
  [rs, es] = await Promise.all([makeKey('RS256', 'rs-1'), makeKey('ES256', 'es-1')]);
  idp = await startIdp([rs.jwk, es.jwk], '/realms/tokens');
  up = await startUpstream();
  gw = await startGatewayProcess(
    writeConfig(
      baseConfig({
        verifier: { threads: 2, maxTokenBytes: 65536 },
        issuers: [{ name: 'corp', issuer: idp.issuer, discovery: true, audience: ['orders-api'], typ: 'at+jwt' }],
        upstreams: { app: { url: up.url } },
        routes: [{ path: '/orders/', upstream: 'app', auth: 'token' }],
        // This file sends many invalid tokens from one address on purpose.
        rateLimit: { spraying: { enabled: false } },
      }),
    ),
  );
});

afterAll(async () => {
  await gw?.stop();
  await up?.close();
  await idp?.close();
});

function claims(extra: JWTPayload = {}): JWTPayload {
  return { iss: idp.issuer, aud: 'orders-api', sub: 'alice', iat: now(), exp: now() + 600, jti: randomUUID(), ...extra };
}

interface Answer {
  status: number;
  challenge: string | undefined;
  retryAfter: string | undefined;
  body: Record<string, string>;
}

/** One request; a gateway that never answers fails it after 15 s instead of the test's 60. */
async function call(token: string): Promise<Answer> {
  recordToken(token);
  const res = await request(`${gw.url}/orders/1`, { headers: { authorization: `Bearer ${token}` }, headersTimeout: 15_000 });
  const text = await res.body.text();
  return {
    status: res.statusCode,
    challenge: res.headers['www-authenticate'] as string | undefined,
    retryAfter: res.headers['retry-after'] as string | undefined,
    body: JSON.parse(text || '{}') as Record<string, string>,
  };
}

function expectInvalid(a: Answer, description: string): void {
  expect(a.status, description).toBe(401);
  expect(a.challenge).toBe(`Bearer realm="mfa-gateway", error="invalid_token", error_description="${description}"`);
  expect(a.body['error']).toBe('invalid_token');
  expect(a.body['error_description']).toBe(description);
  expect(typeof a.body['request_id']).toBe('string');
}

async function readyz(): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await request(`${gw.adminUrl}/readyz`);
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

describe('one spelling per token', () => {
  it('refuses every other spelling of a valid token, and never reaches the upstream with one', async () => {
    /**
     * `=` inside the token is no RFC 6750 b64token at all (400 invalid_request, as
     * before); every other respelling is a b64token and is refused by the canonical check.
     */
    const expectRefused = (a: Answer, other: string): void => {
      if (/=\./.test(other)) {
        expect(a.status).toBe(400);
        expect(a.body).toMatchObject({ error: 'invalid_request', error_description: 'malformed bearer token' });
      } else {
        expectInvalid(a, 'token malformed');
      }
    };
    for (const key of [rs, es]) {
      const good = await sign(key, claims());
      const others = respellings(good);
      // Pad bits and padding of the signature, and the other alphabet somewhere: 401s.
      expect(others.filter((t) => !/=\./.test(t)).length).toBeGreaterThanOrEqual(3);
      const before = up.received.length;
      // Before the original is cached, and after: a respelling never shares its entry.
      for (const other of others) expectRefused(await call(other), other);
      expect((await call(good)).status).toBe(200);
      for (const other of others) expectRefused(await call(other), other);
      expect(up.received.length).toBe(before + 1);
    }
  });
});

describe('claims', () => {
  it('no sub: 401 token has no subject; an iat in the future: 401 token not yet valid', async () => {
    const before = up.received.length;
    expectInvalid(await call(await sign(rs, { ...claims(), sub: undefined })), 'token has no subject');
    expectInvalid(await call(await sign(rs, claims({ iat: now() + 3600 }))), 'token not yet valid');
    expectInvalid(await call(await sign(rs, claims({ iat: 'now' as unknown as number }))), 'claim invalid');
    expect(up.received.length).toBe(before);
  });

  it('a lone surrogate in sub or a list claim: 401, and the upstream never sees the request', async () => {
    const before = up.received.length;
    for (const extra of [{ sub: 'alice\ud800' }, { roles: ['reader', '\udc00'] }, { amr: ['pwd', 'otp\ud83d'] }, { scope: 'a \ud800b' }]) {
      const token = await sign(rs, claims(extra));
      expectInvalid(await call(token), 'a claim value is not valid Unicode text');
      // Again: the negative cache answers, the same way.
      expectInvalid(await call(token), 'a claim value is not valid Unicode text');
    }
    expect(up.received.length).toBe(before);
    const ok = await call(await sign(rs, claims({ sub: 'Zoë 😀' })));
    expect(ok.status).toBe(200);
    expect(up.received.at(-1)!.headers['x-auth-subject']).toBe('Zo%C3%AB%20%F0%9F%98%80');
  });
});

describe('deeply nested claims (the worker-pool wedge)', () => {
  it('several deep tokens are refused (401 token malformed) and a normal cold token still verifies', async () => {
    // Nested deeply enough that a structured clone overflows, and short enough for the
    // gateway's 16 KiB header block (beyond it, 431 before any token is read).
    const deep = [
      await signRawRs256(rs, HEADER, deepClaims(claims(), 2_000)),
      await signRawRs256(rs, HEADER, deepClaims(claims(), 2_000)),
      await signRawRs256(rs, HEADER, deepClaims(claims(), 2_200)),
      await signRawRs256(rs, HEADER, deepClaims(claims(), 5_000, 'array')),
    ];
    for (const t of deep) expect(t.length).toBeLessThan(15_500);
    const before = up.received.length;
    // Concurrently, as an attacker would send them, and then each again.
    for (const a of await Promise.all(deep.map(call))) expectInvalid(a, 'token malformed');
    for (const t of deep) expectInvalid(await call(t), 'token malformed');
    expect(up.received.length).toBe(before);
    // Every worker is still there: fresh tokens, never seen before, verify.
    const cold = await Promise.all(Array.from({ length: 4 }, async (_, i) => call(await sign(i % 2 ? es : rs, claims({ sub: `cold-${i}` })))));
    expect(cold.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    expect(up.received.slice(-4).map((r) => r.headers['x-auth-subject']).sort()).toEqual(['cold-0', 'cold-1', 'cold-2', 'cold-3']);
    // A claim at the deepest allowed level (32 with the payload object) passes.
    expect((await call(await signRawRs256(rs, HEADER, deepClaims(claims(), 31)))).status).toBe(200);
  });

  it('/readyz reports the verifier pool, and no verification timed out', async () => {
    const r = await readyz();
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: 'ready', verifier: { ok: true }, issuers: { corp: { ok: true } } });
    const metrics = await (await request(`${gw.adminUrl}/metrics`)).body.text();
    expect(metrics).toMatch(/^# TYPE mfa_gateway_verifier_timeouts_total counter$/m);
    expect(metrics).toMatch(/^mfa_gateway_verifier_timeouts_total 0$/m);
  });
});
