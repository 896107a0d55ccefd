/**
 * `audit.destination: stdout` on the built gateway: audit lines share stdout with the
 * operational log, in the same shape (level by name, ISO time, msg), told apart by `"msg":"audit"`; a
 * quiet gateway still writes them (flushInterval), and SIGTERM writes what is buffered.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { baseConfig, startGatewayProcess, startUpstream, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';
import { makeKey, sign, startIdp, type IdpServer, type TestKey } from '../authn/idp.js';

let key: TestKey;
let idp: IdpServer;
let up: Upstream;
let gw: GatewayProcess;

beforeAll(async () => {
  key = await makeKey('ES256', 'es-1');
  idp = await startIdp([key.jwk], '/realms/stdout');
  up = await startUpstream();
  gw = await startGatewayProcess(
    writeConfig(
      baseConfig({
        verifier: { threads: 0 },
        issuers: [{ name: 'corp', issuer: idp.issuer, jwksUri: idp.jwksUri, audience: ['orders-api'] }],
        upstreams: { app: { url: up.url } },
        audit: { destination: 'stdout', flushInterval: '50ms' },
        routes: [{ path: '/', name: 'all', upstream: 'app', auth: 'token' }],
      }),
    ),
  );
});

afterAll(async () => {
  await gw?.stop();
  await up?.close();
  await idp?.close();
});

const lines = (): Record<string, unknown>[] =>
  gw
    .stdout()
    .split('\n')
    .slice(0, -1)
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('audit to stdout', () => {
  it('writes one audit line per request beside the operational log, and never the token', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await sign(key, { iss: idp.issuer, aud: 'orders-api', sub: 'alice', exp: now + 600, jti: randomUUID() });
    const res = await request(`${gw.url}/x`, { headers: { authorization: `Bearer ${token}`, 'x-request-id': 'stdout-1' } });
    expect(res.statusCode).toBe(200);
    await res.body.text();
    // Written by the periodic flush on a quiet gateway, without waiting for shutdown.
    let audit: Record<string, unknown> | undefined;
    for (let i = 0; i < 200 && !audit; i++) {
      audit = lines().find((l) => l['request_id'] === 'stdout-1');
      if (!audit) await sleep(25);
    }
    expect(audit).toMatchObject({ msg: 'audit', level: 'info', decision: 'allow', reason: 'ok', subject: 'alice', issuer: 'corp', cache: 'miss' });
    expect(audit!['log']).toBeUndefined();
    expect(await gw.stop()).toBe(0);
    const all = lines();
    expect(all.filter((l) => l['msg'] === 'audit')).toHaveLength(1);
    // One shape for both: the level by name, an ISO time, a msg (and the operational lines name the service).
    for (const l of all) {
      expect(l['level'], JSON.stringify(l)).toMatch(/^(trace|debug|info|warn|error|fatal)$/);
      expect(l['time']).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      expect(typeof l['msg']).toBe('string');
    }
    expect(all.some((l) => l['msg'] === 'listening' && l['level'] === 'info' && l['service'] === 'mfa-gateway')).toBe(true);
    // Start-up and shutdown are announced through the logger, not as plain text.
    expect(all.map((l) => l['msg'])).toEqual(expect.arrayContaining(['starting', 'listening', 'stopping', 'stopped']));
    expect(gw.stderr()).toBe('');
    for (const part of [token, ...token.split('.').slice(1)]) expect(gw.stdout() + gw.stderr()).not.toContain(part);
  });
});
