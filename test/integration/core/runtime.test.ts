/**
 * One clock for the whole gateway (src/runtime.ts): a gateway started with a runtime
 * whose clock the test moves judges token expiry, the token cache, the key-set cooldown
 * and the audit line's time by it, with no sleeping through real windows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { makeKey, sign, startIdp, type IdpServer, type TestKey } from '../authn/idp.js';
import { startUpstream, tempDir, type Upstream } from '../harness.js';
import { recordAuditFile } from '../leaks.js';

type Gw = { port: number; close(): Promise<void> };
const { startGateway, compileConfig, createLogger } = (await import('../../../dist/index.js')) as typeof import('../../../src/index.js');

const T0 = Date.UTC(2031, 5, 1, 12, 0, 0);
let t = T0;
let key: TestKey;
let rotated: TestKey;
let idp: IdpServer;
let up: Upstream;
let gw: Gw;
let auditFile: string;

beforeAll(async () => {
  [key, rotated] = await Promise.all([makeKey('RS256', 'k1'), makeKey('RS256', 'k2')]);
  idp = await startIdp([key.jwk], '/realms/clock');
  up = await startUpstream();
  const dir = tempDir('mfa-clock-');
  auditFile = join(dir, 'audit.log');
  recordAuditFile(auditFile);
  const config = compileConfig(
    {
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      verifier: { threads: 0, jwksCooldown: '30s' },
      issuers: [{ name: 'corp', issuer: idp.issuer, jwksUri: idp.jwksUri, audience: ['api'], algorithms: ['RS256'], clockTolerance: '5s' }],
      upstreams: { app: { url: up.url } },
      routes: [{ path: '/', upstream: 'app', auth: 'token' }],
      audit: { destination: auditFile, flushInterval: '20ms' },
      rateLimit: { spraying: { enabled: false } },
    },
    dir,
  );
  gw = await startGateway(config, { runtime: { now: () => t, fetch: globalThis.fetch }, logger: createLogger({ level: 'silent' }) });
});

afterAll(async () => {
  await gw?.close();
  await Promise.all([up?.close(), idp?.close()]);
});

const sec = () => Math.floor(t / 1000);
async function call(token: string): Promise<{ status: number; challenge: string | undefined }> {
  const res = await request(`http://127.0.0.1:${gw.port}/x`, { headers: { authorization: `Bearer ${token}` } });
  await res.body.text();
  return { status: res.statusCode, challenge: res.headers['www-authenticate'] as string | undefined };
}

describe('a gateway on a clock the test moves', () => {
  it('accepts a token valid on its clock, and refuses it once its clock passes exp + tolerance, cached or not', async () => {
    const token = await sign(key, { iss: idp.issuer, aud: 'api', sub: 'clock-1', iat: sec(), exp: sec() + 60 });
    expect((await call(token)).status).toBe(200); // verified, cached
    t += 30_000;
    expect((await call(token)).status).toBe(200); // a hit
    t += 36_000; // past exp (60 s) and the 5 s tolerance
    const late = await call(token);
    expect(late.status).toBe(401);
    expect(late.challenge).toContain('error_description="token expired"');
  });

  it('refetches the key set for a new kid only once the cooldown has passed on its clock', async () => {
    idp.setKeys([key.jwk, rotated.jwk]);
    const fetchesBefore = idp.jwksHits();
    const token = await sign(rotated, { iss: idp.issuer, aud: 'api', sub: 'clock-2', iat: sec(), exp: sec() + 600 });
    // The last fetch was at start, 66 s ago on this clock: the cooldown (30 s) is over.
    expect((await call(token)).status).toBe(200);
    expect(idp.jwksHits()).toBe(fetchesBefore + 1);
    // Another new key within the cooldown: no refetch, unknown_kid.
    const third = await makeKey('RS256', 'k3');
    idp.setKeys([key.jwk, rotated.jwk, third.jwk]);
    const early = await call(await sign(third, { iss: idp.issuer, aud: 'api', sub: 'clock-3', iat: sec(), exp: sec() + 600 }));
    expect(early.status).toBe(401);
    expect(early.challenge).toContain('unknown signing key');
    expect(idp.jwksHits()).toBe(fetchesBefore + 1);
    t += 31_000;
    expect((await call(await sign(third, { iss: idp.issuer, aud: 'api', sub: 'clock-4', iat: sec(), exp: sec() + 600 }))).status).toBe(200);
    expect(idp.jwksHits()).toBe(fetchesBefore + 2);
  });

  it('writes the audit line’s time from its clock', async () => {
    await call(await sign(key, { iss: idp.issuer, aud: 'api', sub: 'clock-5', iat: sec(), exp: sec() + 600 }));
    let line: Record<string, unknown> | undefined;
    for (let i = 0; i < 100 && line === undefined; i++) {
      await new Promise((r) => setTimeout(r, 20));
      line = readFileSync(auditFile, 'utf8')
        .split('\n')
        .filter((l) => l.includes('"clock-5"'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)[0];
    }
    expect(line?.['time']).toBe(new Date(t).toISOString());
  });
});
