/**
 * The token-spraying guard stops verification work, and must not lock out valid users:
 * a token the cache holds as valid passes a blocked address; a burst sent concurrently
 * is counted before any of it reaches the verifier; `unknown_kid` (no signature work,
 * and what every token of a brand-new key looks like during a JWKS cooldown) does not
 * count toward a block.
 *
 * Each test is its own client address, named through X-Forwarded-For by a trusted proxy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'undici';
import type { JWTPayload } from 'jose';
import { baseConfig, startGatewayProcess, startUpstream, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';
import { makeKey, sign, startIdp, type IdpServer, type TestKey } from '../authn/idp.js';
import { recordToken } from '../leaks.js';

let rs: TestKey;
let forger: TestKey;
let idp: IdpServer;
let up: Upstream;
let gw: GatewayProcess;
let proxy: Agent;
const now = () => Math.floor(Date.now() / 1000);
const claims = (): JWTPayload => ({ iss: idp.issuer, aud: 'orders-api', sub: `u-${randomUUID()}`, iat: now(), exp: now() + 600 });
const valid = () => sign(rs, claims());
/** Correct header and kid, wrong key: costs a full signature check. */
const forged = () => sign(forger, claims(), { header: { kid: rs.kid } });

beforeAll(async () => {
  [rs, forger] = await Promise.all([makeKey('RS256', 'rs-1'), makeKey('RS256', 'rs-1')]);
  idp = await startIdp([rs.jwk], '/realms/corp');
  up = await startUpstream();
  gw = await startGatewayProcess(
    writeConfig(
      baseConfig({
        server: { trustedProxies: ['127.0.0.2'] },
        verifier: { threads: 1, jwksCooldown: '1h' },
        issuers: [{ name: 'corp', issuer: idp.issuer, jwksUri: idp.jwksUri, audience: ['orders-api'], algorithms: ['RS256'] }],
        upstreams: { app: { url: up.url } },
        rateLimit: { spraying: { invalidTokens: 3, window: '1m', block: '15m' } },
        routes: [{ path: '/api/', upstream: 'app', auth: 'token' }],
      }),
    ),
  );
  proxy = new Agent({ localAddress: '127.0.0.2', connections: 64 });
});

afterAll(async () => {
  await gw?.stop();
  await Promise.all([proxy?.close(), up?.close(), idp?.close()]);
});

async function call(client: string, token: string): Promise<number> {
  const res = await request(`${gw.url}/api/x`, {
    headers: { authorization: `Bearer ${recordToken(token)}`, 'x-forwarded-for': client },
    dispatcher: proxy,
  });
  await res.body.text();
  return res.statusCode;
}

async function metric(series: string): Promise<number> {
  const text = await (await request(`${gw.adminUrl}/metrics`)).body.text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  if (line === undefined) throw new Error(`${series} is not exported`);
  return Number(line.split(' ')[1]);
}
const verifiedInvalid = () => metric('mfa_gateway_verification_duration_seconds_count{outcome="invalid"}');

describe('the spraying guard', () => {
  it('lets a token the cache already holds as valid through a blocked address; unknown and invalid tokens get 429', async () => {
    const client = '198.51.100.1';
    const cachedToken = await valid();
    expect(await call(client, cachedToken)).toBe(200); // verified once, now cached
    for (let i = 0; i < 4; i++) expect(await call(client, await forged())).toBe(401);
    expect(await call(client, await forged())).toBe(429); // blocked
    expect(await call(client, cachedToken)).toBe(200); // still served
    expect(await call(client, await valid())).toBe(429); // never seen: would cost verification work
  });

  it('counts a concurrent burst before any of it reaches the verifier', async () => {
    const client = '198.51.100.2';
    const tokens = await Promise.all(Array.from({ length: 30 }, () => forged()));
    const before = await verifiedInvalid();
    const statuses = await Promise.all(tokens.map((t) => call(client, t)));
    const verified = (await verifiedInvalid()) - before;
    // invalidTokens (3) + 1 verifications at most: the rest were refused before the pool.
    expect(verified).toBeLessThanOrEqual(4);
    expect(statuses.filter((s) => s === 401)).toHaveLength(verified);
    expect(statuses.filter((s) => s === 429)).toHaveLength(30 - verified);
  });

  it('a burst of the same never-seen valid token joins one verification and is never refused', async () => {
    const client = '198.51.100.3';
    const token = await valid();
    const statuses = await Promise.all(Array.from({ length: 20 }, () => call(client, token)));
    expect(statuses).toEqual(Array.from({ length: 20 }, () => 200));
  });

  it('unknown_kid does not count: a new signing key seen during a cooldown never blocks the address', async () => {
    const client = '198.51.100.4';
    const cachedToken = await valid();
    expect(await call(client, cachedToken)).toBe(200);
    const rotated = await makeKey('RS256', 'rs-2'); // not published yet (the cooldown is 1 h)
    for (let i = 0; i < 10; i++) expect(await call(client, await sign(rotated, claims()))).toBe(401);
    expect(await call(client, cachedToken)).toBe(200);
    expect(await call(client, await valid())).toBe(200); // a never-seen token is still verified: not blocked
  });
});
