/**
 * DPoP (RFC 9449) through the built gateway. oidc-provider binds an access token to the
 * test client's key at its token endpoint; the gateway verifies the token, then the
 * proof: a good one is let through (and only once), one failing each check of §4.3 is
 * refused 401 with `WWW-Authenticate: DPoP error="invalid_dpop_proof", …, algs="…"` and
 * its own audit reason, and the bound token sent as Bearer is refused (§7.2). A second
 * issuer (a key server minting tokens) has `dpop: required` and server nonces (§8, §9);
 * a second gateway checks `htu` against `server.publicOrigin`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { calculateJwkThumbprint } from 'jose';
import { baseConfig, startGatewayProcess, startUpstream, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';
import { dpopKey, JWT_API, JWT_API_AUDIENCE, startTestOp, type DpopKey, type Login, type TestOp } from '../op.js';
import { startIdp, type TestIdp } from '../auth/tokens.js';
import { accessTokenHash } from '../../../src/dpop/proof.js';
import { auditLine, call } from './helpers.js';

const ALGS = 'algs="ES256 EdDSA"';
let op: TestOp;
let minter: TestIdp;
let up: Upstream;
let gw: GatewayProcess;
let behindProxy: GatewayProcess;
let key: DpopKey;
let login: Login;

const issuers = (opIssuer: string) => [
  { name: 'op', issuer: opIssuer, discovery: true, audience: [JWT_API_AUDIENCE], algorithms: ['ES256', 'RS256'], typ: 'at+jwt' },
];

beforeAll(async () => {
  [op, minter, up] = await Promise.all([startTestOp(), startIdp('/realms/strict'), startUpstream()]);
  const routes = [{ path: '/api/', upstream: 'app', auth: 'token' }];
  [gw, behindProxy] = await Promise.all([
    startGatewayProcess(
      writeConfig(
        baseConfig({
          verifier: { threads: 1 },
          issuers: [...issuers(op.issuer), { name: 'strict', issuer: minter.issuer, jwksUri: minter.jwksUri, audience: ['orders-api'], dpop: 'required', dpopNonce: true }],
          dpop: { algorithms: ['ES256', 'EdDSA'] },
          upstreams: { app: { url: up.url } },
          routes,
          audit: { bufferBytes: 0 },
          // Every refused proof counts toward the spraying guard; this file refuses many on purpose.
          rateLimit: { spraying: { invalidTokens: 1000 } },
        }),
      ),
    ),
    startGatewayProcess(
      writeConfig(
        baseConfig({
          server: { publicOrigin: 'https://api.example.com' },
          verifier: { threads: 1 },
          issuers: issuers(op.issuer),
          upstreams: { app: { url: up.url } },
          routes,
          audit: { enabled: false },
        }),
      ),
    ),
  ]);
  key = await dpopKey('ES256');
  login = await op.login({ resource: JWT_API, dpop: key });
});

afterAll(async () => {
  await Promise.all([gw?.stop(), behindProxy?.stop()]);
  await Promise.all([up?.close(), op?.close(), minter?.close()]);
});

const htu = () => `${gw.url}/api/orders`;
const withToken = () => ({ accessToken: login.accessToken });
const dpopCall = (proofs: readonly string[], path = '/api/orders') => call(gw.url, path, { token: login.accessToken, scheme: 'DPoP', proofs });

describe('a DPoP-bound access token of oidc-provider', () => {
  it('is let through with a good proof, the query not part of htu; the token and proof reach the upstream', async () => {
    expect(login.tokenType).toBe('DPoP');
    const proof = await key.proof('GET', htu(), withToken());
    const before = up.received.length;
    const r = await dpopCall([proof], '/api/orders?page=2');
    expect(r.status, r.text).toBe(200);
    expect(up.received.length).toBe(before + 1);
    const got = up.received.at(-1)!;
    expect(got.url).toBe('/api/orders?page=2');
    expect(got.headers['authorization']).toBe(`DPoP ${login.accessToken}`);
    expect(got.headers['dpop']).toBe(proof);
    expect(await auditLine(gw, r.requestId)).toMatchObject({ reason: 'ok', decision: 'allow', issuer: 'op', subject: 'alice' });
  });

  it('is refused when a good proof comes again (RFC 9449 §11.1), also from the token cache', async () => {
    const proof = await key.proof('GET', htu(), withToken());
    expect((await dpopCall([proof])).status).toBe(200);
    const again = await dpopCall([proof]);
    expect(again.status).toBe(401);
    expect(again.challenge).toBe(`DPoP error="invalid_dpop_proof", error_description="The DPoP proof was already used.", ${ALGS}`);
    expect(await auditLine(gw, again.requestId)).toMatchObject({ reason: 'dpop_replayed', decision: 'deny', cache: 'hit' });
    // A fresh proof of the same key passes.
    expect((await dpopCall([await key.proof('GET', htu(), withToken())])).status).toBe(200);
  });

  it('is refused as a Bearer token (RFC 9449 §7.2), whatever DPoP header comes with it', async () => {
    for (const proofs of [[], [await key.proof('GET', htu(), withToken())]]) {
      const r = await call(gw.url, '/api/orders', { token: login.accessToken, proofs });
      expect(r.status).toBe(401);
      expect(r.body['error']).toBe('invalid_token');
      expect(r.challenge).toBe(`DPoP error="invalid_token", error_description="The access token is bound to a DPoP key; send it with the DPoP scheme and a proof.", ${ALGS}`);
      expect(await auditLine(gw, r.requestId)).toMatchObject({ reason: 'dpop_bound_as_bearer' });
    }
  });
});

describe('proofs that fail one check each (RFC 9449 §4.3): 401 invalid_dpop_proof, the reason in the audit line', () => {
  const at = () => withToken();
  const cases: [string, string, () => Promise<string[]>][] = [
    ['proof_missing', 'A DPoP proof is required for this access token.', async () => []],
    ['multiple_proofs', 'More than one DPoP proof.', async () => [await key.proof('GET', htu(), at()), await key.proof('GET', htu(), at())]],
    ['too_large', 'The DPoP proof is too large.', async () => [await key.proof('GET', htu(), { ...at(), override: { pad: 'x'.repeat(9000) } })]],
    ['malformed', 'The DPoP proof is not a well-formed JWT.', async () => [(await key.proof('GET', htu(), at())).split('.').slice(0, 2).join('.')]],
    ['wrong_typ', 'The DPoP proof typ is not dpop+jwt.', async () => [await key.proof('GET', htu(), { ...at(), header: { typ: 'at+jwt' } })]],
    ['alg_not_allowed', 'The DPoP proof algorithm is not allowed.', async () => [await (await dpopKey('PS256')).proof('GET', htu(), at())]],
    ['bad_jwk', 'The DPoP proof jwk header is not a usable public key for its algorithm.', async () => [await key.proof('GET', htu(), { ...at(), header: { jwk: { ...key.publicJwk, crv: 'P-384' } } })]],
    ['private_key', 'The DPoP proof jwk header contains a private key.', async () => [await key.proof('GET', htu(), { ...at(), header: { jwk: { ...key.publicJwk, d: 'AAAA' } } })]],
    // A thief with the token but another key.
    ['jkt_mismatch', 'The DPoP proof key is not the key the access token is bound to.', async () => [await (await dpopKey('ES256')).proof('GET', htu(), at())]],
    ['htm_mismatch', 'The DPoP proof htm does not match the request method.', async () => [await key.proof('POST', htu(), at())]],
    ['htu_mismatch', 'The DPoP proof htu does not match the request URI.', async () => [await key.proof('GET', `${gw.url}/api/other`, at())]],
    ['iat_invalid', 'The DPoP proof has no valid iat.', async () => [await key.proof('GET', htu(), { ...at(), override: { iat: undefined } })]],
    ['iat_out_of_window', 'The DPoP proof iat is too far from the current time.', async () => [await key.proof('GET', htu(), { ...at(), override: { iat: Math.floor(Date.now() / 1000) - 3600 } })]],
    ['jti_missing', 'The DPoP proof has no jti.', async () => [await key.proof('GET', htu(), { ...at(), override: { jti: undefined } })]],
    ['jti_too_long', 'The DPoP proof jti is too long.', async () => [await key.proof('GET', htu(), { ...at(), override: { jti: 'j'.repeat(300) } })]],
    ['ath_missing', 'The DPoP proof has no ath.', async () => [await key.proof('GET', htu())]],
    ['ath_mismatch', 'The DPoP proof ath does not match the access token.', async () => [await key.proof('GET', htu(), { ...at(), override: { ath: accessTokenHash('another-token') } })]],
    [
      'bad_signature',
      'The DPoP proof signature is invalid.',
      async () => {
        const [h, p] = (await key.proof('GET', htu(), at())).split('.');
        const other = (await key.proof('GET', htu(), at())).split('.')[2];
        return [`${h}.${p}.${other}`];
      },
    ],
  ];

  it.each(cases)('%s', async (reason, description, make) => {
    const before = up.received.length;
    const r = await dpopCall(await make());
    expect(r.status, r.text).toBe(401);
    expect(r.body).toMatchObject({ error: 'invalid_dpop_proof', error_description: description });
    expect(r.challenge).toBe(`DPoP error="invalid_dpop_proof", error_description="${description}", ${ALGS}`);
    expect(await auditLine(gw, r.requestId)).toMatchObject({ reason: `dpop_${reason}`, decision: 'deny', issuer: 'op' });
    expect(up.received.length).toBe(before);
  });
});

describe('an issuer with dpop: required and server nonces', () => {
  it('refuses its unbound tokens, as Bearer (dpop_required) and with the DPoP scheme (dpop_token_not_bound)', async () => {
    const unbound = await minter.mint({});
    const bearer = await call(gw.url, '/api/orders', { token: unbound });
    expect(bearer.status).toBe(401);
    expect(bearer.challenge).toBe(`DPoP error="invalid_token", error_description="This issuer requires DPoP-bound access tokens.", ${ALGS}`);
    expect(await auditLine(gw, bearer.requestId)).toMatchObject({ reason: 'dpop_required', issuer: 'strict' });
    const scheme = await call(gw.url, '/api/orders', { token: unbound, scheme: 'DPoP', proofs: [await key.proof('GET', htu(), { accessToken: unbound })] });
    expect(scheme.status).toBe(401);
    expect(await auditLine(gw, scheme.requestId)).toMatchObject({ reason: 'dpop_token_not_bound' });
  });

  it('sends a DPoP-Nonce with use_dpop_nonce, accepts the proof that carries it, and refuses one it never issued (RFC 9449 §9)', async () => {
    const client = await dpopKey('ES256');
    const token = await minter.mint({ cnf: { jkt: await calculateJwkThumbprint(client.publicJwk, 'sha256') } });
    const send = async (nonce?: string) =>
      call(gw.url, '/api/orders', { token, scheme: 'DPoP', proofs: [await client.proof('GET', htu(), { accessToken: token, ...(nonce !== undefined ? { nonce } : {}) })] });
    const first = await send();
    expect(first.status).toBe(401);
    expect(first.body['error']).toBe('use_dpop_nonce');
    expect(first.challenge).toBe(`DPoP error="use_dpop_nonce", error_description="A DPoP nonce is required; use the one in the DPoP-Nonce header.", ${ALGS}`);
    const nonce = first.headers['dpop-nonce'];
    expect(nonce).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(await auditLine(gw, first.requestId)).toMatchObject({ reason: 'dpop_nonce_missing' });
    expect((await send(nonce as string)).status).toBe(200);
    const forged = await send('A'.repeat(22));
    expect(forged.status).toBe(401);
    expect(forged.headers['dpop-nonce']).toBe(nonce);
    expect(await auditLine(gw, forged.requestId)).toMatchObject({ reason: 'dpop_nonce_invalid' });
  });

  it('refuses a token bound by a confirmation method the gateway cannot check (mTLS x5t#S256, RFC 8705)', async () => {
    const r = await call(gw.url, '/api/orders', { token: await minter.mint({ cnf: { 'x5t#S256': 'bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2' } }) });
    expect(r.status).toBe(401);
    expect(r.challenge).toBe('Bearer realm="mfa-gateway", error="invalid_token", error_description="token bound by an unsupported confirmation method"');
    expect(await auditLine(gw, r.requestId)).toMatchObject({ reason: 'binding_unsupported' });
  });
});

describe('behind another proxy (server.publicOrigin)', () => {
  it('checks htu against the public origin, not the address the gateway was reached at', async () => {
    const send = async (uri: string) => call(behindProxy.url, '/api/orders', { token: login.accessToken, scheme: 'DPoP', proofs: [await key.proof('GET', uri, withToken())] });
    expect((await send('https://api.example.com/api/orders')).status).toBe(200);
    // RFC 3986 §6.2.2 normalization: scheme and host case, the default port.
    expect((await send('HTTPS://API.example.com:443/api/orders')).status).toBe(200);
    const local = await send(`${behindProxy.url}/api/orders`);
    expect(local.status).toBe(401);
    expect(local.body['error_description']).toBe('The DPoP proof htu does not match the request URI.');
  });
});
