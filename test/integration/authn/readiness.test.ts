/**
 * Readiness that recovers, on the built gateway: started while its IdP is down, it
 * answers /readyz 503 naming the real cause; when the IdP comes up on the same port,
 * /readyz turns 200 by itself, without a single request on the public port.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { baseConfig, startGatewayProcess, startUpstream, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';
import { freePort, makeKey, sign, startIdp, type IdpServer, type TestKey } from './idp.js';

let key: TestKey;
let port: number;
let up: Upstream;
let gw: GatewayProcess;
let idp: IdpServer | undefined;

const issuer = () => `http://127.0.0.1:${port}/realms/test`;

beforeAll(async () => {
  key = await makeKey('RS256', 'k1');
  port = await freePort();
  up = await startUpstream();
  gw = await startGatewayProcess(
    writeConfig(
      baseConfig({
        // The cooldown caps the retry backoff (1 s doubling to min(cooldown, 20 s)): 1 s keeps this test short.
        verifier: { threads: 1, jwksCooldown: '1s' },
        issuers: [{ name: 'corp', issuer: issuer(), jwksUri: `${issuer()}/certs`, audience: ['api'], algorithms: ['RS256'] }],
        upstreams: { app: { url: up.url } },
        routes: [{ path: '/', upstream: 'app', auth: 'token' }],
      }),
    ),
  );
});

afterAll(async () => {
  await gw?.stop();
  await idp?.close();
  await up?.close();
});

async function readyz(): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await request(`${gw.adminUrl}/readyz`);
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

async function metric(name: string): Promise<number | undefined> {
  const res = await request(`${gw.adminUrl}/metrics`);
  const text = await res.body.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe('an IdP that is down at start, then comes back', () => {
  it('/readyz is 503 with the cause, then 200 on its own once the IdP answers', async () => {
    const refused = `${issuer()}/certs: connection refused (ECONNREFUSED 127.0.0.1:${port})`;
    const down = await readyz();
    expect(down.status).toBe(503);
    expect(down.body).toMatchObject({
      status: 'not_ready',
      reasons: [`issuer corp: ${refused}`],
      listening: true,
      issuers: { corp: { ok: false, state: 'failing', cause: 'connection_refused', error: refused } },
      verifier: { ok: true },
    });
    expect(gw.logLines()).toContainEqual(expect.objectContaining({ level: 'error', msg: 'key set fetch failed', issuer: 'corp', cause: 'connection_refused' }));
    expect(await metric('mfa_gateway_ready')).toBe(0);

    idp = await startIdp([key.jwk], '/realms/test', { port });
    let now = down;
    for (let i = 0; i < 150 && now.status !== 200; i++) {
      await sleep(100);
      now = await readyz();
    }
    expect(now.status).toBe(200);
    expect(now.body).toMatchObject({ status: 'ready', issuers: { corp: { ok: true, state: 'ready' } } });
    expect((now.body['issuers'] as Record<string, Record<string, unknown>>)['corp']).not.toHaveProperty('error');
    expect(now.body).not.toHaveProperty('reasons');
    expect(await metric('mfa_gateway_ready')).toBe(1);
    // One fetch brought it back (the next is due on the key set's cache lifetime), and no
    // request reached the public port: the refresh happened without traffic.
    expect(idp.jwksHits()).toBe(1);
    expect(up.received).toHaveLength(0);
    expect(gw.logLines().filter((l) => l['msg'] === 'audit')).toHaveLength(0);

    // And the keys serve.
    const now_s = Math.floor(Date.now() / 1000);
    const token = await sign(key, { iss: issuer(), aud: 'api', sub: 'alice', iat: now_s, exp: now_s + 300, jti: randomUUID() });
    const res = await request(`${gw.url}/x`, { headers: { authorization: `Bearer ${token}` } });
    await res.body.text();
    expect(res.statusCode).toBe(200);
    expect(up.received).toHaveLength(1);
  });
});
