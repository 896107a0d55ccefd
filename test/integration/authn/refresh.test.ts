/**
 * Key sets refreshed in the background (src/authn/jwks.ts): the KeyStore against real
 * servers on port 0 (HTTP, HTTPS with a self-signed certificate, one that never
 * answers), with an injected clock and timers the test fires by hand, so each delay
 * is checked exactly and nothing waits in real time.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KeyStore, REFRESH, type KeyStatus } from '../../../src/authn/jwks.js';
import { configWith, freePort, makeKey, manualTimers, REFUSED_PORT, startIdp, testClock, type IdpServer, type TestKey } from './idp.js';

let key: TestKey;
beforeAll(async () => {
  key = await makeKey('RS256', 'k1');
});

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Store {
  store: KeyStore;
  timers: ReturnType<typeof manualTimers>;
  clock: ReturnType<typeof testClock>;
  logs: { level: string; msg: string; fields: Record<string, unknown> }[];
  abort: AbortController;
  status(): KeyStatus;
  /** Fires the pending refresh and waits for the load it starts. */
  tick(): Promise<void>;
}

function keyStore(source: Record<string, unknown>, opts: { cooldownMs?: number; timeoutMs?: number; random?: () => number } = {}): Store {
  const config = configWith([{ name: 'corp', issuer: 'https://idp.example/realms/test', audience: ['api'], algorithms: ['RS256'], ...source }]);
  const timers = manualTimers();
  const clock = testClock();
  const logs: Store['logs'] = [];
  const abort = new AbortController();
  const store = new KeyStore(config.issuers[0]!, {
    now: clock.now,
    fetch: globalThis.fetch,
    log: (level, msg, fields = {}) => void logs.push({ level, msg, fields }),
    cooldownMs: opts.cooldownMs ?? 30_000,
    timeoutMs: opts.timeoutMs ?? 5000,
    signal: abort.signal,
    setTimer: timers.setTimer,
    random: opts.random ?? (() => 0),
  });
  cleanups.push(() => abort.abort());
  return {
    store,
    timers,
    clock,
    logs,
    abort,
    status: () => store.status(),
    async tick() {
      expect(timers.fire()).toBe(true);
      await store.load(); // joins the load the timer started
    },
  };
}

async function idpOn(port?: number): Promise<IdpServer> {
  const idp = await startIdp([key.jwk], '/realms/test', port === undefined ? {} : { port });
  cleanups.push(() => idp.close());
  return idp;
}

async function listening(server: Server | ReturnType<typeof createHttpsServer>): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return (server.address() as AddressInfo).port;
}

describe('while the IdP is down', () => {
  it('names the real cause, retries 1 s doubling to the cap, and is ready one retry after the IdP is back', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/realms/test/certs`;
    const s = keyStore({ jwksUri: url });
    await s.store.load();
    expect(s.status()).toEqual({
      ok: false,
      state: 'failing',
      cause: 'connection_refused',
      error: `${url}: connection refused (ECONNREFUSED 127.0.0.1:${port})`,
      nextAttemptAt: s.clock.now() + 1000,
    });
    expect(s.logs.at(-1)).toEqual({
      level: 'error',
      msg: 'key set fetch failed',
      fields: { issuer: 'corp', error: `${url}: connection refused (ECONNREFUSED 127.0.0.1:${port})`, cause: 'connection_refused', servingPreviousKeys: false, retryInMs: 1000 },
    });
    for (let i = 0; i < 6; i++) await s.tick();
    // 1 s doubling, capped at min(jwksCooldown, 20 s): a down IdP sees one attempt per 20 s at most.
    expect(s.timers.scheduled).toEqual([1000, 2000, 4000, 8000, 16000, 20_000, 20_000]);
    expect(s.timers.pending()).toBe(1);
    expect(s.store.fetches).toBe(7);
    // At default settings the longest wait, plus one fetch's timeout (verifier.jwksTimeout,
    // default 5 s), stays under the 30 s in which /readyz must recover.
    expect(REFRESH.retryMaxMs + 5000).toBeLessThan(30_000);

    const idp = await idpOn(port);
    await s.tick();
    expect(idp.jwksHits()).toBe(1);
    expect(s.status()).toEqual({ ok: true, state: 'ready', fetchedAt: s.clock.now(), nextAttemptAt: s.clock.now() + REFRESH.defaultMs });
    expect(s.timers.scheduled.at(-1)).toBe(3_600_000);
    expect(s.logs).toContainEqual({ level: 'debug', msg: 'key set fetched', fields: { issuer: 'corp', url, status: 200, keys: 1, refreshInMs: 3_600_000 } });
  });

  it('never waits less than 1 s between attempts, whatever the cooldown', async () => {
    const s = keyStore({ jwksUri: `http://127.0.0.1:${REFUSED_PORT}/certs` }, { cooldownMs: 0 });
    await s.store.load();
    await s.tick();
    await s.tick();
    expect(s.timers.scheduled).toEqual([1000, 1000, 1000]);
  });

  it('a cooldown under 20 s is the cap; jitter only ever shortens a delay, by up to 10 %', async () => {
    const s = keyStore({ jwksUri: `http://127.0.0.1:${REFUSED_PORT}/certs` }, { cooldownMs: 5000, random: () => 0.5 });
    await s.store.load();
    for (let i = 0; i < 4; i++) await s.tick();
    expect(s.timers.scheduled).toEqual([950, 1900, 3800, 4750, 4750]);
  });

  it('keeps the last good keys when a refresh fails: stale, still ok', async () => {
    const idp = await idpOn();
    const s = keyStore({ jwksUri: idp.jwksUri });
    await s.store.load();
    const fetchedAt = s.clock.now();
    idp.failWith(503);
    s.clock.advance(3_600_000);
    await s.tick();
    expect(s.status()).toEqual({
      ok: true,
      state: 'stale',
      cause: 'http_status',
      error: `${idp.jwksUri}: HTTP 503`,
      fetchedAt,
      nextAttemptAt: s.clock.now() + 1000,
    });
    expect(s.logs.at(-1)).toMatchObject({ level: 'warn', msg: 'key set fetch failed', fields: { servingPreviousKeys: true } });
  });
});

describe('the next refresh follows the answer’s HTTP cache lifetime (RFC 9111), within 1 min – 24 h', () => {
  it.each([
    [{}, 3_600_000],
    [{ 'cache-control': 'public, max-age=120' }, 120_000],
    [{ 'cache-control': 'max-age=7' }, 60_000],
    [{ 'cache-control': 'max-age=9999999' }, 86_400_000],
    [{ 'cache-control': 'max-age=600', age: '100' }, 500_000],
    [{ 'cache-control': 'no-cache' }, 60_000],
    [{ 'cache-control': 'no-store, max-age=600' }, 60_000],
    [{ date: 'Tue, 01 Dec 2026 10:00:00 GMT', expires: 'Tue, 01 Dec 2026 12:00:00 GMT' }, 7_200_000],
    [{ expires: '0' }, 60_000],
  ])('%j → %d ms', async (headers, ms) => {
    const idp = await idpOn();
    idp.setKeySetHeaders(headers);
    const s = keyStore({ jwksUri: idp.jwksUri });
    await s.store.load();
    expect(s.status().state).toBe('ready');
    expect(s.timers.scheduled).toEqual([ms]);
  });

  it('a refresh by traffic (an unknown kid) replaces the scheduled one', async () => {
    const idp = await idpOn();
    const s = keyStore({ jwksUri: idp.jwksUri }, { cooldownMs: 1000 });
    await s.store.load();
    s.clock.advance(2000);
    await s.store.refresh();
    expect(idp.jwksHits()).toBe(2);
    expect(s.timers.scheduled).toEqual([3_600_000, 3_600_000]);
    expect(s.timers.pending()).toBe(1);
  });
});

describe('the real cause of each kind of failure', () => {
  const causeOf = async (source: Record<string, unknown>, timeoutMs?: number): Promise<KeyStatus> => {
    const s = keyStore(source, timeoutMs === undefined ? {} : { timeoutMs });
    await s.store.load();
    return s.status();
  };

  it('HTTP status, not JSON, not a key set, no usable key', async () => {
    const idp = await idpOn();
    idp.failWith(500);
    expect(await causeOf({ jwksUri: idp.jwksUri })).toMatchObject({ cause: 'http_status', error: `${idp.jwksUri}: HTTP 500` });
    idp.failWith(null);
    idp.setKeySetBody('<html>maintenance</html>');
    expect(await causeOf({ jwksUri: idp.jwksUri })).toMatchObject({ cause: 'not_json', error: `${idp.jwksUri}: not JSON` });
    idp.setKeySetBody('{"issuer":"x"}');
    expect(await causeOf({ jwksUri: idp.jwksUri })).toMatchObject({ cause: 'not_jwks', error: 'not a JWK Set (RFC 7517 §5)' });
    idp.setKeySetBody(JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }));
    expect(await causeOf({ jwksUri: idp.jwksUri })).toMatchObject({ cause: 'no_usable_key', error: 'the key set has no usable signing key' });
  });

  it('a timeout', async () => {
    // Accepts the connection and never answers.
    const port = await listening(createServer(() => {}));
    const url = `http://127.0.0.1:${port}/certs`;
    expect(await causeOf({ jwksUri: url }, 200)).toMatchObject({ cause: 'timeout', error: `${url}: timed out after 200 ms` });
  });

  it('a connection closed before any answer', async () => {
    const port = await listening(createServer((req) => req.socket.destroy()));
    const url = `http://127.0.0.1:${port}/certs`;
    expect(await causeOf({ jwksUri: url })).toMatchObject({ cause: 'connection_reset', error: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/certs: the connection closed before an answer \(/) });
  });

  it('TLS: a certificate the gateway does not trust', async () => {
    const dir = join(import.meta.dirname, 'fixtures');
    const port = await listening(createHttpsServer({ cert: readFileSync(join(dir, 'self-signed.crt')), key: readFileSync(join(dir, 'self-signed.key')) }, (_q, r) => r.end('{}')));
    const url = `https://127.0.0.1:${port}/certs`;
    expect(await causeOf({ jwksUri: url })).toMatchObject({ cause: 'tls', error: `${url}: TLS: self-signed certificate (DEPTH_ZERO_SELF_SIGNED_CERT)` });
  });

  it('DNS: a name that does not resolve (RFC 6761 .invalid)', async () => {
    const status = await causeOf({ jwksUri: 'https://idp.nonexistent.invalid/certs' });
    expect(status).toMatchObject({ cause: 'dns', error: expect.stringMatching(/^https:\/\/idp\.nonexistent\.invalid\/certs: DNS: (no address for|temporary failure resolving) idp\.nonexistent\.invalid \((ENOTFOUND|EAI_AGAIN)\)$/) });
  });

  it('discovery and files', async () => {
    const idp = await idpOn();
    idp.setDiscoveryIssuer('https://evil.example/');
    expect(await causeOf({ issuer: idp.issuer, discovery: true })).toMatchObject({ cause: 'discovery', error: expect.stringMatching(/does not equal the configured issuer$/) });
    expect(await causeOf({ jwksFile: join(import.meta.dirname, 'fixtures', 'self-signed.crt') })).toMatchObject({ cause: 'not_json' });
    // A file that was there when the config was checked, and is gone by the time it is read.
    const file = join(mkdtempSync(join(tmpdir(), 'jwks-gone-')), 'keys.json');
    writeFileSync(file, '{"keys":[]}');
    const s = keyStore({ jwksFile: file });
    rmSync(file);
    await s.store.load();
    expect(s.status()).toMatchObject({ cause: 'file', error: `cannot read ${file}: ENOENT` });
  });
});

describe('closing', () => {
  it('cancels the pending refresh, and a load that ends after close schedules none', async () => {
    const port = await listening(createServer(() => {}));
    const s = keyStore({ jwksUri: `http://127.0.0.1:${port}/certs` }, { timeoutMs: 60_000 });
    const loading = s.store.load();
    s.abort.abort(); // as verifier.close() does
    await loading;
    expect(s.status().cause).toBe('aborted');
    expect(s.timers.pending()).toBe(0);
    expect(s.timers.fire()).toBe(false);

    const idp = await idpOn();
    const t = keyStore({ jwksUri: idp.jwksUri });
    await t.store.load();
    expect(t.timers.pending()).toBe(1);
    t.abort.abort();
    expect(t.timers.pending()).toBe(0);
    expect(t.status().nextAttemptAt).toBeUndefined();
  });
});
