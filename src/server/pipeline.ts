import { randomUUID } from 'node:crypto';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { CompiledConfig, CompiledIssuer, CompiledRoute } from '../config/types.js';
import type { TokenFailure, Verifier, VerifyResult } from '../authn/types.js';
import type { Principal } from '../authz/claims.js';
import { FAILURE_DESCRIPTIONS } from '../authn/failures.js';
import { bearerCandidate, isB64Token, MALFORMED_TOKEN } from '../authn/extract.js';
import { decide } from '../authz/decide.js';
import { bearerChallenge } from '../authz/challenge.js';
import { matchView, normalizePath, type NormalizedPath } from '../routes/normalize.js';
import { buildRouteTable, upstreamPath, type RouteTable } from '../routes/table.js';
import { HeaderRewriter } from '../proxy/headers.js';
import { Exchange, RequestBody, type BodyLimits, type ExchangeHooks } from '../proxy/exchange.js';
import { FAILPOINTS_ARMED, failpoint, failpointPath } from '../failpoints.js';
import type { UpstreamPools } from '../proxy/pools.js';
import { abText } from './uws.js';
import { buildBlockList, clientAddress, isTrusted } from '../observe/clientip.js';
import type { RateLimits } from '../observe/ratelimit.js';
import type { Metrics } from '../observe/metrics.js';
import type { BlockList } from 'node:net';

/** DESIGN.md "Framing": a header block over 16 KiB is answered 431. */
const MAX_HEADER_BYTES = 16 * 1024;
/** DESIGN.md "Headers": a client X-Request-Id is kept only when it looks like one. */
const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;
const METHODS: Record<string, string> = {
  get: 'GET', head: 'HEAD', post: 'POST', put: 'PUT', patch: 'PATCH', delete: 'DELETE', options: 'OPTIONS',
};

/** Everything the pipeline needs from a request, copied synchronously out of uWS's `req`. */
export interface RequestSnapshot {
  readonly method: string;
  readonly rawPath: string;
  readonly query: string | undefined;
  /** Flat [name, value, …] with lower-case names, in arrival order. */
  readonly headers: string[];
  authorization: string | undefined;
  authCount: number;
  contentLength: string | undefined;
  /** Two Content-Length headers that differ, or one that is not a number. */
  badLength: boolean;
  chunked: boolean;
  headerBytes: number;
  host: string | undefined;
  /** Host field lines seen: exactly one is valid (RFC 9112 §3.2). */
  hostCount: number;
  xff: string | undefined;
  /** The client's Forwarded field lines, joined with `, ` (RFC 7239). */
  forwarded: string | undefined;
  requestId: string | undefined;
  connection: string | undefined;
  readonly remote: string;
}

function snapshot(res: HttpResponse, req: HttpRequest): RequestSnapshot {
  const m = req.getMethod();
  const snap: RequestSnapshot = {
    method: METHODS[m] ?? m.toUpperCase(),
    rawPath: req.getUrl(),
    query: req.getQuery(),
    headers: [],
    authorization: undefined,
    authCount: 0,
    contentLength: undefined,
    badLength: false,
    chunked: false,
    headerBytes: 0,
    host: undefined,
    hostCount: 0,
    xff: undefined,
    forwarded: undefined,
    requestId: undefined,
    connection: undefined,
    remote: remoteAddress(res),
  };
  req.forEach((name, value) => {
    snap.headers.push(name, value);
    snap.headerBytes += name.length + value.length + 4;
    switch (name) {
      case 'authorization':
        if (snap.authCount++ === 0) snap.authorization = value;
        break;
      case 'content-length':
        // RFC 9112 §6.3: differing Content-Length values are unrecoverable framing errors.
        if (!/^\d{1,15}$/.test(value) || (snap.contentLength !== undefined && snap.contentLength !== value)) snap.badLength = true;
        snap.contentLength = value;
        break;
      case 'transfer-encoding':
        snap.chunked = true;
        break;
      case 'host':
        snap.host = value;
        snap.hostCount++;
        break;
      case 'forwarded':
        snap.forwarded = snap.forwarded === undefined ? value : `${snap.forwarded}, ${value}`;
        break;
      case 'x-forwarded-for':
        snap.xff = snap.xff === undefined ? value : `${snap.xff}, ${value}`;
        break;
      case 'x-request-id':
        snap.requestId = value;
        break;
      case 'connection':
        snap.connection = snap.connection === undefined ? value : `${snap.connection}, ${value}`;
        break;
    }
  });
  return snap;
}

function remoteAddress(res: HttpResponse): string {
  const text = abText(res.getRemoteAddressAsText());
  // uWS reports IPv4 peers of a dual-stack socket as IPv4-mapped IPv6.
  return text.startsWith('::ffff:') && text.includes('.') ? text.slice(7) : text;
}

export interface PipelineOptions {
  config: CompiledConfig;
  verifier: Verifier | null;
  pools: UpstreamPools;
  rateLimits: RateLimits;
  metrics: Metrics;
  /** The exchange's reports: finished (audit, metrics) and internal errors (log once, count). */
  hooks: ExchangeHooks;
  /** Logs a token-spraying block once per block. */
  onSprayingBlock?: (client: string) => void;
}

/**
 * The request pipeline (DESIGN.md): path → route → method → credentials → token →
 * MFA / roles → upstream. A request whose token is already in the cache goes from
 * the uWS handler to `pool.dispatch` synchronously: no promise, no worker round trip.
 */
export class Pipeline {
  readonly routes: RouteTable;
  private readonly config: CompiledConfig;
  private readonly verifier: Verifier | null;
  private readonly pools: UpstreamPools;
  private readonly rewriter: HeaderRewriter;
  private readonly issuers: ReadonlyMap<string, CompiledIssuer>;
  private readonly trusted: BlockList | null;
  private readonly rateLimits: RateLimits;
  private readonly metrics: Metrics;
  private readonly onSprayingBlock: (client: string) => void;
  private readonly proto: 'http' | 'https';
  private readonly realmChallenge: string;
  /** RFC 6750 §3.1 `invalid_token` challenges, one per failure reason, built once: a replayed bad token costs no formatting. */
  private readonly invalidTokenChallenges: ReadonlyMap<string, string>;
  private readonly hooks: ExchangeHooks;
  private readonly bodyLimits: BodyLimits;
  /** Set on SIGTERM: new requests get 503 and a closed connection. */
  draining = false;

  constructor(opts: PipelineOptions) {
    this.config = opts.config;
    this.verifier = opts.verifier;
    this.pools = opts.pools;
    this.hooks = opts.hooks;
    this.bodyLimits = Object.freeze({
      maxBytes: opts.config.server.maxBodyBytes,
      bufferBytes: opts.config.server.requestBuffering,
      idleMs: opts.config.server.requestBodyIdleMs,
    });
    this.routes = buildRouteTable(opts.config.routes);
    this.rewriter = new HeaderRewriter(opts.config.identityHeaders, opts.config.headers);
    this.issuers = new Map(opts.config.issuers.map((i) => [i.name, i]));
    this.trusted = opts.config.server.trustedProxies.length > 0 ? buildBlockList(opts.config.server.trustedProxies) : null;
    this.rateLimits = opts.rateLimits;
    this.metrics = opts.metrics;
    this.onSprayingBlock = opts.onSprayingBlock ?? (() => {});
    this.proto = opts.config.listen.tls ? 'https' : 'http';
    // RFC 6750 §3.1: a request with no credentials gets a challenge without an error code.
    this.realmChallenge = bearerChallenge({ realm: opts.config.server.realm });
    this.invalidTokenChallenges = new Map(
      Object.entries(FAILURE_DESCRIPTIONS).map(([reason, description]) => [
        reason,
        bearerChallenge({ realm: opts.config.server.realm, error: 'invalid_token', description }),
      ]),
    );
  }

  /**
   * The uWS handler for every public request. Everything it does runs inside the
   * request's boundary: an exception answers this request 500 and goes no further
   * (Exchange.guard).
   */
  readonly handle = (res: HttpResponse, req: HttpRequest): void => {
    let ex: Exchange | null = null;
    try {
      const snap = snapshot(res, req);
      const rid = snap.requestId !== undefined && REQUEST_ID.test(snap.requestId) ? snap.requestId : randomUUID();
      ex = new Exchange(res, snap.method, rid, this.hooks);
      this.run(ex, snap);
    } catch (err) {
      if (ex !== null) ex.fail(err);
      else {
        // Failed before the exchange existed (copying the request): answer from here.
        this.hooks.internalError(null, err);
        res.writeStatus('500 Internal Server Error').writeHeader('content-type', 'application/json').end('{"error":"internal_error"}', true);
      }
    }
  };

  private run(ex: Exchange, snap: RequestSnapshot): void {
    ex.client = clientAddress(snap.remote, snap.xff, this.trusted);

    if (this.draining) return ex.answer('shutting_down', { close: true, retryAfter: 1 });
    if (snap.headerBytes > MAX_HEADER_BYTES) return ex.answer('headers_too_large', { close: true });
    if (snap.badLength || (snap.chunked && snap.contentLength !== undefined)) {
      return ex.answer('bad_request', { close: true, description: 'Ambiguous message framing (RFC 9112 §6.3).' });
    }
    // RFC 9112 §3.2: a request with more than one Host is answered 400. (One without Host
    // never gets here: uWebSockets.js drops it; README, known limitations.)
    if (snap.hostCount > 1) return ex.answer('bad_request', { close: true, description: 'More than one Host header (RFC 9112 §3.2).' });
    // Attach onData before any async work (uWS rule): the body streams from here on.
    const hasBody = snap.chunked || (snap.contentLength !== undefined && snap.contentLength !== '0');
    if (hasBody) {
      const max = this.bodyLimits.maxBytes;
      if (max > 0 && snap.contentLength !== undefined && Number(snap.contentLength) > max) {
        return ex.answer('payload_too_large', { close: true });
      }
      ex.body = new RequestBody(ex, this.bodyLimits);
    }

    // RFC 9112 §3.2: a fragment is never part of a request target.
    const path = normalizePath(snap.rawPath, this.routes.pathParameters);
    if (path === null || (snap.query !== undefined && snap.query.includes('#'))) return ex.answer('bad_path');
    // Routes, policy and the audit line see the path without `;` parameters (they may carry
    // a session id); `path` also holds what goes upstream, from the same normalization.
    const matched = matchView(path);
    if (FAILPOINTS_ARMED) failpointPath(matched);
    const route = this.routes.match(matched);
    // A path with parameters (an object) may only use a route that allows them.
    if (typeof path !== 'string' && route !== undefined && !route.allowPathParameters) return ex.answer('bad_path');
    ex.path = matched;
    if (route === undefined) return ex.answer('not_found');
    ex.route = route.name;
    failpoint('handler');
    ex.upstream = route.upstream;
    if (route.methods !== null && !route.methods.has(snap.method)) return ex.answer('method_not_allowed', { allow: route.allow });

    const rl = this.rateLimits;
    const wait = rl.checkAddress(route.name, ex.client);
    if (wait > 0) {
      this.metrics.rateLimited('address');
      return ex.answer('rate_limited', { retryAfter: wait });
    }
    const policy = route.policy;
    if (policy.auth === 'none') return this.forward(ex, snap, route, path, null);

    let cred = bearerCandidate(snap.authorization, snap.authCount, this.config.verifier.maxTokenBytes);
    // A cache hit is a token that passed the b64token check on its way in; only a miss is scanned.
    const cached = cred.kind === 'token' ? this.verifier!.lookup(cred.token) : undefined;
    if (cached !== undefined && cached.ok) {
      // A token the cache holds as valid passes even from an address blocked for spraying:
      // the guard stops verification work, and one sprayer behind a shared NAT must not
      // lock out everyone there.
      ex.token = (cred as { token: string }).token;
      ex.cache = 'hit';
      this.metrics.cache('hit');
      return this.authorize(ex, snap, route, path, cached);
    }
    if (cached === undefined && cred.kind === 'token' && !isB64Token(cred.token)) cred = MALFORMED_TOKEN;
    if (cred.kind === 'none') return ex.answer('credentials_missing', { challenge: this.realmChallenge });
    // Everything from here costs verification work or is an invalid token: a blocked address
    // gets 429 without any.
    const blocked = this.rateLimits.blocked(ex.client);
    if (blocked > 0) return this.spraying(ex, blocked);
    switch (cred.kind) {
      case 'invalid_request':
        return ex.answer('invalid_request', {
          description: cred.description,
          challenge: bearerChallenge({ realm: this.config.server.realm, error: 'invalid_request', description: cred.description }),
        });
      case 'too_large':
        return this.tokenFailed(ex, 'too_large', true);
    }
    const token = cred.token;
    ex.token = token;
    if (cached !== undefined) {
      ex.cache = 'negative';
      this.metrics.cache('negative');
      return this.authorize(ex, snap, route, path, cached);
    }
    ex.cache = 'miss';
    this.metrics.cache('miss');
    // A verification joining one already running for this very token costs nothing more;
    // any other is counted before it starts, so a concurrent burst cannot outrun the guard.
    const admitted = !this.verifier!.inflight(token);
    if (admitted) {
      const wait = this.rateLimits.admitVerification(ex.client);
      if (wait > 0) return this.spraying(ex, wait);
    }
    const t0 = performance.now();
    this.verifier!.verify(token).then(
      (result) =>
        ex.guard(() => {
          ex.verifyMs = performance.now() - t0;
          this.metrics.verification(ex.verifyMs / 1000, result.ok ? 'valid' : result.code === 'invalid_token' ? 'invalid' : 'error');
          // `unknown_kid` cost no signature work (and a key rotation must not become a
          // lockout); overload and unavailability are the gateway's, not the client's.
          const invalid = !result.ok && result.code === 'invalid_token' && result.reason !== 'unknown_kid';
          if (admitted && this.rateLimits.settleVerification(ex.client, invalid)) this.sprayingBlocked(ex.client);
          failpoint('after-verify', ex.path ?? '');
          this.authorize(ex, snap, route, path, result, true);
        }),
      (err: unknown) => {
        if (admitted) this.rateLimits.settleVerification(ex.client, false);
        ex.fail(err);
      },
    );
  }

  private spraying(ex: Exchange, retryAfter: number): void {
    this.metrics.rateLimited('spraying');
    ex.reason = 'token_spraying';
    ex.answer('rate_limited', { retryAfter });
  }

  private sprayingBlocked(client: string): void {
    this.metrics.sprayingBlocked();
    this.onSprayingBlock(client);
  }

  /** Answers 401 invalid_token; `count`: this failure has not been counted toward spraying yet. */
  private tokenFailed(ex: Exchange, reason: TokenFailure['reason'], count: boolean): void {
    ex.reason = reason;
    if (count && reason !== 'unknown_kid' && this.rateLimits.invalidToken(ex.client)) this.sprayingBlocked(ex.client);
    ex.answer('invalid_token', { description: FAILURE_DESCRIPTIONS[reason], challenge: this.invalidTokenChallenges.get(reason) });
  }

  /** `settled`: the verification's outcome was already counted toward spraying. */
  private authorize(ex: Exchange, snap: RequestSnapshot, route: CompiledRoute, path: NormalizedPath, result: VerifyResult, settled = false): void {
    if (ex.done) return;
    if (!result.ok) {
      if (result.code === 'invalid_token') return this.tokenFailed(ex, result.reason, !settled);
      return ex.answer(result.code, { retryAfter: 1, description: result.description });
    }
    const principal = result.principal;
    ex.principal = principal;
    const decision = decide(principal, route.policy, this.issuers.get(principal.issuer)!, Date.now() / 1000, this.config.server.realm);
    if (!decision.allow) {
      ex.reason = decision.reason;
      return ex.answer(decision.error, { description: decision.description, challenge: decision.challenge });
    }
    // A claim no header can carry (not well-formed Unicode) must not pass as "no claim":
    // the verifier refuses such tokens before caching them; this is the second line.
    if (this.rewriter.identityFor(principal) === null) return this.tokenFailed(ex, 'claim_unrenderable', false);
    const wait = this.rateLimits.checkSubject(route.name, principal.issuer, principal.subject);
    if (wait > 0) {
      this.metrics.rateLimited('subject');
      return ex.answer('rate_limited', { retryAfter: wait });
    }
    this.forward(ex, snap, route, path, principal);
  }

  private forward(ex: Exchange, snap: RequestSnapshot, route: CompiledRoute, path: NormalizedPath, principal: Principal | null): void {
    const pool = this.pools.get(route.upstream);
    const target = upstreamPath(route, pool.upstream.basePath, path);
    const headers = this.rewriter.rewrite(
      snap.headers,
      snap.connection,
      snap.xff,
      snap.host,
      {
        clientAddress: snap.remote,
        trustedPeer: this.trusted !== null && isTrusted(this.trusted, snap.remote),
        proto: this.proto,
        requestId: ex.requestId,
        forwardAuthorization: route.forwardAuthorization,
        forwarded: snap.forwarded,
      },
      principal,
    );
    ex.dispatch(pool, {
      path: snap.query === undefined ? target : `${target}?${snap.query}`,
      method: snap.method as 'GET',
      headers,
    });
  }
}
