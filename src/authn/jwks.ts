/**
 * Key sets, held on the main thread, once per process (never once per worker), so
 * `verifier.jwksCooldown` bounds the refetch rate of the whole gateway.
 *
 * Keys come only from the configured source (OIDC discovery, `jwksUri` or
 * `jwksFile`); nothing a token says (`jku`, `x5u`, `jwk`, `x5c`, RFC 8725 §3.10)
 * ever selects a key or causes a fetch.
 *
 * Each key set is also refreshed in the background, without waiting for traffic: when
 * its HTTP cache lifetime ends (RFC 9111 §5.2.2.1 `max-age`, bounded to 1 min – 24 h,
 * 1 h when the answer gives none), and after a failure with a backoff of 1 s doubling
 * to at most `verifier.jwksCooldown` (and never more than 20 s), so an issuer whose IdP
 * comes back is ready again within about 20 s at default settings, while a down IdP
 * sees one attempt per backoff step per gateway.
 */
import { readFile } from 'node:fs/promises';
import { calculateJwkThumbprint, importJWK, type JWK } from 'jose';
import type { CompiledIssuer } from '../config/state.js';

/** One usable public signing key. */
export interface StoredKey {
  /** Public members only (kty, n, e / crv, x, y): nothing else of the JWK travels to the workers. */
  readonly jwk: JWK;
  readonly kid: string | undefined;
  readonly kty: 'RSA' | 'EC' | 'OKP';
  readonly crv: string | undefined;
  /** The JWK's own `alg`, when it names one (RFC 7517 §4.4). */
  readonly alg: string | undefined;
  /** RFC 7638 thumbprint: the identity workers cache the imported key under. */
  readonly id: string;
}

/** `select` answers when no key can be used. */
export const NO_KEYS = 'no_keys';
export const UNKNOWN_KID = 'unknown_kid';
export const KEY_MISMATCH = 'key_mismatch';
export type Selection = StoredKey | typeof NO_KEYS | typeof UNKNOWN_KID | typeof KEY_MISMATCH;

/** A scheduled background refresh. */
export interface Timer {
  cancel(): void;
}
export type SetTimer = (fn: () => void, ms: number) => Timer;

/** The default timer: real time, and unref'd, so a pending refresh never keeps the process alive. */
export const realTimer: SetTimer = (fn, ms) => {
  const t = setTimeout(fn, ms);
  t.unref();
  return { cancel: () => clearTimeout(t) };
};

/** Bounds of the background refresh (see the top of this file). */
export const REFRESH = Object.freeze({
  minMs: 60_000,
  maxMs: 86_400_000,
  defaultMs: 3_600_000,
  retryFirstMs: 1000,
  retryMaxMs: 20_000,
  /** Each delay is shortened by up to this share at random, so a fleet of gateways does not refresh in step. */
  jitter: 0.1,
});

export interface KeyStoreOptions {
  readonly now: () => number;
  readonly fetch: typeof globalThis.fetch;
  /**
   * Method syntax on purpose: a logger that takes only info / warn / error still fits
   * (debug lines then go to whatever `level` it is handed; the gateway's maps each to pino).
   */
  log(level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void;
  readonly cooldownMs: number;
  readonly timeoutMs: number;
  /** Aborted when the verifier closes: no fetch outlives it. */
  readonly signal: AbortSignal;
  /** Told the outcome of every key-set load attempt (for `mfa_gateway_jwks_fetches_total`). */
  readonly onFetch?: (issuer: string, ok: boolean) => void;
  /** Schedules background refreshes (default realTimer); tests drive it by hand. */
  readonly setTimer?: SetTimer;
  /** 0 ≤ x < 1, for the jitter (default Math.random). */
  readonly random?: () => number;
}

/** Why a key-set load failed, as `/readyz` names it. */
export type KeySetCause =
  | 'connection_refused'
  | 'connection_reset'
  | 'dns'
  | 'tls'
  | 'timeout'
  | 'network'
  | 'http_status'
  | 'too_large'
  | 'not_json'
  | 'not_jwks'
  | 'no_usable_key'
  | 'discovery'
  | 'file'
  | 'aborted';

/** One issuer's key set as `/readyz` shows it. */
export interface KeyStatus {
  /** A key set is loaded and serving (possibly an older one: see `state`). */
  readonly ok: boolean;
  /** loading: no attempt finished yet; ready; stale: serving older keys, the last refresh failed; failing: no keys at all. */
  readonly state: 'loading' | 'ready' | 'stale' | 'failing';
  /** The last attempt's failure, with its real cause (`…/certs: connection refused (ECONNREFUSED)`). */
  readonly error?: string;
  readonly cause?: KeySetCause;
  /** When the keys serving now were loaded (ms since the epoch, the injected clock). */
  readonly fetchedAt?: number;
  /** When the next background attempt is due. */
  readonly nextAttemptAt?: number;
}

/** A key-set load failure with its cause. */
export class KeySetError extends Error {
  constructor(
    readonly kind: KeySetCause,
    message: string,
  ) {
    super(message);
    this.name = 'KeySetError';
  }
}

/** TLS verification failures (OpenSSL's X509 codes as Node names them, and Node's own). */
const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_|INVALID_PURPOSE|INVALID_CA)/;

/**
 * The real cause of a failed fetch. undici's fetch rejects with `TypeError: fetch failed`
 * and keeps what happened in `err.cause` (an Error with a system `code`, sometimes an
 * AggregateError of one per address tried); the timeout is the AbortSignal's TimeoutError.
 */
export function fetchFailure(err: unknown, url: string, timeoutMs: number): KeySetError {
  const e = err as (Error & { cause?: unknown }) | undefined;
  if (e?.name === 'TimeoutError') return new KeySetError('timeout', `${url}: timed out after ${timeoutMs} ms`);
  if (e?.name === 'AbortError') return new KeySetError('aborted', `${url}: aborted`);
  let c: unknown = e?.cause ?? e;
  for (let i = 0; i < 4 && c instanceof AggregateError && c.errors.length > 0 && (c as { code?: unknown }).code === undefined; i++) c = c.errors[0];
  const cause = (c ?? {}) as { code?: unknown; message?: unknown; hostname?: unknown; address?: unknown; port?: unknown };
  const code = typeof cause.code === 'string' ? cause.code : '';
  const text = typeof cause.message === 'string' ? cause.message : String(c);
  const host = typeof cause.hostname === 'string' ? cause.hostname : safeHost(url);
  const peer = typeof cause.address === 'string' ? ` ${cause.address}${typeof cause.port === 'number' ? `:${cause.port}` : ''}` : '';
  if (code === 'ECONNREFUSED') return new KeySetError('connection_refused', `${url}: connection refused (ECONNREFUSED${peer})`);
  if (code === 'ENOTFOUND') return new KeySetError('dns', `${url}: DNS: no address for ${host} (ENOTFOUND)`);
  if (code === 'EAI_AGAIN') return new KeySetError('dns', `${url}: DNS: temporary failure resolving ${host} (EAI_AGAIN)`);
  if (TLS_CODE.test(code)) return new KeySetError('tls', `${url}: TLS: ${text} (${code})`);
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET') {
    return new KeySetError('connection_reset', `${url}: the connection closed before an answer (${code})`);
  }
  if (code === 'ETIMEDOUT' || (code.startsWith('UND_ERR_') && code.endsWith('_TIMEOUT'))) return new KeySetError('timeout', `${url}: timed out (${code})`);
  return new KeySetError('network', `${url}: ${text}${code ? ` (${code})` : ''}`);
}

function safeHost(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return url;
  }
}

/** An IMF-fixdate (RFC 9110 §5.6.7), the only form of HTTP date a sender may generate. */
const HTTP_DATE = /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/;

/**
 * How long an answer may be reused, from its headers (RFC 9111 §4.2.1): `Cache-Control:
 * max-age` less `Age` (§4.2.3), else `Expires` less `Date`; 0 for `no-store` / `no-cache`
 * and an invalid `Expires` (§5.3: it means "already expired"); undefined when none says.
 */
export function cacheLifetimeMs(headers: { get(name: string): string | null }, nowMs: number): number | undefined {
  const cc = headers.get('cache-control');
  if (cc !== null) {
    const directives = cc.toLowerCase().split(',').map((d) => d.trim());
    if (directives.some((d) => d === 'no-store' || d === 'no-cache')) return 0;
    for (const d of directives) {
      const m = /^max-age\s*=\s*"?(\d+)"?$/.exec(d);
      if (m) return Math.max(0, Number(m[1]) - (Number(headers.get('age')) || 0)) * 1000;
    }
  }
  const expires = headers.get('expires');
  if (expires === null) return undefined;
  if (!HTTP_DATE.test(expires.trim())) return 0;
  const date = headers.get('date');
  const base = date !== null && HTTP_DATE.test(date.trim()) ? Date.parse(date) : nowMs;
  return Math.max(0, Date.parse(expires) - base);
}

/** What one successful read of the key set gave. */
interface KeySetDocument {
  readonly doc: unknown;
  /** The answer's cache lifetime, when it gave one (files give none). */
  readonly lifetimeMs: number | undefined;
  /** What to log: the URL and status, or the file. */
  readonly from: { url: string; status: number } | { file: string };
}

/** A key-set or discovery document larger than this is refused (no JWKS comes near it). */
const MAX_DOCUMENT_BYTES = 1 << 20;
/** RFC 7518 §3.3: RSA keys of 2048 bits or more. */
const MIN_RSA_BITS = 2048;

const EC_CURVES: Readonly<Record<string, string>> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };

/**
 * Whether a key may verify a token signed with `alg`: the key type must match the
 * algorithm (RFC 8725 §3.1, no algorithm confusion): RSA for the RS and PS algorithms, EC on the
 * algorithm's curve for ES256/384/512, OKP Ed25519 for EdDSA; and a JWK that names its own
 * `alg` is used for that algorithm only (RFC 7517 §4.4). HS* and `none` fit no key.
 */
export function keyFits(key: StoredKey, alg: string): boolean {
  if (key.alg !== undefined && key.alg !== alg && !(isEdDsa(key.alg) && isEdDsa(alg))) return false;
  if (/^(RS|PS)(256|384|512)$/.test(alg)) return key.kty === 'RSA';
  const curve = EC_CURVES[alg];
  if (curve !== undefined) return key.kty === 'EC' && key.crv === curve;
  if (isEdDsa(alg)) return key.kty === 'OKP' && key.crv === 'Ed25519';
  return false;
}

function isEdDsa(alg: string): boolean {
  return alg === 'EdDSA' || alg === 'Ed25519';
}

/** One issuer's key set: loading, cooldown-limited single-flight refetch, selection. */
export class KeyStore {
  private keys: readonly StoredKey[] | null = null;
  private inflight: Promise<void> | null = null;
  private lastAttemptAt = Number.NEGATIVE_INFINITY;
  private jwksUri: string | null;
  private fetchedAt: number | undefined;
  private lastError: KeySetError | undefined;
  private timer: Timer | null = null;
  private nextAttemptAt: number | undefined;
  /** Failed attempts since the last success: the backoff's exponent. */
  private failuresInRow = 0;
  /** Key-set loads attempted (fetches or file reads), for stats and tests. */
  fetches = 0;
  /** Of those, the ones that failed (the last good keys, if any, kept serving). */
  failures = 0;

  constructor(
    readonly issuer: CompiledIssuer,
    private opts: KeyStoreOptions,
  ) {
    this.jwksUri = issuer.keys.kind === 'jwksUri' ? issuer.keys.url : null;
    // Closing the verifier ends the background refreshes too.
    opts.signal.addEventListener('abort', () => this.cancelTimer(), { once: true });
  }

  /** ok once a key set was loaded; `error` is the last load's failure, even while older keys still serve. */
  status(): KeyStatus {
    const ok = this.keys !== null;
    const e = this.lastError;
    return {
      ok,
      state: ok ? (e === undefined ? 'ready' : 'stale') : e === undefined ? 'loading' : 'failing',
      ...(e !== undefined ? { error: e.message, cause: e.kind } : {}),
      ...(this.fetchedAt !== undefined ? { fetchedAt: this.fetchedAt } : {}),
      ...(this.nextAttemptAt !== undefined ? { nextAttemptAt: this.nextAttemptAt } : {}),
    };
  }

  /** Loads the key set now (single flight). Never rejects: a failure is recorded and logged. */
  load(): Promise<void> {
    if (this.inflight) return this.inflight;
    this.lastAttemptAt = this.opts.now();
    this.inflight = this.doLoad().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  /**
   * Called for a token whose `kid` is unknown (or when no key set was ever loaded):
   * joins the load in flight, or starts one when the cooldown has passed since the
   * last attempt, else does nothing. However many tokens ask, that is at most one
   * fetch per cooldown (issue 3: rotation at the IdP must not become a fetch storm).
   */
  refresh(): Promise<void> {
    if (this.inflight) return this.inflight;
    if (this.opts.now() - this.lastAttemptAt < this.opts.cooldownMs) return Promise.resolve();
    return this.load();
  }

  /**
   * New `verifier.jwksCooldown` / `jwksTimeout` after a reload: the keys, the cooldown
   * already running and the next background refresh are kept.
   */
  retune(timing: { readonly cooldownMs: number; readonly timeoutMs: number }): void {
    this.opts = { ...this.opts, cooldownMs: timing.cooldownMs, timeoutMs: timing.timeoutMs };
  }

  /** Milliseconds until `refresh` may fetch again (0 when it may now). */
  cooldownLeft(): number {
    return Math.max(0, this.lastAttemptAt + this.opts.cooldownMs - this.opts.now());
  }

  /** The key for a token's header `alg` and `kid`. */
  select(alg: string, kid: string | undefined): Selection {
    const keys = this.keys;
    if (keys === null) return NO_KEYS;
    if (kid !== undefined) {
      let sawKid = false;
      for (const k of keys) {
        if (k.kid !== kid) continue;
        if (keyFits(k, alg)) return k;
        sawKid = true;
      }
      return sawKid ? KEY_MISMATCH : UNKNOWN_KID;
    }
    // RFC 7515 §4.1.4 makes `kid` optional. A token without one is accepted only when
    // exactly one key in the set fits its alg: trying each key in turn would multiply
    // the signature work one token can cause and blur which key vouched for it.
    let found: StoredKey | undefined;
    let count = 0;
    for (const k of keys) {
      if (keyFits(k, alg)) {
        found = k;
        count++;
      }
    }
    return count === 1 && found !== undefined ? found : UNKNOWN_KID;
  }

  private async doLoad(): Promise<void> {
    this.fetches++;
    const name = this.issuer.name;
    try {
      const read = await this.readKeySet();
      const keys = await this.usableKeys(read.doc);
      if (keys.length === 0) throw new KeySetError('no_usable_key', 'the key set has no usable signing key');
      this.keys = Object.freeze(keys);
      this.fetchedAt = this.opts.now();
      this.lastError = undefined;
      this.failuresInRow = 0;
      const lifetime = read.lifetimeMs === undefined ? REFRESH.defaultMs : Math.min(REFRESH.maxMs, Math.max(REFRESH.minMs, read.lifetimeMs));
      const next = this.schedule(lifetime);
      this.opts.log('debug', 'key set fetched', { issuer: name, ...read.from, keys: keys.length, ...(next !== undefined ? { refreshInMs: next } : {}) });
      this.opts.log('info', 'key set loaded', { issuer: name, keys: keys.length, kids: keys.map((k) => k.kid ?? null) });
      this.report(true);
    } catch (err) {
      this.failures++;
      this.failuresInRow++;
      // The last good keys keep serving; readiness and the log show the failure.
      this.lastError = err instanceof KeySetError ? err : new KeySetError('network', (err as Error)?.message ?? String(err));
      const retry = Math.min(REFRESH.retryFirstMs * 2 ** Math.min(this.failuresInRow - 1, 30), this.retryCapMs());
      const next = this.schedule(retry);
      this.opts.log(this.keys === null ? 'error' : 'warn', 'key set fetch failed', {
        issuer: name,
        error: this.lastError.message,
        cause: this.lastError.kind,
        servingPreviousKeys: this.keys !== null,
        ...(next !== undefined ? { retryInMs: next } : {}),
      });
      this.report(false);
    }
  }

  /** The longest wait between two attempts while failing: the cooldown, within 1 s – 20 s. */
  private retryCapMs(): number {
    return Math.min(REFRESH.retryMaxMs, Math.max(REFRESH.retryFirstMs, this.opts.cooldownMs));
  }

  /** Schedules the next background load in about `ms` (jitter shortens it); the delay, or undefined once closed. */
  private schedule(ms: number): number | undefined {
    this.cancelTimer();
    if (this.opts.signal.aborted) return undefined;
    const delay = Math.max(1, Math.round(ms * (1 - REFRESH.jitter * (this.opts.random ?? Math.random)())));
    this.nextAttemptAt = this.opts.now() + delay;
    this.timer = (this.opts.setTimer ?? realTimer)(() => {
      this.timer = null;
      void this.load();
    }, delay);
    return delay;
  }

  private cancelTimer(): void {
    this.timer?.cancel();
    this.timer = null;
    this.nextAttemptAt = undefined;
  }

  private report(ok: boolean): void {
    try {
      this.opts.onFetch?.(this.issuer.name, ok);
    } catch {
      // A metrics callback must never turn a key-set load into a failure.
    }
  }

  private async readKeySet(): Promise<KeySetDocument> {
    const source = this.issuer.keys;
    if (source.kind === 'jwksFile') {
      let text: string;
      try {
        text = await readFile(source.path, 'utf8');
      } catch (err) {
        throw new KeySetError('file', `cannot read ${source.path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      }
      return { doc: parseJson(text, source.path), lifetimeMs: undefined, from: { file: source.path } };
    }
    if (this.jwksUri === null) this.jwksUri = await this.discover(source.url);
    const url = this.jwksUri;
    const got = await this.getJson(url);
    return { doc: got.doc, lifetimeMs: got.lifetimeMs, from: { url, status: got.status } };
  }

  /** OIDC Discovery 1.0 §4: the document's `issuer` must equal the configured one exactly (§4.3). */
  private async discover(url: string): Promise<string> {
    const { doc } = await this.getJson(url);
    const bad = (why: string): never => {
      throw new KeySetError('discovery', `${url}: ${why}`);
    };
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) bad('not a JSON object');
    const d = doc as Record<string, unknown>;
    if (d['issuer'] !== this.issuer.issuer) {
      bad(`discovery issuer ${JSON.stringify(String(d['issuer']).slice(0, 200))} does not equal the configured issuer`);
    }
    const jwksUri = d['jwks_uri'];
    if (typeof jwksUri !== 'string') return bad('no jwks_uri');
    let parsed: URL;
    try {
      parsed = new URL(jwksUri);
    } catch {
      return bad('jwks_uri is not a URL');
    }
    // An https issuer must not hand out its keys over plain http.
    const ok = parsed.protocol === 'https:' || (parsed.protocol === 'http:' && url.startsWith('http:'));
    if (!ok) bad('jwks_uri must be https');
    return parsed.href;
  }

  private async getJson(url: string): Promise<{ doc: unknown; status: number; lifetimeMs: number | undefined }> {
    const signal = AbortSignal.any([AbortSignal.timeout(this.opts.timeoutMs), this.opts.signal]);
    let res: Response;
    try {
      // Redirects are not followed: a key set is served where it is configured.
      res = await this.opts.fetch(url, { headers: { accept: 'application/json' }, redirect: 'manual', signal });
    } catch (err) {
      throw fetchFailure(err, url, this.opts.timeoutMs);
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => {});
      throw new KeySetError('http_status', `${url}: HTTP ${res.status}`);
    }
    let text: string;
    try {
      text = await readCapped(res, url);
    } catch (err) {
      // The body can fail half-way (timeout, reset) like the request itself.
      throw err instanceof KeySetError ? err : fetchFailure(err, url, this.opts.timeoutMs);
    }
    return { doc: parseJson(text, url), status: res.status, lifetimeMs: cacheLifetimeMs(res.headers, this.opts.now()) };
  }

  private async usableKeys(doc: unknown): Promise<StoredKey[]> {
    if (doc === null || typeof doc !== 'object' || !Array.isArray((doc as { keys?: unknown }).keys)) {
      throw new KeySetError('not_jwks', 'not a JWK Set (RFC 7517 §5)');
    }
    const out: StoredKey[] = [];
    for (const raw of (doc as { keys: unknown[] }).keys) {
      const key = await this.usableKey(raw);
      if (key !== null) out.push(key);
    }
    return out;
  }

  private async usableKey(raw: unknown): Promise<StoredKey | null> {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return null;
    const k = raw as Record<string, unknown>;
    const kid = k['kid'];
    const alg = k['alg'];
    if (kid !== undefined && typeof kid !== 'string') return null;
    if (alg !== undefined && typeof alg !== 'string') return null;
    // RFC 7517 §4.2/§4.3: keys meant for encryption or other operations are not signature keys.
    if (k['use'] !== undefined && k['use'] !== 'sig') return null;
    if (k['key_ops'] !== undefined && !(Array.isArray(k['key_ops']) && k['key_ops'].includes('verify'))) return null;
    const skip = (why: string) => {
      this.opts.log('warn', 'key set entry ignored', { issuer: this.issuer.name, kid: kid ?? null, why });
      return null;
    };
    // A private key published in a key set is a leak at the IdP; never use it.
    if (k['d'] !== undefined) return skip('private key material in a public key set');
    let jwk: JWK;
    let kty: StoredKey['kty'];
    const s = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
    if (k['kty'] === 'RSA' && s(k['n']) && s(k['e'])) {
      if (Buffer.from(k['n'], 'base64url').length * 8 < MIN_RSA_BITS) return skip('RSA key shorter than 2048 bits');
      jwk = { kty: 'RSA', n: k['n'], e: k['e'] };
      kty = 'RSA';
    } else if (k['kty'] === 'EC' && s(k['crv']) && s(k['x']) && s(k['y'])) {
      jwk = { kty: 'EC', crv: k['crv'], x: k['x'], y: k['y'] };
      kty = 'EC';
    } else if (k['kty'] === 'OKP' && k['crv'] === 'Ed25519' && s(k['x'])) {
      jwk = { kty: 'OKP', crv: 'Ed25519', x: k['x'] };
      kty = 'OKP';
    } else {
      return null; // symmetric (`oct`) or unsupported keys never verify anything here
    }
    const key: StoredKey = { jwk, kid, kty, crv: jwk.crv, alg, id: await calculateJwkThumbprint(jwk, 'sha256') };
    // Import it once here, for the first allowed algorithm it fits, so a broken key is
    // dropped at load time instead of failing every token that names it.
    const fit = this.issuer.algorithms.find((a) => keyFits(key, a));
    if (fit === undefined) return null;
    try {
      await importJWK(jwk, fit);
    } catch (err) {
      return skip(`does not import: ${(err as Error).message}`);
    }
    return Object.freeze(key);
  }
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new KeySetError('not_json', `${where}: not JSON`);
  }
}

async function readCapped(res: Response, url: string): Promise<string> {
  const length = Number(res.headers.get('content-length') ?? 0);
  if (length > MAX_DOCUMENT_BYTES) {
    await res.body?.cancel().catch(() => {});
    throw new KeySetError('too_large', `${url}: document larger than ${MAX_DOCUMENT_BYTES} bytes`);
  }
  if (res.body === null) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    // Leaving the loop by a throw cancels the stream (the iterator's return()).
    if (total > MAX_DOCUMENT_BYTES) throw new KeySetError('too_large', `${url}: document larger than ${MAX_DOCUMENT_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
