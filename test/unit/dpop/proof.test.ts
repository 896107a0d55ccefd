/**
 * RFC 9449 §4.3 proof checks, each failed on its own by a proof that is otherwise
 * correct; proofs made with jose (the client side), keys generated per run.
 */
import { createHash, randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { accessTokenHash, normalizeHtu, proofFailure, ProofVerifier, verifyProof, type ProofInput } from '../../../src/dpop/proof.js';
import { dpopChallenge } from '../../../src/dpop/challenge.js';

const NOW = 1_800_000_000_000;
const HTU = 'https://api.example.com/orders/42';
const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';

interface Key {
  alg: string;
  privateKey: CryptoKey;
  jwk: JWK;
  jkt: string;
}

async function key(alg: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  return { alg, privateKey, jwk, jkt: await calculateJwkThumbprint(jwk, 'sha256') };
}

let es: Key;
let ed: Key;
let ps: Key;
let other: Key;
beforeAll(async () => {
  [es, ed, ps, other] = await Promise.all([key('ES256'), key('EdDSA'), key('PS256'), key('ES256')]);
});

/** A correct proof for GET HTU and TOKEN at NOW; `claims` and `header` replace (undefined: remove) members. */
async function proof(k: Key = es, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}, signWith: CryptoKey = k.privateKey): Promise<string> {
  const body: Record<string, unknown> = { htm: 'GET', htu: HTU, iat: NOW / 1000, jti: randomUUID(), ath: accessTokenHash(TOKEN), ...claims };
  const head: Record<string, unknown> = { typ: 'dpop+jwt', alg: k.alg, jwk: k.jwk, ...header };
  for (const o of [body, head]) for (const [n, v] of Object.entries(o)) if (v === undefined) delete o[n];
  return new SignJWT(body).setProtectedHeader(head as { alg: string }).sign(signWith);
}

function input(p: string | readonly string[] | undefined, over: Partial<ProofInput> = {}): ProofInput {
  return { proof: p, method: 'GET', htu: HTU, accessToken: TOKEN, expectedJkt: es.jkt, algorithms: ['ES256', 'EdDSA', 'PS256'], iatWindowSec: 30, nowMs: NOW, ...over };
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** An ES256 JWS of any header (jose refuses to sign some, such as an unknown `crit`). */
async function signRaw(header: Record<string, unknown>, payload: Record<string, unknown>, k: Key = es): Promise<string> {
  const input = `${b64(header)}.${b64(payload)}`;
  const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, k.privateKey, Buffer.from(input));
  return `${input}.${Buffer.from(sig).toString('base64url')}`;
}

describe('verifyProof: a good proof', () => {
  it('is accepted with its key thumbprint, jti and iat (ES256, EdDSA, PS256)', async () => {
    for (const k of [es, ed, ps]) {
      const jti = randomUUID();
      const r = await verifyProof(input(await proof(k, { jti }), { expectedJkt: k.jkt }));
      expect(r).toEqual({ ok: true, jkt: k.jkt, jti, iat: NOW / 1000 });
    }
  });

  it('is accepted as the one value of a one-element list, with iat at either edge of the window', async () => {
    expect((await verifyProof(input([await proof()]))).ok).toBe(true);
    expect((await verifyProof(input(await proof(es, { iat: NOW / 1000 - 30 })))).ok).toBe(true);
    expect((await verifyProof(input(await proof(es, { iat: NOW / 1000 + 30 })))).ok).toBe(true);
  });

  it('matches htu after RFC 3986 §6 normalization, ignoring query and fragment', async () => {
    for (const htu of ['HTTPS://API.EXAMPLE.COM/orders/42', 'https://api.example.com:443/orders/42', 'https://api.example.com/orders/./42?x=1#f', 'https://api.example.com/%6Frders/42']) {
      expect((await verifyProof(input(await proof(es, { htu })))).ok, htu).toBe(true);
    }
  });

  it('checks the nonce when nonces are on: an expected value or a checker', async () => {
    expect((await verifyProof(input(await proof(es, { nonce: 'n-1' }), { nonce: 'n-1' }))).ok).toBe(true);
    expect((await verifyProof(input(await proof(es, { nonce: 'n-2' }), { nonce: { check: (v) => v === 'n-2' } }))).ok).toBe(true);
  });

  it('accepts a proof signed outside jose (raw WebCrypto ECDSA, R || S)', async () => {
    const r = await verifyProof(input(await signRaw({ typ: 'dpop+jwt', alg: 'ES256', jwk: es.jwk }, { htm: 'GET', htu: HTU, iat: NOW / 1000, jti: 'j', ath: accessTokenHash(TOKEN) })));
    expect(r).toEqual({ ok: true, jkt: es.jkt, jti: 'j', iat: NOW / 1000 });
  });

  it('imports a repeated key once (cached by thumbprint)', async () => {
    const v = new ProofVerifier({ keyCacheMax: 2 });
    for (let i = 0; i < 3; i++) expect((await v.verify(input(await proof()))).ok).toBe(true);
    expect(v.imports).toBe(1);
    // A key for another algorithm is another import; the cache holds two.
    expect((await v.verify(input(await proof(ed), { expectedJkt: ed.jkt }))).ok).toBe(true);
    expect((await v.verify(input(await proof()))).ok).toBe(true);
    expect(v.imports).toBe(2);
  });
});

describe('verifyProof: each check of RFC 9449 §4.3 fails on its own', () => {
  const cases: [string, () => Promise<ProofInput>][] = [
    ['proof_missing', async () => input(undefined)],
    ['proof_missing', async () => input([])],
    ['multiple_proofs', async () => input([await proof(), await proof()])],
    ['multiple_proofs', async () => input(`${await proof()}, ${await proof()}`)],
    ['too_large', async () => input(`${'a'.repeat(8193)}`)],
    ['malformed', async () => input('not a jwt')],
    ['malformed', async () => input(`${b64({ typ: 'dpop+jwt', alg: 'ES256', jwk: es.jwk })}.bm90IGpzb24.c2ln`)],
    ['malformed', async () =>
      input(await signRaw({ typ: 'dpop+jwt', alg: 'ES256', jwk: es.jwk, crit: ['exp'], exp: 1 }, { htm: 'GET', htu: HTU, iat: NOW / 1000, jti: 'j', ath: accessTokenHash(TOKEN) }))],
    ['wrong_typ', async () => input(await proof(es, {}, { typ: 'JWT' }))],
    ['wrong_typ', async () => input(await proof(es, {}, { typ: undefined }))],
    ['alg_not_allowed', async () => input(await proof(ps), { expectedJkt: ps.jkt, algorithms: ['ES256'] })],
    ['alg_not_allowed', async () => input(`${b64({ typ: 'dpop+jwt', alg: 'none', jwk: es.jwk })}.${b64({ htm: 'GET' })}.`, { algorithms: ['none', 'ES256'] })],
    ['alg_not_allowed', async () => input(`${b64({ typ: 'dpop+jwt', alg: 'HS256', jwk: { kty: 'oct', k: 'c2VjcmV0' } })}.${b64({ htm: 'GET' })}.c2ln`, { algorithms: ['HS256'] })],
    ['bad_jwk', async () => input(await proof(es, {}, { jwk: undefined }))],
    ['bad_jwk', async () => input(await proof(es, {}, { jwk: 'abc' }))],
    ['bad_jwk', async () => input(await proof(es, {}, { jwk: { kty: 'EC', crv: 'P-256', x: es.jwk.x } }))],
    // An EdDSA key for an ES256 proof (RFC 8725 §3.1), and a key whose own alg says otherwise (RFC 7517 §4.4).
    ['bad_jwk', async () => input(await proof(es, {}, { jwk: ed.jwk }), { expectedJkt: ed.jkt })],
    ['bad_jwk', async () => input(await proof(es, {}, { jwk: { ...es.jwk, alg: 'ES384' } }))],
    ['bad_jwk', async () => input(await proof(es, {}, { jwk: { ...es.jwk, use: 'enc' } }))],
    // Passes every other check (its thumbprint is the expected one), but is no point on P-256.
    ['bad_jwk', async () => {
      const offCurve = { kty: 'EC', crv: 'P-256', x: es.jwk.x, y: other.jwk.y };
      return input(await proof(es, {}, { jwk: offCurve }), { expectedJkt: await calculateJwkThumbprint(offCurve, 'sha256') });
    }],
    ['bad_jwk', async () => {
      const short = { kty: 'RSA', n: Buffer.alloc(128, 0xc5).toString('base64url'), e: 'AQAB' };
      return input(await proof(ps, {}, { jwk: short }), { expectedJkt: await calculateJwkThumbprint(short, 'sha256') });
    }],
    ['private_key', async () => input(await proof(es, {}, { jwk: { ...es.jwk, d: 'c2VjcmV0' } }))],
    ['jkt_mismatch', async () => input(await proof(other), { expectedJkt: es.jkt })],
    ['htm_mismatch', async () => input(await proof(es, { htm: 'POST' }))],
    ['htm_mismatch', async () => input(await proof(es, { htm: 'get' }))],
    ['htm_mismatch', async () => input(await proof(es, { htm: undefined }))],
    ['htu_mismatch', async () => input(await proof(es, { htu: 'https://api.example.com/orders/43' }))],
    ['htu_mismatch', async () => input(await proof(es, { htu: 'http://api.example.com/orders/42' }))],
    ['htu_mismatch', async () => input(await proof(es, { htu: 'https://api.example.com:8443/orders/42' }))],
    ['htu_mismatch', async () => input(await proof(es, { htu: 'https://user@api.example.com/orders/42' }))],
    ['htu_mismatch', async () => input(await proof(es, { htu: '/orders/42' }))],
    ['htu_mismatch', async () => input(await proof(es, { htu: undefined }))],
    ['iat_invalid', async () => input(await proof(es, { iat: undefined }))],
    ['iat_invalid', async () => input(await proof(es, { iat: String(NOW / 1000) }))],
    ['iat_out_of_window', async () => input(await proof(es, { iat: NOW / 1000 - 31 }))],
    ['iat_out_of_window', async () => input(await proof(es, { iat: NOW / 1000 + 31 }))],
    // A window or clock that is no number refuses rather than accepts.
    ['iat_out_of_window', async () => input(await proof(), { iatWindowSec: Number.NaN })],
    ['iat_out_of_window', async () => input(await proof(), { nowMs: Number.NaN })],
    ['jti_missing', async () => input(await proof(es, { jti: undefined }))],
    ['jti_missing', async () => input(await proof(es, { jti: '' }))],
    ['jti_too_long', async () => input(await proof(es, { jti: 'j'.repeat(257) }))],
    ['ath_missing', async () => input(await proof(es, { ath: undefined }))],
    ['ath_mismatch', async () => input(await proof(es, { ath: accessTokenHash(`${TOKEN}x`) }))],
    ['nonce_missing', async () => input(await proof(), { nonce: 'n-1' })],
    ['nonce_invalid', async () => input(await proof(es, { nonce: 'n-0' }), { nonce: 'n-1' })],
    ['nonce_invalid', async () => input(await proof(es, { nonce: 'n-0' }), { nonce: { check: () => false } })],
    // Signed by another key than the one in the header (the header names es's key).
    ['bad_signature', async () => input(await proof(es, {}, {}, other.privateKey))],
  ];

  it.each(cases)('%s', async (reason, make) => {
    const r = await verifyProof(await make());
    expect(r).toBe(proofFailure(reason as never));
    expect(r).toMatchObject({ ok: false, reason, error: reason.startsWith('nonce_') ? 'use_dpop_nonce' : 'invalid_dpop_proof' });
  });

  it('describes every failure with text a quoted-string can carry, never proof text', async () => {
    const p = await proof(es, { htm: 'POST' });
    const r = await verifyProof(input(p));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.description).toMatch(/^[\x20\x21\x23-\x5b\x5d-\x7e]+$/);
    for (const part of p.split('.')) expect(r.description).not.toContain(part);
  });
});

describe('RFC 3986 normalization and ath', () => {
  it.each([
    ['HTTPS://API.Example.COM:443/a/./b/../c/%7euser/%2f?q=1#frag', 'https://api.example.com/a/c/~user/%2F'],
    ['http://example.com', 'http://example.com/'],
    ['http://example.com:80/x', 'http://example.com/x'],
    ['http://[::1]:8080/x', 'http://[::1]:8080/x'],
  ])('normalizeHtu(%s) = %s', (raw, want) => {
    expect(normalizeHtu(raw)).toBe(want);
  });

  it.each(['ftp://example.com/x', 'https://u:p@example.com/', 'not a uri', '/relative'])('normalizeHtu(%s) is null', (raw) => {
    expect(normalizeHtu(raw)).toBeNull();
  });

  it('ath is base64url(SHA-256(the access token))', () => {
    expect(accessTokenHash(TOKEN)).toBe(createHash('sha256').update(TOKEN, 'ascii').digest('base64url'));
  });
});

describe('dpopChallenge (RFC 9449 §7.1)', () => {
  it('is plain DPoP algs=… without credentials, with error and description after a bad proof', () => {
    expect(dpopChallenge({ algs: ['ES256', 'EdDSA'] })).toBe('DPoP algs="ES256 EdDSA"');
    expect(dpopChallenge({ algs: ['ES256'], error: 'invalid_dpop_proof', description: 'The DPoP proof signature is invalid.' })).toBe(
      'DPoP error="invalid_dpop_proof", error_description="The DPoP proof signature is invalid.", algs="ES256"',
    );
    expect(dpopChallenge({ algs: ['ES256'], realm: 'api', error: 'use_dpop_nonce', description: proofFailure('nonce_missing').description })).toBe(
      'DPoP realm="api", error="use_dpop_nonce", error_description="A DPoP nonce is required; use the one in the DPoP-Nonce header.", algs="ES256"',
    );
  });

  it('quotes what it is given, and drops algorithm names that are no JOSE token', () => {
    expect(dpopChallenge({ algs: ['ES256', 'x" y', ''], error: 'invalid_dpop_proof', description: 'a "b" \\ c\r\nd' })).toBe(
      'DPoP error="invalid_dpop_proof", error_description="a \\"b\\" \\\\ c??d", algs="ES256"',
    );
    expect(dpopChallenge({ algs: [] })).toBe('DPoP');
  });
});
