/**
 * A real key-set and discovery server on port 0 for the verifier's component tests,
 * jose-generated keys, and a token minter that can write any header (attacks included).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { compileConfig } from '../../../src/config/load.js';
import type { CompiledConfig } from '../../../src/config/state.js';
import { recordToken } from '../leaks.js';

export interface TestKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  /** Public JWK as published (with kid, alg, use). */
  readonly jwk: JWK;
}

export async function makeKey(alg: string, kid: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, publicKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

export interface IdpServer {
  /** `http://127.0.0.1:PORT/realms/test` */
  readonly issuer: string;
  readonly jwksUri: string;
  /** Requests served, by path (`/realms/test/certs`, …). */
  readonly hits: Map<string, number>;
  jwksHits(): number;
  discoveryHits(): number;
  /** All requests, in order. */
  readonly log: string[];
  /** Replace the published keys (rotation). */
  setKeys(jwks: readonly JWK[]): void;
  /** Make the key-set endpoint answer this status (500 = IdP outage); null = normal. */
  failWith(status: number | null): void;
  /** The `issuer` the discovery document claims (default: the real one). */
  setDiscoveryIssuer(iss: string): void;
  /** Extra response headers of the key-set endpoint (e.g. Cache-Control). */
  setKeySetHeaders(headers: Record<string, string>): void;
  /** Make the key-set endpoint answer this body (200) instead of the key set; null = normal. */
  setKeySetBody(body: string | null): void;
  close(): Promise<void>;
}

/**
 * A discovery + key-set server. `port` (default 0: any free port) lets a test bring an
 * IdP back on the port a gateway was configured with while it was down.
 */
export async function startIdp(keys: readonly JWK[], path = '/realms/test', options: { port?: number } = {}): Promise<IdpServer> {
  let published: readonly JWK[] = keys;
  let failure: number | null = null;
  let discoveryIssuer: string | null = null;
  let keySetHeaders: Record<string, string> = {};
  let keySetBody: string | null = null;
  const hits = new Map<string, number>();
  const log: string[] = [];
  let issuer = '';
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '';
    log.push(url);
    hits.set(url, (hits.get(url) ?? 0) + 1);
    res.setHeader('content-type', 'application/json');
    if (url === `${path}/.well-known/openid-configuration`) {
      res.end(JSON.stringify({ issuer: discoveryIssuer ?? issuer, jwks_uri: `${issuer}/certs`, token_endpoint: `${issuer}/token` }));
    } else if (url === `${path}/certs`) {
      for (const [k, v] of Object.entries(keySetHeaders)) res.setHeader(k, v);
      if (failure !== null) {
        res.statusCode = failure;
        res.end('{"error":"down"}');
      } else {
        res.end(keySetBody ?? JSON.stringify({ keys: published }));
      }
    } else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
  await new Promise<void>((r, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', r);
  });
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`;
  return {
    issuer,
    jwksUri: `${issuer}/certs`,
    hits,
    log,
    jwksHits: () => hits.get(`${path}/certs`) ?? 0,
    discoveryHits: () => hits.get(`${path}/.well-known/openid-configuration`) ?? 0,
    setKeys(jwks) {
      published = jwks;
    },
    failWith(status) {
      failure = status;
    },
    setDiscoveryIssuer(iss) {
      discoveryIssuer = iss;
    },
    setKeySetHeaders(headers) {
      keySetHeaders = headers;
    },
    setKeySetBody(body) {
      keySetBody = body;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A server that must never be contacted (the target of `jku` / `x5u`); counts what it gets. */
export async function startTrap(body: unknown): Promise<{ url: string; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export interface MintOptions {
  /** Header parameters; `alg` defaults to the key's, `kid` to the key's (null: no kid), `typ` to at+jwt (null: none). */
  header?: Record<string, unknown> & { kid?: string | null; typ?: string | null; alg?: string };
  /** Extensions the signer itself accepts in `crit` (jose refuses to sign unknown ones otherwise). */
  crit?: Record<string, boolean>;
}

/** Signs `claims` exactly as given (no defaults added) with `key`. */
export async function sign(key: TestKey | { privateKey: CryptoKey | Uint8Array; kid: string; alg: string }, claims: JWTPayload, options: MintOptions = {}): Promise<string> {
  const { kid, typ, alg, ...rest } = options.header ?? {};
  const header: Record<string, unknown> = { alg: alg ?? key.alg, ...rest };
  if (kid !== null) header['kid'] = kid ?? key.kid;
  if (typ !== null) header['typ'] = typ ?? 'at+jwt';
  return recordToken(await new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(key.privateKey, options.crit ? { crit: options.crit } : undefined));
}

/** Signs an arbitrary header and payload with an RS256 key, bypassing jose's own header checks. */
export async function signRawRs256(key: TestKey, header: Record<string, unknown>, payload: unknown): Promise<string> {
  const input = `${b64(header)}.${b64(payload)}`;
  const sig = await crypto.subtle.sign({ name: 'RSASSA-PKCS1-v1_5' }, key.privateKey, new TextEncoder().encode(input));
  return recordToken(`${input}.${Buffer.from(sig).toString('base64url')}`);
}

export const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * Other spellings of a canonical JWS that a lenient base64url decoder (jose's) reads as
 * the same bytes: in each segment, every unused low bit of the last character flipped,
 * and `=` padding appended; and the standard alphabet's `+` / `/` where `-` / `_` occur.
 */
export function respellings(token: string): string[] {
  const segments = token.split('.');
  const out: string[] = [];
  segments.forEach((s, i) => {
    const respell = (v: string) => recordToken(segments.map((x, j) => (j === i ? v : x)).join('.'));
    const width = s.length % 4 === 2 ? 4 : s.length % 4 === 3 ? 2 : 0;
    const last = B64URL.indexOf(s.at(-1) ?? 'A');
    for (let bit = 0; bit < width; bit++) out.push(respell(s.slice(0, -1) + B64URL[last ^ (1 << bit)]));
    if (width > 0) out.push(respell(`${s}${'='.repeat(4 - (s.length % 4))}`));
    if (/[-_]/.test(s)) out.push(respell(s.replace(/-/g, '+').replace(/_/g, '/')));
  });
  return out;
}

/**
 * JSON text of `claims` with one more claim, `deep`, nested `levels` levels of objects
 * (`{"":{"":…}}`, the shortest spelling) or arrays (`[[…]]`) deep. Built as text: the
 * structured clone in jose's SignJWT (and JSON.stringify) would overflow the stack on
 * the deepest ones.
 */
export function deepClaims(claims: JWTPayload, levels: number, kind: 'object' | 'array' = 'object'): string {
  const value = kind === 'object' ? `${'{"":'.repeat(levels)}1${'}'.repeat(levels)}` : `${'['.repeat(levels)}${']'.repeat(levels)}`;
  return `${JSON.stringify(claims).slice(0, -1)},"deep":${value}}`;
}

/** Frozen test clock in ms; `advance` moves it. */
export function testClock(startMs = Date.UTC(2030, 0, 1)): { now: () => number; set(ms: number): void; advance(ms: number): void; sec(): number } {
  let t = startMs;
  return {
    now: () => t,
    set: (ms) => {
      t = ms;
    },
    advance: (ms) => {
      t += ms;
    },
    sec: () => Math.floor(t / 1000),
  };
}

/**
 * Timers a test fires by hand (the KeyStore's `setTimer`): background refreshes happen
 * exactly when the test says, never on their own.
 */
export function manualTimers(): {
  setTimer: (fn: () => void, ms: number) => { cancel(): void };
  /** Delays of the timers scheduled so far, in order, cancelled ones included. */
  readonly scheduled: number[];
  /** Timers not yet fired or cancelled. */
  pending(): number;
  /** Fires the oldest pending timer; false when none is pending. */
  fire(): boolean;
} {
  const queue: { fn: () => void; live: boolean }[] = [];
  const scheduled: number[] = [];
  return {
    setTimer(fn, ms) {
      const t = { fn, live: true };
      queue.push(t);
      scheduled.push(ms);
      return { cancel: () => void (t.live = false) };
    },
    scheduled,
    pending: () => queue.filter((t) => t.live).length,
    fire() {
      const t = queue.find((q) => q.live);
      if (!t) return false;
      t.live = false;
      t.fn();
      return true;
    },
  };
}

/**
 * A loopback port nothing listens on, for connection-refused cases: below the ephemeral
 * range (/proc/sys/net/ipv4/ip_local_port_range), so no server a test starts on port 0
 * can be given it, as it could a port that was free a moment ago; and not one of the
 * Fetch standard's "bad ports", which fetch() refuses without connecting (1 and 9 are).
 */
export const REFUSED_PORT = 2;

/** A free loopback port, never the same twice in one process: the bench's helper, one set of ports for both. */
export { freePort } from '../../../bench/lib/ports.js';

/** Builds a compiled config with these issuers and verifier settings (threads 0 unless given). */
export function configWith(issuers: object[], verifier: Record<string, unknown> = {}): CompiledConfig {
  const dir = mkdtempSync(join(tmpdir(), 'authn-'));
  return compileConfig(
    {
      verifier: { threads: 0, ...verifier },
      issuers,
      upstreams: { app: { url: 'http://127.0.0.1:9' } },
      routes: [{ path: '/', upstream: 'app', auth: 'token' }],
    },
    dir,
  );
}
