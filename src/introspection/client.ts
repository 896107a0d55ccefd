/**
 * OAuth 2.0 Token Introspection client (RFC 7662), for issuers whose access tokens are
 * opaque (or must be checked for revocation at the IdP on every use).
 *
 * One client per issuer. It asks the issuer's introspection endpoint (given, or the
 * discovery document's `introspection_endpoint`, RFC 8414 §2) about a token with the
 * gateway's own client credentials (`client_secret_basic`, RFC 7662 §2.1, RFC 6749
 * §2.3.1), and turns an active answer into the same `Principal` a JWT's payload gives
 * (`principalFrom`), so MFA and roles are judged alike.
 *
 * Answers, and what the caller sends for them:
 * - `ok`: the principal (and the answer's claims);
 * - `inactive`: the IdP says the token is not active (revoked, expired, unknown), or it
 *   is no access token for this gateway → 401 `invalid_token`;
 * - `invalid_response`: an answer that cannot be trusted (not JSON, no `sub`/`exp`, another
 *   `iss`) → 503 `temporarily_unavailable`, never an allow;
 * - `unavailable`: no answer (connection refused, timeout, 5xx, the gateway's own
 *   credentials refused, too many calls waiting) → 503 `temporarily_unavailable`.
 *
 * Active answers are cached until min(`exp`, now + `cacheTtl`), inactive ones for
 * `negativeTtl`; concurrent calls for one token share one request (single flight); at
 * most `maxConcurrent` requests run at once. Calls beyond that wait in a queue of at most
 * `maxQueue`, within their `timeout`: a burst of new tokens (a restart empties the cache)
 * is smoothed instead of refused, while the IdP never sees more than `maxConcurrent`
 * requests from this process, and a long outage turns into quick 503s instead of a
 * growing pile of waiting requests.
 *
 * Neither the token nor the client secret ever appears in a log field or a result.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { LRUCache } from 'lru-cache';
import { principalFrom, sealPrincipal, type Principal, type PrincipalSource } from '../authz/claims.js';
import { jsonDepthWithin, MAX_JSON_DEPTH } from '../authn/jws.js';

export type IntrospectionFailureReason = 'inactive' | 'invalid_response' | 'unavailable';

export interface IntrospectionSuccess {
  readonly ok: true;
  readonly principal: Principal;
  /** The introspection answer's members (RFC 7662 §2.2), frozen. */
  readonly claims: Readonly<Record<string, unknown>>;
}

export interface IntrospectionFailure {
  readonly ok: false;
  readonly reason: IntrospectionFailureReason;
  /** A short word for the log (`timeout`, `http_500`, `client_auth_failed`, `wrong_issuer`, …); never token or secret text. */
  readonly detail: string;
}

export type IntrospectionResult = IntrospectionSuccess | IntrospectionFailure;

type Log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface IntrospectionClientOptions {
  /** The issuer: its config name and claim paths (for the principal) and its exact `iss`. */
  readonly issuer: PrincipalSource & { readonly issuer: string };
  /** The introspection endpoint; when absent it is read from discovery. */
  readonly endpoint?: string;
  /** Where discovery is read when `endpoint` is absent (default `<issuer>/.well-known/openid-configuration`). */
  readonly discoveryUrl?: string;
  readonly clientId: string;
  /** The secret itself (see {@link readClientSecret} for reading it from a file or the environment). */
  readonly clientSecret: string;
  /** Longest wait for an answer, ms, a wait in the queue included (at least 100). */
  readonly timeoutMs: number;
  /** Longest time an active answer is reused, ms. */
  readonly cacheTtlMs: number;
  /** How long an inactive answer is reused, ms (default 10 s). */
  readonly negativeTtlMs?: number;
  /** Requests to the endpoint at once, at most. */
  readonly maxConcurrent: number;
  /** Calls waiting for a free request slot, at most (default 4 × maxConcurrent); beyond: `unavailable`. */
  readonly maxQueue?: number;
  /** Tokens whose answers are cached, at most (default 10,000). */
  readonly cacheMax?: number;
  /** When set, the answer's `aud` must name one of these (RFC 7662 §2.2), else `inactive`. */
  readonly audience?: readonly string[];
  /**
   * The answer must say `token_type` Bearer or DPoP (default true). Introspection answers
   * for refresh tokens too, and some IdPs (oidc-provider among them) mark an access token
   * only by giving it a `token_type`: without this a refresh token would pass as one.
   */
  readonly requireTokenType?: boolean;
  /** Skew allowed on `exp` and `nbf`, seconds (default 0). */
  readonly clockToleranceSec?: number;
  readonly now: () => number;
  readonly fetch: typeof globalThis.fetch;
  readonly log?: Log;
}

export interface IntrospectionStats {
  /** HTTP requests made to the endpoint (discovery not included). */
  readonly requests: number;
  readonly cacheHits: number;
  /** Calls that joined a request already under way for the same token. */
  readonly coalesced: number;
  readonly running: number;
  readonly queued: number;
  readonly cached: number;
}

/** Largest introspection answer read (RFC 7662 answers are a few hundred bytes). */
const MAX_ANSWER_BYTES = 64 * 1024;
const ACCESS_TOKEN_TYPES = new Set(['bearer', 'dpop']);
/** Least time left (ms) for which a request to the endpoint is still started. */
const MIN_REQUEST_MS = 50;

interface Cached {
  readonly result: IntrospectionResult;
  readonly untilMs: number;
}

const failure = (reason: IntrospectionFailureReason, detail: string): IntrospectionFailure => Object.freeze({ ok: false, reason, detail });

export class IntrospectionClient {
  private readonly o: IntrospectionClientOptions;
  private readonly authorization: string;
  private readonly cache: LRUCache<string, Cached>;
  /** Requests under way, by token (single flight). */
  private readonly calls = new Map<string, Promise<IntrospectionResult>>();
  private readonly waiting: (() => void)[] = [];
  private readonly maxQueue: number;
  private readonly closed = new AbortController();
  private endpoint: Promise<string> | null = null;
  private running = 0;
  private counters = { requests: 0, cacheHits: 0, coalesced: 0 };

  constructor(options: IntrospectionClientOptions) {
    this.o = options;
    if (!(options.maxConcurrent >= 1)) throw new RangeError('maxConcurrent must be at least 1');
    if (!(options.timeoutMs >= 2 * MIN_REQUEST_MS)) throw new RangeError(`timeoutMs must be at least ${2 * MIN_REQUEST_MS}`);
    this.maxQueue = options.maxQueue ?? options.maxConcurrent * 4;
    this.cache = new LRUCache({ max: options.cacheMax ?? 10_000 });
    // RFC 6749 §2.3.1: each of client_id and secret form-urlencoded (Appendix B), then Basic (RFC 7617).
    this.authorization = `Basic ${Buffer.from(`${formEncode(options.clientId)}:${formEncode(options.clientSecret)}`).toString('base64')}`;
    if (options.endpoint !== undefined) this.endpoint = Promise.resolve(options.endpoint);
  }

  /**
   * The cached answer about `token` while it is fresh, else undefined: synchronous, for a
   * caller that wants no promise on a cache hit (the gateway's hot path).
   */
  lookup(token: string): IntrospectionResult | undefined {
    const cached = this.cache.get(token);
    if (cached === undefined) return undefined;
    if (cached.untilMs > this.o.now()) {
      this.counters.cacheHits++;
      return cached.result;
    }
    this.cache.delete(token);
    return undefined;
  }

  /** True while a request about this very token runs: an introspect() now joins it. */
  inflight(token: string): boolean {
    return this.calls.has(token);
  }

  /** What the issuer says about `token`. Never rejects. */
  introspect(token: string): Promise<IntrospectionResult> {
    const cached = this.lookup(token);
    if (cached !== undefined) return Promise.resolve(cached);
    const running = this.calls.get(token);
    if (running !== undefined) {
      this.counters.coalesced++;
      return running;
    }
    const call = this.call(token).finally(() => this.calls.delete(token));
    this.calls.set(token, call);
    return call;
  }

  stats(): IntrospectionStats {
    return { ...this.counters, running: this.running, queued: this.waiting.length, cached: this.cache.size };
  }

  /** Aborts the requests under way (they answer `unavailable`). */
  close(): void {
    this.closed.abort();
  }

  private async call(token: string): Promise<IntrospectionResult> {
    const started = performance.now();
    const slot = await this.acquire();
    // No slot: the queue was full (overloaded), the wait for one took the whole timeout, or closing.
    if (slot !== true) return this.fail(failure('unavailable', slot));
    try {
      const left = Math.ceil(this.o.timeoutMs - (performance.now() - started));
      // A request begun with almost no time left would only cost the IdP an answer nobody reads.
      if (left < MIN_REQUEST_MS) return this.fail(failure('unavailable', 'timeout'));
      const signal = AbortSignal.any([AbortSignal.timeout(left), this.closed.signal]);
      let result: IntrospectionResult;
      try {
        result = await this.ask(token, signal);
      } catch {
        // Nothing in ask() is meant to throw; should something, the answer is still no allow.
        result = failure('unavailable', 'internal');
      }
      if (result.ok) {
        const expMs = (result.principal.exp + (this.o.clockToleranceSec ?? 0)) * 1000;
        this.cache.set(token, { result, untilMs: Math.min(expMs, this.o.now() + this.o.cacheTtlMs) });
      } else if (result.reason === 'inactive') {
        this.cache.set(token, { result, untilMs: this.o.now() + (this.o.negativeTtlMs ?? 10_000) });
      } else {
        this.fail(result);
      }
      return result;
    } finally {
      this.release();
    }
  }

  /** One request to the endpoint, and the reading of its answer. */
  private async ask(token: string, signal: AbortSignal): Promise<IntrospectionResult> {
    let res: Response;
    try {
      const url = await this.endpointUrl(signal);
      this.counters.requests++;
      res = await this.o.fetch(url, {
        method: 'POST',
        headers: { authorization: this.authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        // RFC 7662 §2.1: the hint saves the IdP a look-up among its refresh tokens.
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
        redirect: 'manual',
        signal,
      });
    } catch (err) {
      return failure('unavailable', (err as Error)?.message === 'discovery_failed' ? 'discovery_failed' : signalDetail(signal, err));
    }
    let body: string | null;
    try {
      body = await readCapped(res, MAX_ANSWER_BYTES);
    } catch (err) {
      return failure('unavailable', signalDetail(signal, err));
    }
    if (body === null) return failure('invalid_response', 'too_large');
    return readIntrospectionAnswer(res.status, res.headers.get('content-type'), body, {
      issuer: this.o.issuer,
      nowMs: this.o.now(),
      clockToleranceSec: this.o.clockToleranceSec ?? 0,
      requireTokenType: this.o.requireTokenType ?? true,
      ...(this.o.audience !== undefined ? { audience: this.o.audience } : {}),
    });
  }

  /** The endpoint: configured, or from discovery (single flight; a failure is retried by the next call). */
  private endpointUrl(signal: AbortSignal): Promise<string> {
    this.endpoint ??= this.discover(signal).catch((err: unknown) => {
      this.endpoint = null;
      throw err;
    });
    return this.endpoint;
  }

  private async discover(signal: AbortSignal): Promise<string> {
    const iss = this.o.issuer.issuer;
    const url = this.o.discoveryUrl ?? `${iss.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    let doc: unknown;
    try {
      const res = await this.o.fetch(url, { headers: { accept: 'application/json' }, redirect: 'manual', signal });
      const text = await readCapped(res, MAX_ANSWER_BYTES * 4);
      doc = res.status === 200 && text !== null ? JSON.parse(text) : null;
    } catch (err) {
      this.log('warn', 'introspection discovery failed', { url, error: signalDetail(signal, err) });
      throw new Error('discovery_failed');
    }
    const d = (doc ?? {}) as Record<string, unknown>;
    const endpoint = d['introspection_endpoint'];
    // OIDC Discovery 1.0 §4.3 / RFC 8414 §3.3: the document must be the issuer's own.
    let ok = d['issuer'] === iss && typeof endpoint === 'string';
    if (ok) {
      try {
        const u = new URL(endpoint as string);
        // An https issuer must not send tokens to a plain-http endpoint.
        ok = u.protocol === 'https:' || (u.protocol === 'http:' && iss.startsWith('http:'));
      } catch {
        ok = false;
      }
    }
    if (!ok) {
      this.log('warn', 'introspection discovery failed', { url, error: 'no usable introspection_endpoint for this issuer' });
      throw new Error('discovery_failed');
    }
    return endpoint as string;
  }

  private acquire(): Promise<true | 'overloaded' | 'timeout' | 'closed'> {
    if (this.closed.signal.aborted) return Promise.resolve('closed');
    if (this.running < this.o.maxConcurrent) {
      this.running++;
      return Promise.resolve(true);
    }
    if (this.waiting.length >= this.maxQueue) return Promise.resolve('overloaded');
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        resolve(true); // the slot is handed over by release(): running stays counted
      };
      const timer = setTimeout(() => {
        const at = this.waiting.indexOf(wake);
        if (at >= 0) this.waiting.splice(at, 1);
        resolve('timeout');
      }, this.o.timeoutMs);
      this.waiting.push(wake);
    });
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next();
    else this.running--;
  }

  private fail(result: IntrospectionFailure): IntrospectionFailure {
    if (result.reason !== 'inactive') this.log('warn', 'token introspection failed', { issuer: this.o.issuer.name, reason: result.reason, detail: result.detail });
    return result;
  }

  private log(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown>): void {
    try {
      this.o.log?.(level, msg, fields);
    } catch {
      // A logger must never turn an answer into a failure.
    }
  }
}

export interface AnswerContext {
  readonly issuer: PrincipalSource & { readonly issuer: string };
  readonly nowMs: number;
  readonly clockToleranceSec: number;
  readonly requireTokenType: boolean;
  readonly audience?: readonly string[];
}

/**
 * Reads one introspection answer (RFC 7662 §2.2, §2.3): HTTP status, media type and
 * body in, a result out. Pure; never throws, whatever the body holds.
 */
export function readIntrospectionAnswer(status: number, contentType: string | null, body: string, ctx: AnswerContext): IntrospectionResult {
  // RFC 7662 §2.3: 401 when the gateway's own credentials are refused (invalid_client).
  if (status === 401 || status === 403) return failure('unavailable', 'client_auth_failed');
  if (status === 429 || status >= 500) return failure('unavailable', `http_${status}`);
  if (status !== 200) return failure('invalid_response', `http_${status}`);
  if (contentType === null || !/^application\/json\s*(;|$)/i.test(contentType)) return failure('invalid_response', 'not_json');
  if (!jsonDepthWithin(body, MAX_JSON_DEPTH)) return failure('invalid_response', 'not_json');
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return failure('invalid_response', 'not_json');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return failure('invalid_response', 'not_json');
  const c = parsed as Record<string, unknown>;
  if (c['active'] === false) return failure('inactive', 'inactive');
  if (c['active'] !== true) return failure('invalid_response', 'active_missing');
  if (c['iss'] !== undefined && c['iss'] !== ctx.issuer.issuer) return failure('invalid_response', 'wrong_issuer');
  const sub = c['sub'];
  if (typeof sub !== 'string' || sub.length === 0) return failure('invalid_response', 'sub_missing');
  const exp = c['exp'];
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return failure('invalid_response', 'exp_missing');
  const nowSec = ctx.nowMs / 1000;
  // Written so that a NaN clock or tolerance refuses instead of accepting.
  if (!(exp > nowSec - ctx.clockToleranceSec)) return failure('inactive', 'expired');
  const nbf = c['nbf'];
  if (typeof nbf === 'number' && !(nbf <= nowSec + ctx.clockToleranceSec)) return failure('inactive', 'not_yet_valid');
  const type = c['token_type'];
  if (type !== undefined || ctx.requireTokenType) {
    if (typeof type !== 'string' || !ACCESS_TOKEN_TYPES.has(type.toLowerCase())) return failure('inactive', 'not_an_access_token');
  }
  if (ctx.audience !== undefined) {
    const aud = c['aud'];
    const auds = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
    if (!auds.some((a) => typeof a === 'string' && ctx.audience!.includes(a))) return failure('inactive', 'wrong_audience');
  }
  const claims = Object.freeze({ ...c, iss: ctx.issuer.issuer });
  const principal = principalFrom(claims, ctx.issuer);
  // A token bound by a method the gateway cannot check is the token's problem, not the IdP's.
  if (principal === 'binding_unsupported') return failure('inactive', principal);
  if (typeof principal === 'string') return failure('invalid_response', principal);
  // Kept in the introspection cache: sealed, so its audit and header text is made once.
  return Object.freeze({ ok: true, principal: sealPrincipal(principal), claims });
}

export interface SecretSource {
  /** A file holding the secret (one line; a trailing line break is not part of it). */
  readonly file?: string;
  /** An environment variable holding it. */
  readonly env?: string;
}

/**
 * Reads a client secret from a file or an environment variable (exactly one). The error
 * names where it looked, never what it found.
 */
export function readClientSecret(source: SecretSource, env: NodeJS.ProcessEnv = process.env): string {
  if ((source.file === undefined) === (source.env === undefined)) throw new Error('a client secret needs exactly one of file or env');
  let secret: string | undefined;
  if (source.file !== undefined) {
    try {
      secret = readFileSync(source.file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new Error(`cannot read the client secret file ${source.file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  } else {
    secret = env[source.env!];
    if (secret === undefined) throw new Error(`the environment variable ${source.env} (client secret) is not set`);
  }
  // RFC 6749 Appendix A.2: client_secret = *VSCHAR.
  if (secret.length === 0 || !/^[\x20-\x7e]+$/.test(secret)) {
    throw new Error(`the client secret in ${source.file ?? `$${source.env}`} is empty or holds characters other than printable ASCII`);
  }
  return secret;
}

/** application/x-www-form-urlencoded (WHATWG URL §5.2) of one value. */
function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}

function signalDetail(signal: AbortSignal, err: unknown): string {
  if (signal.aborted) return (signal.reason as Error)?.name === 'TimeoutError' ? 'timeout' : 'closed';
  const cause = (err as { cause?: { code?: unknown } })?.cause?.code;
  return typeof cause === 'string' ? cause.toLowerCase() : 'fetch_failed';
}

/** The body as text, or null when it is larger than `max` bytes (the rest is not read). */
async function readCapped(res: Response, max: number): Promise<string | null> {
  const declared = Number(res.headers.get('content-length') ?? 0);
  const reader = res.body?.getReader();
  if (reader === undefined) return '';
  if (declared > max) {
    await reader.cancel().catch(() => {});
    return null;
  }
  const parts: Uint8Array[] = [];
  let size = 0;
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    size += r.value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => {});
      return null;
    }
    parts.push(r.value);
  }
  return Buffer.concat(parts).toString('utf8');
}
