/**
 * The RFC 7662 introspection client against oidc-provider's real introspection endpoint,
 * with opaque access tokens it issued for a resource server: an active token answered once
 * and then from the cache, a token revoked at the IdP (RFC 7009) inactive, concurrent
 * calls coalesced and bounded (counted at the IdP), the IdP down, slow, or refusing the
 * gateway's credentials → unavailable (the caller's 503, never an allow).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { calculateJwkThumbprint } from 'jose';
import { parseClaimPath } from '../../../src/authz/claims.js';
import { IntrospectionClient, type IntrospectionClientOptions } from '../../../src/introspection/client.js';
import { outputSink } from '../leaks.js';
import { REFUSED_PORT } from '../authn/idp.js';
import { dpopKey, GATEWAY_CLIENT_ID, GATEWAY_SECRET, OPAQUE_API, OPAQUE_API_AUDIENCE, startTestOp, type TestOp } from '../op.js';

const logSink = outputSink('introspection-log');

let op: TestOp;
let slowOp: TestOp;
beforeAll(async () => {
  [op, slowOp] = await Promise.all([startTestOp(), startTestOp({ introspectionDelayMs: 600 })]);
});
afterAll(async () => {
  await Promise.all([op?.close(), slowOp?.close()]);
});

const CLAIMS = { subject: parseClaimPath('sub'), roles: parseClaimPath('roles'), scopes: parseClaimPath('scope'), groups: parseClaimPath('groups') };

interface Harness {
  client: IntrospectionClient;
  clock: { t: number };
  logs: { level: string; msg: string; fields?: Record<string, unknown> }[];
}

function harness(over: Partial<IntrospectionClientOptions> = {}, server: TestOp = op): Harness {
  const clock = { t: Date.now() };
  const logs: Harness['logs'] = [];
  const client = new IntrospectionClient({
    issuer: { name: 'op', issuer: server.issuer, claims: CLAIMS },
    clientId: GATEWAY_CLIENT_ID,
    clientSecret: GATEWAY_SECRET,
    timeoutMs: 5000,
    cacheTtlMs: 60_000,
    maxConcurrent: 4,
    audience: [OPAQUE_API_AUDIENCE],
    now: () => clock.t,
    fetch: globalThis.fetch,
    log: (level, msg, fields) => {
      const line = { level, msg, ...(fields ? { fields } : {}) };
      logs.push(line);
      logSink(`${JSON.stringify(line)}\n`);
    },
    ...over,
  });
  return { client, clock, logs };
}

const introspections = (server: TestOp = op) => server.hits.get('/token/introspection') ?? 0;

describe('an opaque access token of oidc-provider', () => {
  it('is active: one request (endpoint found by discovery), then answers from the cache', async () => {
    const { accessToken } = await op.login({ resource: OPAQUE_API });
    expect(accessToken.split('.')).toHaveLength(1);
    const { client } = harness();
    const before = introspections();
    const r = await client.introspect(accessToken);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    // The same principal a JWT with these claims gives (src/authz/claims.ts principalFrom).
    expect(r.principal).toMatchObject({
      issuer: 'op', iss: op.issuer, subject: 'alice', sub: 'alice', amr: ['pwd', 'otp'], acr: 'urn:test:mfa', roles: ['reader'], scopes: ['api:read'],
      clientId: 'rp', cnfJkt: undefined,
    });
    expect(r.principal.sid).toEqual(expect.any(String));
    expect(r.claims).toMatchObject({ active: true, aud: OPAQUE_API_AUDIENCE, token_type: 'Bearer' });
    expect(introspections() - before).toBe(1);
    expect(await client.introspect(accessToken)).toBe(r);
    expect(introspections() - before).toBe(1);
    expect(client.stats()).toMatchObject({ requests: 1, cacheHits: 1, cached: 1, running: 0, queued: 0 });
  });

  it('bound to a DPoP key: the principal carries the cnf.jkt the introspection answer names', async () => {
    const key = await dpopKey();
    const { accessToken, tokenType } = await op.login({ resource: OPAQUE_API, dpop: key });
    expect(tokenType).toBe('DPoP');
    const r = await harness().client.introspect(accessToken);
    expect(r.ok && r.principal.cnfJkt).toBe(await calculateJwkThumbprint(key.publicJwk, 'sha256'));
    expect(r.ok && r.claims['token_type']).toBe('DPoP');
  });

  it('revoked at the IdP: inactive (once the cached answer has aged out), then negative-cached', async () => {
    const { accessToken } = await op.login({ resource: OPAQUE_API });
    const { client, clock } = harness({ cacheTtlMs: 30_000, negativeTtlMs: 10_000 });
    expect((await client.introspect(accessToken)).ok).toBe(true);
    await op.revoke(accessToken);
    // Within cacheTtl the cached answer stands: the price of caching, bounded by cacheTtl.
    expect((await client.introspect(accessToken)).ok).toBe(true);
    clock.t += 30_000;
    const before = introspections();
    expect(await client.introspect(accessToken)).toEqual({ ok: false, reason: 'inactive', detail: 'inactive' });
    expect(await client.introspect(accessToken)).toEqual({ ok: false, reason: 'inactive', detail: 'inactive' });
    expect(introspections() - before).toBe(1);
    clock.t += 10_000;
    expect((await client.introspect(accessToken)).ok).toBe(false);
    expect(introspections() - before).toBe(2);
  });

  it('a refresh token, active at the IdP, is no access token here', async () => {
    const { refreshToken } = await op.login({ resource: OPAQUE_API });
    expect(refreshToken).toEqual(expect.any(String));
    expect(await harness({ audience: undefined }).client.introspect(refreshToken!)).toEqual({ ok: false, reason: 'inactive', detail: 'not_an_access_token' });
  });

  it('for another resource server: inactive (wrong audience)', async () => {
    const { accessToken } = await op.login({ resource: OPAQUE_API });
    expect(await harness({ audience: ['billing-api'] }).client.introspect(accessToken)).toEqual({ ok: false, reason: 'inactive', detail: 'wrong_audience' });
  });
});

describe('concurrency', () => {
  it('coalesces concurrent calls for one token into one request', async () => {
    const { accessToken } = await op.login({ resource: OPAQUE_API });
    const { client } = harness({ endpoint: op.introspectionEndpoint });
    const before = introspections();
    const results = await Promise.all(Array.from({ length: 20 }, () => client.introspect(accessToken)));
    expect(results.every((r) => r === results[0] && r.ok)).toBe(true);
    expect(introspections() - before).toBe(1);
    expect(client.stats()).toMatchObject({ requests: 1, coalesced: 19 });
  });

  it('sends at most maxConcurrent requests at once; the rest wait their turn in the queue', async () => {
    const tokens = await Promise.all(Array.from({ length: 6 }, () => slowOp.login({ resource: OPAQUE_API })));
    const { client } = harness({ endpoint: slowOp.introspectionEndpoint, maxConcurrent: 2, maxQueue: 4, timeoutMs: 10_000 }, slowOp);
    const results = await Promise.all(tokens.map((t) => client.introspect(t.accessToken)));
    expect(results.map((r) => r.ok)).toEqual([true, true, true, true, true, true]);
    expect(slowOp.introspectionPeak()).toBe(2);
  });

  it('a call that waits its whole timeout for a slot is unavailable (timeout), and never asks the IdP', async () => {
    const tokens = await Promise.all(Array.from({ length: 2 }, () => slowOp.login({ resource: OPAQUE_API })));
    const { client } = harness({ endpoint: slowOp.introspectionEndpoint, maxConcurrent: 1, maxQueue: 4, timeoutMs: 300 }, slowOp);
    const before = introspections(slowOp);
    const results = await Promise.all(tokens.map((t) => client.introspect(t.accessToken)));
    expect(results).toEqual([
      { ok: false, reason: 'unavailable', detail: 'timeout' },
      { ok: false, reason: 'unavailable', detail: 'timeout' },
    ]);
    expect(introspections(slowOp) - before).toBe(1);
    expect(client.stats()).toMatchObject({ running: 0, queued: 0 });
  });

  it('answers unavailable (overloaded) when the queue is full, without asking the IdP', async () => {
    const tokens = await Promise.all(Array.from({ length: 3 }, () => slowOp.login({ resource: OPAQUE_API })));
    const { client } = harness({ endpoint: slowOp.introspectionEndpoint, maxConcurrent: 1, maxQueue: 1, timeoutMs: 10_000 }, slowOp);
    const before = introspections(slowOp);
    const results = await Promise.all(tokens.map((t) => client.introspect(t.accessToken)));
    expect(results.map((r) => (r.ok ? 'ok' : `${r.reason}:${r.detail}`))).toEqual(['ok', 'ok', 'unavailable:overloaded']);
    expect(introspections(slowOp) - before).toBe(2);
  });
});

describe('the IdP unreachable, slow, or refusing the gateway', () => {
  it('down (connection refused): unavailable, not cached', async () => {
    const { client, logs } = harness({ endpoint: `http://127.0.0.1:${REFUSED_PORT}/token/introspection` });
    expect(await client.introspect('opaque-token-for-a-down-idp')).toEqual({ ok: false, reason: 'unavailable', detail: 'econnrefused' });
    expect(client.stats().cached).toBe(0);
    expect(logs).toEqual([{ level: 'warn', msg: 'token introspection failed', fields: { issuer: 'op', reason: 'unavailable', detail: 'econnrefused' } }]);
  });

  it('slower than the timeout: unavailable (timeout)', async () => {
    const { accessToken } = await slowOp.login({ resource: OPAQUE_API });
    const { client } = harness({ endpoint: slowOp.introspectionEndpoint, timeoutMs: 300 }, slowOp);
    expect(await client.introspect(accessToken)).toEqual({ ok: false, reason: 'unavailable', detail: 'timeout' });
  });

  it('a wrong client secret: unavailable (client_auth_failed); the secret is in no result or log', async () => {
    const { accessToken } = await op.login({ resource: OPAQUE_API });
    const wrong = 'not-the-secret-0123456789';
    const { client, logs } = harness({ clientSecret: wrong });
    const r = await client.introspect(accessToken);
    expect(r).toEqual({ ok: false, reason: 'unavailable', detail: 'client_auth_failed' });
    const text = JSON.stringify({ r, logs, stats: client.stats() });
    for (const secret of [wrong, GATEWAY_SECRET, accessToken]) expect(text).not.toContain(secret);
    expect(logs).toHaveLength(1);
  });

  it('no introspection endpoint in discovery (wrong discovery URL): unavailable (discovery_failed), retried by the next call', async () => {
    const { client, logs } = harness({ discoveryUrl: `${op.issuer}/.well-known/nothing-here` });
    expect(await client.introspect('opaque-token-no-discovery')).toEqual({ ok: false, reason: 'unavailable', detail: 'discovery_failed' });
    expect(await client.introspect('opaque-token-no-discovery')).toEqual({ ok: false, reason: 'unavailable', detail: 'discovery_failed' });
    expect(logs.filter((l) => l.msg === 'introspection discovery failed')).toHaveLength(2);
  });
});
