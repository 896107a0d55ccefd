/**
 * Identity assertions as an upstream sees them: verified with jose against the signer's
 * own `jwks()` (nothing else shared), claims exact, one signature per principal and
 * audience while fresh. Injected clock; keys generated, or written to files per run.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { calculateJwkThumbprint, createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import type { Principal } from '../../../src/authz/claims.js';
import { AssertionSigner } from '../../../src/assertion/signer.js';
import { hideMemo, MEMO, newMemo } from '../../../src/authz/memo.js';

const T0 = 1_800_000_000_000;
const dir = mkdtempSync(join(tmpdir(), 'assertion-'));

/** A principal as the verifier makes one: frozen, with its memo (src/authz/memo.ts), where the signer keeps its assertions. */
function principal(over: Partial<Principal> = {}): Principal {
  return Object.freeze(hideMemo({
    issuer: 'corp', iss: 'https://idp.example.com', subject: 'alice', exp: T0 / 1000 + 600, amr: ['pwd', 'otp'], acr: 'urn:mfa', authTime: T0 / 1000 - 120,
    roles: ['reader', 'admin'], scopes: ['orders:read', 'orders:write'], groups: ['ops'], sub: 'alice', sid: 's', jti: 'j', iat: T0 / 1000 - 60,
    cnfJkt: undefined, clientId: 'app', ...over, [MEMO]: newMemo(),
  }));
}

function signer(over: Partial<ConstructorParameters<typeof AssertionSigner>[0]> = {}) {
  const clock = { t: T0 };
  return { clock, s: new AssertionSigner({ issuer: 'https://gateway.example.com', now: () => clock.t, ...over }) };
}

/** What the upstream does: verify against the published key set, for its own name. */
async function upstreamVerifies(s: AssertionSigner, jwt: string, audience: string, at: number): Promise<JWTPayload> {
  const { payload, protectedHeader } = await jwtVerify(jwt, createLocalJWKSet(s.jwks() as never), {
    issuer: 'https://gateway.example.com',
    audience,
    algorithms: ['ES256'],
    typ: 'JWT',
    requiredClaims: ['exp', 'iat', 'sub'],
    currentDate: new Date(at),
  });
  expect(protectedHeader).toEqual({ alg: 'ES256', typ: 'JWT', kid: s.kid });
  return payload;
}

describe('AssertionSigner', () => {
  it('signs an assertion the upstream verifies with jwks(), with exactly these claims', async () => {
    const { s } = signer();
    const jwt = s.assertionFor(principal(), 'orders');
    expect(await upstreamVerifies(s, jwt, 'orders', T0)).toEqual({
      iss: 'https://gateway.example.com',
      aud: 'orders',
      sub: 'alice',
      amr: ['pwd', 'otp'],
      acr: 'urn:mfa',
      auth_time: T0 / 1000 - 120,
      roles: ['reader', 'admin'],
      groups: ['ops'],
      scope: 'orders:read orders:write',
      iat: T0 / 1000,
      exp: T0 / 1000 + 60,
    });
    // Another upstream's name is refused by that upstream... and the key set holds only the public key.
    await expect(upstreamVerifies(s, jwt, 'billing', T0)).rejects.toMatchObject({ code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'aud' });
    expect(s.jwks().keys).toHaveLength(1);
    expect(s.jwks().keys[0]).toEqual({ kty: 'EC', crv: 'P-256', x: expect.any(String), y: expect.any(String), kid: s.kid, alg: 'ES256', use: 'sig' });
    expect(s.kid).toBe(await calculateJwkThumbprint(s.jwks().keys[0] as never, 'sha256'));
  });

  it('leaves out what the principal lacks, and never outlives the access token', async () => {
    const { s } = signer();
    const bare = principal({ amr: undefined, acr: undefined, authTime: undefined, roles: null, groups: null, scopes: [], exp: T0 / 1000 + 20 });
    expect(await upstreamVerifies(s, s.assertionFor(bare, 'orders'), 'orders', T0)).toEqual({
      iss: 'https://gateway.example.com', aud: 'orders', sub: 'alice', iat: T0 / 1000, exp: T0 / 1000 + 20,
    });
  });

  it('signs once per principal and audience, reusing the assertion until 80 % of its lifetime', () => {
    const { s, clock } = signer();
    const p = principal();
    const first = s.assertionFor(p, 'orders');
    expect(s.assertionFor(p, 'orders')).toBe(first);
    const billing = s.assertionFor(p, 'billing');
    expect(billing).not.toBe(first);
    expect(s.signatures).toBe(2);
    clock.t += 47_999;
    expect(s.assertionFor(p, 'orders')).toBe(first);
    expect(s.signatures).toBe(2);
    clock.t += 1;
    const renewed = s.assertionFor(p, 'orders');
    expect(renewed).not.toBe(first);
    expect(s.signatures).toBe(3);
    // Another principal object (another token) gets its own assertion, even with equal claims.
    expect(s.assertionFor(principal(), 'orders')).not.toBe(renewed);
    expect(s.signatures).toBe(4);
  });

  it("another signer (a reload's, with another key) never hands out this one's assertions", async () => {
    const { s: a } = signer();
    const { s: b } = signer();
    const p = principal();
    const fromA = a.assertionFor(p, 'orders');
    const fromB = b.assertionFor(p, 'orders');
    expect(fromB).not.toBe(fromA);
    await jwtVerify(fromB, createLocalJWKSet(b.jwks() as never), { issuer: 'https://gateway.example.com', audience: 'orders' });
    expect(a.assertionFor(p, 'orders')).not.toBe(fromA); // b took the memo; a signs again rather than reading b's
    expect(a.signatures).toBe(2);
  });

  it('signs every time for a principal built without a memo', () => {
    const { s } = signer();
    const bare: Principal = { ...principal() };
    expect(s.assertionFor(bare, 'orders')).toBeTypeOf('string');
    s.assertionFor(bare, 'orders');
    expect(s.signatures).toBe(2);
  });

  it('renews at the token expiry when that comes first', () => {
    const { s, clock } = signer();
    const p = principal({ exp: T0 / 1000 + 10 });
    const first = s.assertionFor(p, 'orders');
    clock.t += 9_999;
    expect(s.assertionFor(p, 'orders')).toBe(first);
    clock.t += 1;
    expect(s.assertionFor(p, 'orders')).not.toBe(first);
  });

  it('keeps at most maxAudiences assertions per principal', () => {
    const { s } = signer({ maxAudiences: 2 });
    const p = principal();
    const a = s.assertionFor(p, 'a');
    s.assertionFor(p, 'b');
    s.assertionFor(p, 'c'); // the principal's map was full: it starts again
    expect(s.assertionFor(p, 'a')).not.toBe(a);
    expect(s.signatures).toBe(4);
  });

  it('reads its key from a PEM PKCS#8 file or a JWK file; kid and lifetime as configured', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = join(dir, 'key.pem');
    writeFileSync(pem, privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const jwkFile = join(dir, 'key.jwk');
    writeFileSync(jwkFile, JSON.stringify(privateKey.export({ format: 'jwk' })));
    const fromPem = signer({ keyFile: pem, kid: 'gw-2026', lifetimeSec: 30 }).s;
    const fromJwk = signer({ keyFile: jwkFile }).s;
    expect(fromPem.jwks().keys[0]!['x']).toBe(fromJwk.jwks().keys[0]!['x']);
    expect(fromPem.kid).toBe('gw-2026');
    const jwt = fromPem.assertionFor(principal(), 'orders');
    expect(decodeProtectedHeader(jwt).kid).toBe('gw-2026');
    expect((await upstreamVerifies(fromPem, jwt, 'orders', T0)).exp).toBe(T0 / 1000 + 30);
    // A key from the file verifies with the other signer's key set: the same key.
    expect((await upstreamVerifies(fromJwk, fromJwk.assertionFor(principal(), 'orders'), 'orders', T0)).sub).toBe('alice');
  });

  it('refuses a key that is not P-256, a public key, and an unreadable file, naming the file but not its content', () => {
    const rsa = join(dir, 'rsa.pem');
    writeFileSync(rsa, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }));
    expect(() => signer({ keyFile: rsa })).toThrow(`the assertion key in ${rsa} is not an EC P-256 private key`);
    const pub = join(dir, 'pub.jwk');
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(pub, JSON.stringify(publicKey.export({ format: 'jwk' })));
    expect(() => signer({ keyFile: pub })).toThrow(`the assertion key file ${pub} holds no private key`);
    const garbage = join(dir, 'garbage.pem');
    writeFileSync(garbage, 'secret-looking-content');
    expect(() => signer({ keyFile: garbage })).toThrow(/holds no private key/);
    try {
      signer({ keyFile: garbage });
    } catch (err) {
      expect((err as Error).message).not.toContain('secret-looking-content');
    }
    expect(() => signer({ keyFile: join(dir, 'missing.pem') })).toThrow(/cannot read the assertion key file .*missing\.pem: ENOENT/);
    expect(() => signer({ lifetimeSec: 0 })).toThrow(/lifetimeSec/);
  });
});
