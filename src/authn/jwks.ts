/**
 * Key sets, held on the main thread, once per process (never once per worker), so
 * `verifier.jwksCooldown` bounds the refetch rate of the whole gateway.
 *
 * Keys come only from the configured source (OIDC discovery, `jwksUri` or
 * `jwksFile`); nothing a token says (`jku`, `x5u`, `jwk`, `x5c`, RFC 8725 §3.10)
 * ever selects a key or causes a fetch.
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

type Log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface KeyStoreOptions {
  readonly now: () => number;
  readonly fetch: typeof globalThis.fetch;
  readonly log: Log;
  readonly cooldownMs: number;
  readonly timeoutMs: number;
  /** Aborted when the verifier closes: no fetch outlives it. */
  readonly signal: AbortSignal;
  /** Told the outcome of every key-set load attempt (for `mfa_gateway_jwks_fetches_total`). */
  readonly onFetch?: (issuer: string, ok: boolean) => void;
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
  private lastError: string | undefined;
  /** Key-set loads attempted (fetches or file reads), for stats and tests. */
  fetches = 0;
  /** Of those, the ones that failed (the last good keys, if any, kept serving). */
  failures = 0;

  constructor(
    readonly issuer: CompiledIssuer,
    private readonly opts: KeyStoreOptions,
  ) {
    this.jwksUri = issuer.keys.kind === 'jwksUri' ? issuer.keys.url : null;
  }

  /** ok once a key set was loaded; `error` is the last load's failure, even while older keys still serve. */
  status(): { ok: boolean; error?: string; fetchedAt?: number } {
    return {
      ok: this.keys !== null,
      ...(this.lastError !== undefined ? { error: this.lastError } : {}),
      ...(this.fetchedAt !== undefined ? { fetchedAt: this.fetchedAt } : {}),
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
      const doc = await this.readKeySet();
      const keys = await this.usableKeys(doc);
      if (keys.length === 0) throw new Error('the key set has no usable signing key');
      this.keys = Object.freeze(keys);
      this.fetchedAt = this.opts.now();
      this.lastError = undefined;
      this.opts.log('info', 'key set loaded', { issuer: name, keys: keys.length, kids: keys.map((k) => k.kid ?? null) });
      this.report(true);
    } catch (err) {
      this.failures++;
      // The last good keys keep serving; readiness and the log show the failure.
      this.lastError = (err as Error).message;
      this.opts.log(this.keys === null ? 'error' : 'warn', 'key set fetch failed', {
        issuer: name,
        error: this.lastError,
        servingPreviousKeys: this.keys !== null,
      });
      this.report(false);
    }
  }

  private report(ok: boolean): void {
    try {
      this.opts.onFetch?.(this.issuer.name, ok);
    } catch {
      // A metrics callback must never turn a key-set load into a failure.
    }
  }

  private async readKeySet(): Promise<unknown> {
    const source = this.issuer.keys;
    if (source.kind === 'jwksFile') {
      let text: string;
      try {
        text = await readFile(source.path, 'utf8');
      } catch (err) {
        throw new Error(`cannot read ${source.path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      }
      return parseJson(text, source.path);
    }
    if (this.jwksUri === null) this.jwksUri = await this.discover(source.url);
    return this.getJson(this.jwksUri);
  }

  /** OIDC Discovery 1.0 §4: the document's `issuer` must equal the configured one exactly (§4.3). */
  private async discover(url: string): Promise<string> {
    const doc = await this.getJson(url);
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new Error(`${url}: not a JSON object`);
    const d = doc as Record<string, unknown>;
    if (d['issuer'] !== this.issuer.issuer) {
      throw new Error(`${url}: discovery issuer ${JSON.stringify(String(d['issuer']).slice(0, 200))} does not equal the configured issuer`);
    }
    const jwksUri = d['jwks_uri'];
    if (typeof jwksUri !== 'string') throw new Error(`${url}: no jwks_uri`);
    let parsed: URL;
    try {
      parsed = new URL(jwksUri);
    } catch {
      throw new Error(`${url}: jwks_uri is not a URL`);
    }
    // An https issuer must not hand out its keys over plain http.
    const ok = parsed.protocol === 'https:' || (parsed.protocol === 'http:' && url.startsWith('http:'));
    if (!ok) throw new Error(`${url}: jwks_uri must be https`);
    return parsed.href;
  }

  private async getJson(url: string): Promise<unknown> {
    const signal = AbortSignal.any([AbortSignal.timeout(this.opts.timeoutMs), this.opts.signal]);
    let res: Response;
    try {
      // Redirects are not followed: a key set is served where it is configured.
      res = await this.opts.fetch(url, { headers: { accept: 'application/json' }, redirect: 'manual', signal });
    } catch (err) {
      const e = err as Error;
      const why = e.name === 'TimeoutError' ? `timed out after ${this.opts.timeoutMs} ms` : e.name === 'AbortError' ? 'aborted' : e.message;
      throw new Error(`${url}: ${why}`);
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => {});
      throw new Error(`${url}: HTTP ${res.status}`);
    }
    return parseJson(await readCapped(res, url), url);
  }

  private async usableKeys(doc: unknown): Promise<StoredKey[]> {
    if (doc === null || typeof doc !== 'object' || !Array.isArray((doc as { keys?: unknown }).keys)) {
      throw new Error('not a JWK Set (RFC 7517 §5)');
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
    throw new Error(`${where}: not JSON`);
  }
}

async function readCapped(res: Response, url: string): Promise<string> {
  const length = Number(res.headers.get('content-length') ?? 0);
  if (length > MAX_DOCUMENT_BYTES) {
    await res.body?.cancel().catch(() => {});
    throw new Error(`${url}: document larger than ${MAX_DOCUMENT_BYTES} bytes`);
  }
  if (res.body === null) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    // Leaving the loop by a throw cancels the stream (the iterator's return()).
    if (total > MAX_DOCUMENT_BYTES) throw new Error(`${url}: document larger than ${MAX_DOCUMENT_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
