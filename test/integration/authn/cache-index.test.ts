/**
 * The token caches are indexed by a token's tail (src/authn/verifier.ts tokenIndex) but
 * keyed by the whole token: a token that shares another's tail must never be answered
 * with the other token's verdict, in either cache.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier } from '../../../src/authn/verifier.js';
import { tokenIndex } from '../../../src/authn/cache.js';
import { tokenHash } from '../../../src/observe/audit.js';
import type { Verifier } from '../../../src/authn/types.js';
import { configWith, makeKey, sign, startIdp, testClock, type IdpServer, type TestKey } from './idp.js';

let key: TestKey;
let idp: IdpServer;
let v: Verifier;
const clock = testClock();

beforeAll(async () => {
  key = await makeKey('RS256', 'rs-1');
  idp = await startIdp([key.jwk]);
  v = createVerifier(configWith([{ name: 'corp', issuer: idp.issuer, discovery: true, audience: ['api'], algorithms: ['RS256'] }]), { now: clock.now });
  await v.start();
});

afterAll(async () => {
  await v?.close();
  await idp?.close();
});

const mint = (sub: string) =>
  sign(key, { iss: idp.issuer, aud: 'api', sub, iat: clock.sec(), exp: clock.sec() + 600, jti: randomUUID() });

/** Another token with the same last characters (the same cache index). */
function sameTail(token: string, head: string): string {
  const tail = tokenIndex(token);
  expect(tail.length).toBe(43);
  return `${head}${tail}`;
}

describe('token cache index', () => {
  it('never answers a token with the cached verdict of another token that shares its tail', async () => {
    const good = await mint('alice');
    const r = await v.verify(good);
    expect(r.ok).toBe(true);
    expect(v.lookup(good)).toBe(r);

    // Same tail, different header and payload: a forged token must not inherit alice's claims.
    const [h, p] = (await mint('mallory')).split('.');
    const forged = sameTail(good, `${h}.${p}.AAAA`);
    expect(tokenIndex(forged)).toBe(tokenIndex(good));
    expect(v.lookup(forged)).toBeUndefined();
    const bad = await v.verify(forged);
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.reason).toBe('bad_signature');

    // Its negative entry, in the same slot of the negative cache, does not touch alice's token…
    expect(v.lookup(forged)).toBe(bad);
    const again = v.lookup(good);
    expect(again?.ok).toBe(true);
    if (again?.ok) expect(again.principal.subject).toBe('alice');

    // …and a fresh copy of the token string (as every request brings) still hits.
    const copy = Buffer.from(good).toString('latin1');
    expect(v.lookup(copy)).toBe(r);
  });

  it('memoizes audit fingerprints on the verified principal only', async () => {
    const good = await mint('bob');
    const r = await v.verify(good);
    if (!r.ok) throw new Error('expected a valid token');
    const a = tokenHash(good, r.principal);
    expect(a).toMatch(/^[0-9a-f]{16}$/);
    expect(tokenHash(good)).toBe(a);
    // The memo is what answers for a known principal: asked with another text, it still
    // gives the remembered fingerprint (no HMAC ran).
    expect(tokenHash('some-other-text', r.principal)).toBe(a);
    expect(tokenHash('some-other-text')).not.toBe(a);
    // Another token with the same tail hashes differently, with or without a principal.
    const forged = sameTail(good, 'eyJhbGciOiJSUzI1NiJ9.e30.AAAA');
    expect(tokenHash(forged)).not.toBe(a);
  });
});
