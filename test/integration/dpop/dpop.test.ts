/**
 * DPoP (RFC 9449) with a real OpenID provider: oidc-provider binds an access token to
 * the test client's key at its token endpoint (the client's proof made with jose), the
 * gateway's own verifier verifies that JWT (its `cnf.jkt` lands in the principal), and the
 * resource-server proofs the client then sends are checked: a good one accepted, one
 * failing each RFC 9449 §4.3 check refused with its reason, a replayed one refused by the
 * replay store, server nonces issued and required (§9).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { calculateJwkThumbprint, decodeJwt } from 'jose';
import { createVerifier } from '../../../src/authn/verifier.js';
import type { Verifier } from '../../../src/authn/types.js';
import type { Principal } from '../../../src/authz/claims.js';
import { dpopChallenge } from '../../../src/dpop/challenge.js';
import { NonceSource } from '../../../src/dpop/nonce.js';
import { accessTokenHash, verifyProof, type ProofInput } from '../../../src/dpop/proof.js';
import { checkReplay, MemoryReplayStore } from '../../../src/dpop/replay.js';
import { configWith } from '../authn/idp.js';
import { outputSink } from '../leaks.js';
import { dpopKey, JWT_API, JWT_API_AUDIENCE, startTestOp, type DpopKey, type Login, type TestOp } from '../op.js';

const API = 'https://api.example.com/orders/42';
const ALGS = ['ES256', 'EdDSA'];
const logSink = outputSink('dpop-verifier-log');

let op: TestOp;
let verifier: Verifier;
let key: DpopKey;
let login: Login;
let principal: Principal;

beforeAll(async () => {
  op = await startTestOp();
  verifier = createVerifier(
    configWith([{ name: 'op', issuer: op.issuer, discovery: true, audience: [JWT_API_AUDIENCE], algorithms: ['ES256', 'RS256'], typ: 'at+jwt' }]),
    { log: (level, msg, fields) => logSink(`${JSON.stringify({ level, msg, fields })}\n`) },
  );
  await verifier.start();
  key = await dpopKey('ES256');
  login = await op.login({ resource: JWT_API, dpop: key });
  const r = await verifier.verify(login.accessToken);
  if (!r.ok) throw new Error(`the OP's access token did not verify: ${r.reason}`);
  principal = r.principal;
});

afterAll(async () => {
  await verifier?.close();
  await op?.close();
});

const input = (proof: string | readonly string[] | undefined, over: Partial<ProofInput> = {}): ProofInput => ({
  proof,
  method: 'GET',
  htu: API,
  accessToken: login.accessToken,
  expectedJkt: principal.cnfJkt!,
  algorithms: ALGS,
  iatWindowSec: 30,
  nowMs: Date.now(),
  ...over,
});

describe('a DPoP-bound access token from oidc-provider', () => {
  it('is a DPoP token whose cnf.jkt is the client key thumbprint, and the principal carries it', async () => {
    expect(login.tokenType).toBe('DPoP');
    const jkt = await calculateJwkThumbprint(key.publicJwk, 'sha256');
    expect(decodeJwt(login.accessToken)['cnf']).toEqual({ jkt });
    expect(principal).toMatchObject({ issuer: 'op', subject: 'alice', sub: 'alice', cnfJkt: jkt, clientId: 'rp', amr: ['pwd', 'otp'] });
    expect(principal.jti).toBe(decodeJwt(login.accessToken)['jti']);
    expect(principal.iat).toBe(decodeJwt(login.accessToken)['iat']);
  });

  it('is used with a good proof: accepted, with the key thumbprint, jti and iat', async () => {
    const proof = await key.proof('GET', API, { accessToken: login.accessToken });
    const r = verifyProof(input(proof));
    expect(r).toEqual({ ok: true, jkt: principal.cnfJkt, jti: decodeJwt(proof)['jti'], iat: decodeJwt(proof)['iat'] });
  });
});

describe('proofs that fail one check each (RFC 9449 §4.3)', () => {
  const at = () => ({ accessToken: login.accessToken });
  const cases: [string, () => Promise<ProofInput>][] = [
    ['proof_missing', async () => input(undefined)],
    ['multiple_proofs', async () => input([await key.proof('GET', API, at()), await key.proof('GET', API, at())])],
    ['malformed', async () => input((await key.proof('GET', API, at())).split('.').slice(0, 2).join('.'))],
    ['wrong_typ', async () => input(await key.proof('GET', API, { ...at(), header: { typ: 'at+jwt' } }))],
    ['alg_not_allowed', async () => input(await key.proof('GET', API, at()), { algorithms: ['EdDSA'] })],
    ['private_key', async () => input(await key.proof('GET', API, { ...at(), header: { jwk: { ...key.publicJwk, d: 'AAAA' } } }))],
    // A thief with the token but another key.
    ['jkt_mismatch', async () => input(await (await dpopKey('ES256')).proof('GET', API, at()))],
    ['htm_mismatch', async () => input(await key.proof('POST', API, at()))],
    ['htu_mismatch', async () => input(await key.proof('GET', 'https://api.example.com/orders/43', at()))],
    ['iat_invalid', async () => input(await key.proof('GET', API, { ...at(), override: { iat: undefined } }))],
    ['iat_out_of_window', async () => input(await key.proof('GET', API, { ...at(), override: { iat: Math.floor(Date.now() / 1000) - 120 } }))],
    ['jti_missing', async () => input(await key.proof('GET', API, { ...at(), override: { jti: undefined } }))],
    ['ath_missing', async () => input(await key.proof('GET', API))],
    ['ath_mismatch', async () => input(await key.proof('GET', API, { ...at(), override: { ath: accessTokenHash('another-token') } }))],
    ['nonce_missing', async () => input(await key.proof('GET', API, at()), { nonce: 'expected' })],
    ['bad_signature', async () => {
      const [h, p, s] = (await key.proof('GET', API, at())).split('.');
      const other = (await key.proof('GET', API, at())).split('.')[2];
      expect(other).not.toBe(s);
      return input(`${h}.${p}.${other}`);
    }],
  ];

  it.each(cases)('%s', async (reason, make) => {
    const r = verifyProof(await make());
    expect(r).toMatchObject({ ok: false, reason, error: reason === 'nonce_missing' ? 'use_dpop_nonce' : 'invalid_dpop_proof' });
  });

  it('answers 401 with the RFC 9449 §7.1 challenge text for a failure', async () => {
    const r = verifyProof(input(await key.proof('POST', API, at())));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(dpopChallenge({ algs: ALGS, error: r.error, description: r.description })).toBe(
      'DPoP error="invalid_dpop_proof", error_description="The DPoP proof htm does not match the request method.", algs="ES256 EdDSA"',
    );
  });
});

describe('replay and nonces', () => {
  it('refuses a replayed proof (same key and jti) with the replay store', async () => {
    const store = new MemoryReplayStore({ now: Date.now });
    const proof = await key.proof('GET', API, { accessToken: login.accessToken });
    const first = verifyProof(input(proof));
    expect(first.ok).toBe(true);
    if (!first.ok) return;
    expect(await checkReplay(store, first, 30)).toBeNull();
    // The very same proof again: it verifies (it is a good proof) but the store has seen it.
    const again = verifyProof(input(proof));
    expect(again.ok).toBe(true);
    if (!again.ok) return;
    expect(await checkReplay(store, again, 30)).toMatchObject({ ok: false, reason: 'replayed', error: 'invalid_dpop_proof' });
    // A fresh proof of the same client passes.
    const fresh = verifyProof(input(await key.proof('GET', API, { accessToken: login.accessToken })));
    expect(fresh.ok && (await checkReplay(store, fresh, 30))).toBeNull();
  });

  it('issues nonces, requires the current one, and refuses one two slots old (use_dpop_nonce)', async () => {
    const clock = { t: Date.now() };
    const nonces = new NonceSource({ now: () => clock.t, slotMs: 60_000 });
    const withNonce = (proof: string) => input(proof, { nonce: nonces, nowMs: Date.now() });

    // 1. No nonce yet: refused, and the answer carries `DPoP-Nonce: <nonce.current()>`.
    const refused = verifyProof(withNonce(await key.proof('GET', API, { accessToken: login.accessToken })));
    expect(refused).toMatchObject({ ok: false, reason: 'nonce_missing', error: 'use_dpop_nonce' });
    const issued = nonces.current();
    // 2. The client retries with it: accepted.
    expect(verifyProof(withNonce(await key.proof('GET', API, { accessToken: login.accessToken, nonce: issued }))).ok).toBe(true);
    // 3. One slot later it is still good; two slots later it is not.
    clock.t += 60_000;
    expect(verifyProof(withNonce(await key.proof('GET', API, { accessToken: login.accessToken, nonce: issued }))).ok).toBe(true);
    clock.t += 60_000;
    expect(verifyProof(withNonce(await key.proof('GET', API, { accessToken: login.accessToken, nonce: issued })))).toMatchObject({
      ok: false,
      reason: 'nonce_invalid',
      error: 'use_dpop_nonce',
    });
    expect(nonces.current()).not.toBe(issued);
  });
});
