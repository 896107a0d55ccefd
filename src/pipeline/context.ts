import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { CompiledRoute, GatewayState } from '../config/state.js';
import type { Principal } from '../authz/claims.js';
import type { CacheOutcome, VerifyResult } from '../authn/types.js';
import type { NormalizedPath } from '../routes/normalize.js';
import type { Reason } from '../reasons.js';
import type { RequestBody } from '../proxy/request-body.js';
import type { UpstreamCall } from '../proxy/upstream.js';
import type { Responder } from '../server/responder.js';
import type { Answerer } from './answerer.js';
import type { Services } from './services.js';
import { abText } from '../server/uws.js';
import { clientAddress } from '../server/clientip.js';
import { randomUUID } from 'node:crypto';

/** uWS reports method names in lower case; the common ones map to their canonical spelling without a string operation. */
const METHODS: Readonly<Record<string, string>> = {
  get: 'GET',
  head: 'HEAD',
  post: 'POST',
  put: 'PUT',
  patch: 'PATCH',
  delete: 'DELETE',
  options: 'OPTIONS',
};

/** A client `X-Request-Id` is kept only when it looks like one (README "Paths and headers"). */
const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * Everything one request has gathered on its way through the pipeline, in one typed
 * object: first what it arrived with (copied synchronously out of uWS's `req`, which is
 * invalid once the handler returns), then what each stage found (route, client address,
 * principal, verdict, upstream timing). Stages read and fill it; the audit line and the
 * metrics are built from it in one place (src/observe/record.ts) when it is over.
 *
 * It carries the gateway state the request started with: a reload swaps the state for
 * new requests while this one finishes under its own.
 */
export class RequestContext {
  // --- the request as it arrived -------------------------------------------------
  readonly method: string;
  /** The target's path as uWS gives it (not decoded). */
  readonly rawPath: string;
  /** The query string without `?` (byte for byte), or undefined. */
  readonly query: string | undefined;
  /** Flat [name, value, …] with lower-case names, in arrival order. */
  readonly headers: string[] = [];
  authorization: string | undefined = undefined;
  authCount = 0;
  /** The `DPoP` field value(s) (RFC 9449 §4.1): one string, or each field line when there were several. */
  dpop: string | string[] | undefined = undefined;
  contentLength: string | undefined = undefined;
  /** Two Content-Length headers that differ, or one that is not a number. */
  badLength = false;
  chunked = false;
  headerBytes = 0;
  host: string | undefined = undefined;
  /** Host field lines seen: exactly one is valid (RFC 9112 §3.2). */
  hostCount = 0;
  /** Every X-Forwarded-For field line, joined with `, `. */
  xff: string | undefined = undefined;
  /** The client's Forwarded field lines, joined with `, ` (RFC 7239). */
  forwarded: string | undefined = undefined;
  /** Every Connection field line, joined with `, ` (its names are hop-by-hop too). */
  connection: string | undefined = undefined;
  /** The socket peer (IPv4-mapped IPv6 unwrapped). */
  readonly remote: string;

  // --- what the pipeline gathered ------------------------------------------------
  readonly state: GatewayState;
  /** performance.now() at arrival. */
  readonly startedAt: number;
  requestId: string;
  /** The client address: the peer, or X-Forwarded-For behind a trusted proxy (src/server/clientip.ts). */
  readonly client: string;
  /** The normalized path: what goes upstream (src/routes/normalize.ts). */
  path: NormalizedPath | null = null;
  /** The path routes, policy and the audit line see (without `;` parameters). */
  matchPath: string | null = null;
  route: CompiledRoute | null = null;
  /** The access token, once found. */
  token: string | null = null;
  /** It came with the `DPoP` authorization scheme (RFC 9449 §7.1), not `Bearer`. */
  dpopScheme = false;
  cache: CacheOutcome | null = null;
  verifyMs: number | null = null;
  /** This request's verification was counted by the spraying guard and must be settled. */
  sprayAdmitted = false;
  /** What the token cache or the verifier said of the token. */
  verdict: VerifyResult | null = null;
  principal: Principal | null = null;
  body: RequestBody | null = null;
  /** Why it was answered as it was; null while it is on its way (and `ok` once the upstream answered). */
  reason: Reason | null = null;
  /** The status sent (or being sent) to the client. */
  status = 0;
  /** performance.now() at dispatch (0: never dispatched). */
  dispatchedAt = 0;
  /** Time from dispatch to the upstream's response headers, ms. */
  upstreamMs: number | null = null;
  upstream: UpstreamCall | null = null;
  /** An exception was reported for this request (the boundary answers it once). */
  failed = false;

  constructor(
    readonly res: HttpResponse,
    req: HttpRequest,
    state: GatewayState,
    readonly services: Services,
    readonly responder: Responder,
  ) {
    this.state = state;
    this.startedAt = performance.now();
    const m = req.getMethod();
    this.method = METHODS[m] ?? m.toUpperCase();
    this.rawPath = req.getUrl();
    this.query = req.getQuery();
    this.remote = remoteAddress(res);
    FILLING = this;
    CLIENT_ID = undefined;
    req.forEach(collect);
    const clientId = CLIENT_ID;
    FILLING = null;
    this.requestId = clientId !== undefined && REQUEST_ID.test(clientId) ? clientId : randomUUID();
    this.client = clientAddress(this.remote, this.xff, state.trusted);
  }

  /** True when the request carries a body (a length other than 0, or chunked). */
  get hasBody(): boolean {
    return this.chunked || (this.contentLength !== undefined && this.contentLength !== '0');
  }

  /**
   * A context built from plain values instead of a uWS request (`mfa-gateway explain`,
   * src/explain/): the constructor runs as it does for uWS, on stand-ins of the few uWS
   * calls it makes, so every field is filled by the same code. The uWS path never meets
   * the stand-ins (explain runs in a process of its own). Such a context has no body
   * and no socket: `answerer` takes its answer, and only Answerer's members may be used
   * of `responder` (the stages and forward() up to its dispatch use no more).
   */
  static fromValues(request: PlainRequest, state: GatewayState, services: Services, answerer: Answerer): RequestContext {
    return new RequestContext(plainResponse(request.remote), plainRequest(request), state, services, answerer as Responder);
  }
}

/** A request as plain values (RequestContext.fromValues). */
export interface PlainRequest {
  readonly method: string;
  /** The path, not decoded, without the query. */
  readonly path: string;
  /** Without `?`; undefined when there is none (as uWS reports it). */
  readonly query: string | undefined;
  /** Lower-case names, in order. */
  readonly headers: readonly (readonly [string, string])[];
  /** The peer's address (IPv4 or IPv6 text). */
  readonly remote: string;
}

function plainRequest(r: PlainRequest): HttpRequest {
  const req = {
    getMethod: () => r.method.toLowerCase(),
    getUrl: () => r.path,
    getQuery: () => r.query,
    forEach: (cb: (name: string, value: string) => void) => {
      for (const [name, value] of r.headers) cb(name, value);
    },
  };
  return req as unknown as HttpRequest;
}

function plainResponse(remote: string): HttpResponse {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(remote);
  const res = {
    // uWS gives 4 bytes for IPv4 and 16 for IPv6; an IPv6 peer is then asked for as text.
    getRemoteAddress: () => (v4 ? Uint8Array.from(v4.slice(1).map(Number)) : new Uint8Array(16)).buffer,
    getRemoteAddressAsText: () => Uint8Array.from(Buffer.from(remote, 'latin1')).buffer,
  };
  return res as unknown as HttpResponse;
}

/**
 * The socket peer. uWS's binary form is about half the cost of its text form (each
 * builds an ArrayBuffer); an IPv4 peer (also as IPv4-mapped IPv6 on a dual-stack
 * socket) is written out here, and only a real IPv6 peer asks for the text.
 */
function remoteAddress(res: HttpResponse): string {
  const b = new Uint8Array(res.getRemoteAddress());
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length === 16 && b[10] === 0xff && b[11] === 0xff && b[0] === 0 && b[1] === 0 && b[2] === 0 && b[3] === 0 && b[4] === 0 && b[5] === 0 && b[6] === 0 && b[7] === 0 && b[8] === 0 && b[9] === 0) {
    return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  const text = abText(res.getRemoteAddressAsText());
  return text.startsWith('::ffff:') && text.includes('.') ? text.slice(7) : text;
}

// req.forEach takes a callback; one module-level function filling the context being
// built (FILLING) costs no closure per request.
let FILLING: RequestContext | null = null;
let CLIENT_ID: string | undefined;

function collect(name: string, value: string): void {
  const c = FILLING!;
  c.headers.push(name, value);
  c.headerBytes += name.length + value.length + 4;
  switch (name) {
    case 'authorization':
      if (c.authCount++ === 0) c.authorization = value;
      break;
    case 'content-length':
      // RFC 9112 §6.3: differing Content-Length values are unrecoverable framing errors.
      if (!/^\d{1,15}$/.test(value) || (c.contentLength !== undefined && c.contentLength !== value)) c.badLength = true;
      c.contentLength = value;
      break;
    case 'transfer-encoding':
      c.chunked = true;
      break;
    case 'host':
      c.host = value;
      c.hostCount++;
      break;
    case 'x-forwarded-for':
      c.xff = c.xff === undefined ? value : `${c.xff}, ${value}`;
      break;
    case 'forwarded':
      c.forwarded = c.forwarded === undefined ? value : `${c.forwarded}, ${value}`;
      break;
    case 'x-request-id':
      CLIENT_ID = value;
      break;
    case 'connection':
      c.connection = c.connection === undefined ? value : `${c.connection}, ${value}`;
      break;
    case 'dpop':
      // Kept apart, never joined: RFC 9449 §4.3 check 1 refuses more than one.
      c.dpop = c.dpop === undefined ? value : typeof c.dpop === 'string' ? [c.dpop, value] : [...c.dpop, value];
      break;
  }
}
