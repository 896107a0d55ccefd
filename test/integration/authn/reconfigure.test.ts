/**
 * Verifier.reconfigure as a component (what a reload does to token verification,
 * src/reload.ts), against two real key-set servers: an issuer whose settings did not
 * change keeps its key set and its cached tokens; a changed one gets a fresh key store,
 * loaded before the commit, and loses its cached tokens; a removed one stops; nothing
 * changes before commit, and nothing at all after abandon.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier } from '../../../src/authn/verifier.js';
import type { Verifier } from '../../../src/authn/types.js';
import { configWith, makeKey, manualTimers, sign, startIdp, testClock, type IdpServer, type TestKey } from './idp.js';

let keyA: TestKey;
let keyB: TestKey;
let idpA: IdpServer;
let idpB: IdpServer;

beforeAll(async () => {
  [keyA, keyB] = await Promise.all([makeKey('ES256', 'a-1'), makeKey('ES256', 'b-1')]);
  [idpA, idpB] = await Promise.all([startIdp([keyA.jwk], '/realms/a'), startIdp([keyB.jwk], '/realms/b')]);
});

afterAll(async () => {
  await Promise.all([idpA?.close(), idpB?.close()]);
});

const open: Verifier[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((v) => v.close()));
});

const issuerA = () => ({ name: 'a', issuer: idpA.issuer, jwksUri: idpA.jwksUri, audience: ['api'] });
const issuerB = (audience = ['api']) => ({ name: 'b', issuer: idpB.issuer, jwksUri: idpB.jwksUri, audience });

async function started(issuers: object[], verifier: Record<string, unknown> = {}) {
  const clock = testClock(Date.now());
  const v = createVerifier(configWith(issuers, verifier), { now: clock.now, setTimer: manualTimers().setTimer });
  open.push(v);
  await v.start();
  const token = (key: TestKey, idp: IdpServer, sub: string) => sign(key, { iss: idp.issuer, aud: 'api', sub, exp: clock.sec() + 600 });
  return { v, token };
}

describe('Verifier.reconfigure', () => {
  it('keeps an unchanged issuer (key set, cached tokens), replaces a changed one (new key set first; its cached tokens and every remembered failure dropped at commit)', async () => {
    const { v, token } = await started([issuerA(), issuerB()]);
    const [tA, tB] = await Promise.all([token(keyA, idpA, 'alice'), token(keyB, idpB, 'bob')]);
    expect((await v.verify(tA)).ok).toBe(true);
    expect((await v.verify(tB)).ok).toBe(true);
    // A forgery for the unchanged issuer, remembered as one.
    const forged = await sign({ ...keyB, kid: 'a-1' }, { iss: idpA.issuer, aud: 'api', sub: 'mallory', exp: Math.floor(Date.now() / 1000) + 600 });
    expect(await v.verify(forged)).toMatchObject({ ok: false, reason: 'bad_signature' });
    expect(v.lookup(forged)).toMatchObject({ ok: false, reason: 'bad_signature' });
    const [hitsA, hitsB] = [idpA.jwksHits(), idpB.jwksHits()];

    const plan = await v.reconfigure(configWith([issuerA(), issuerB(['api', 'billing'])]));
    expect(plan).toMatchObject({ kept: ['a'], replaced: ['b'], added: [], removed: [], cacheResized: false });
    // The changed issuer's key set was fetched before the commit; the unchanged one's was not.
    expect(idpB.jwksHits()).toBe(hitsB + 1);
    expect(idpA.jwksHits()).toBe(hitsA);
    // Nothing changed yet: both tokens are still cache hits.
    expect(v.lookup(tA)?.ok).toBe(true);
    expect(v.lookup(tB)?.ok).toBe(true);

    expect(plan.commit()).toEqual({ cachedTokensDropped: 1 });
    expect(plan.commit()).toEqual({ cachedTokensDropped: 0 }); // once
    expect(v.lookup(tA)?.ok).toBe(true);
    expect(v.lookup(tB)).toBeUndefined();
    // Remembered failures go with any issuer change: one may pass under the new settings.
    expect(v.lookup(forged)).toBeUndefined();
    const before = v.stats!().verifications;
    expect((await v.verify(tB)).ok).toBe(true); // verified again, with the new store's keys
    expect(v.stats!().verifications).toBe(before + 1);
    expect(idpB.jwksHits()).toBe(hitsB + 1);
    expect(v.readiness().issuers).toMatchObject({ a: { ok: true, state: 'ready' }, b: { ok: true, state: 'ready' } });
  });

  it('drops a removed issuer with its cached tokens, and adds a new one', async () => {
    const { v, token } = await started([issuerA()]);
    const tA = await token(keyA, idpA, 'alice');
    const tB = await token(keyB, idpB, 'bob');
    expect((await v.verify(tA)).ok).toBe(true);
    expect(await v.verify(tB)).toMatchObject({ ok: false, reason: 'unknown_issuer' });

    const plan = await v.reconfigure(configWith([issuerB()]));
    expect(plan).toMatchObject({ kept: [], replaced: [], added: ['b'], removed: ['a'] });
    expect(plan.commit()).toEqual({ cachedTokensDropped: 1 });
    expect(await v.verify(tA)).toMatchObject({ ok: false, reason: 'unknown_issuer' });
    expect((await v.verify(tB)).ok).toBe(true);
    expect(Object.keys(v.readiness().issuers)).toEqual(['b']);
  });

  it('abandon leaves everything as it was', async () => {
    const { v, token } = await started([issuerA(), issuerB()]);
    const tB = await token(keyB, idpB, 'bob');
    expect((await v.verify(tB)).ok).toBe(true);
    const plan = await v.reconfigure(configWith([issuerA(), issuerB(['other'])]));
    plan.abandon();
    expect(plan.commit()).toEqual({ cachedTokensDropped: 0 });
    expect(v.lookup(tB)?.ok).toBe(true);
    expect((await v.verify(await token(keyB, idpB, 'carol'))).ok).toBe(true); // the old audience still holds
  });

  it('moves cached tokens to a cache with new limits', async () => {
    const { v, token } = await started([issuerA()], { cache: { max: 100 } });
    const tokens = await Promise.all(['a', 'b', 'c'].map((s) => token(keyA, idpA, s)));
    for (const t of tokens) expect((await v.verify(t)).ok).toBe(true);
    const plan = await v.reconfigure(configWith([issuerA()], { cache: { max: 2 } }));
    expect(plan).toMatchObject({ kept: ['a'], cacheResized: true });
    expect(plan.commit()).toEqual({ cachedTokensDropped: 0 });
    expect(v.stats!().cacheSize).toBe(2);
    // The most recently used two are kept.
    expect(v.lookup(tokens[0]!)).toBeUndefined();
    expect(v.lookup(tokens[2]!)?.ok).toBe(true);
  });
});
