import { Readable } from 'node:stream';
import { STATUS_CODES } from 'node:http';
import type { Dispatcher } from 'undici';
import type { HttpResponse } from 'uWebSockets.js';
import { ERRORS, STATUS_LINE, type ErrorCode } from '../errors.js';
import { forEachResponseHeader } from './headers.js';
import { failpoint } from '../failpoints.js';
import type { UpstreamPool } from './pools.js';
import type { Principal } from '../authz/claims.js';
import type { CacheOutcome } from '../authn/types.js';

/** Extra headers of a gateway answer. */
export interface AnswerExtras {
  description?: string;
  challenge?: string;
  allow?: string;
  retryAfter?: number;
  close?: boolean;
}

/** What an exchange reports to the gateway. */
export interface ExchangeHooks {
  /** Called once per exchange when it is over (answered, failed or aborted). */
  done(ex: Exchange): void;
  /**
   * An exception escaped the handling of this request: log it once (with the request
   * id) and count it. The exchange itself answers 500 or closes the connection.
   */
  internalError(ex: Exchange | null, err: unknown): void;
}

const statusLines = new Map<number, string>();
function statusLine(status: number, message: string | undefined): string {
  let line = statusLines.get(status);
  if (line === undefined) {
    line = STATUS_LINE[status] ?? `${status} ${message || STATUS_CODES[status] || 'Unknown'}`;
    if (statusLines.size < 1000) statusLines.set(status, line);
  }
  return line;
}

/** undici error codes that mean "the upstream took too long" (DESIGN.md: 504). */
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/**
 * One client request and its upstream exchange: the uWS response, the streamed
 * request body, and the undici dispatch handler that streams the answer back.
 *
 * uWS rules followed here (STYLE.md): `onAborted` is registered first, `res` is
 * never touched after abort or end (the `done` flag), every write from an async
 * callback is corked, and backpressure is honoured both ways: a full client socket
 * pauses the upstream (`controller.pause()` until `onWritable`), a slow upstream
 * pauses the client (`res.pause()` until the body stream is read again).
 */
export class Exchange implements Dispatcher.DispatchHandler {
  /** Client gone or response finished: `res` must not be touched. */
  done = false;
  aborted = false;
  /** Response status line already went out (a failure now can only close the connection). */
  started = false;
  status = 0;
  /** Why the gateway answered as it did (a code of src/errors.ts), for the audit line. */
  code: ErrorCode | null = null;
  body: RequestBody | null = null;
  pool: UpstreamPool | null = null;
  readonly startedAt: number;

  // What the audit line and the metrics need (src/observe), filled as the pipeline goes.
  /** Reason from the fixed vocabulary when it is more precise than `code` (token and policy failures). */
  reason: string | null = null;
  path: string | null = null;
  route: string | null = null;
  upstream: string | null = null;
  client = '';
  principal: Principal | null = null;
  token: string | null = null;
  cache: CacheOutcome | null = null;
  verifyMs: number | null = null;
  /** performance.now() at dispatch, then the time to the upstream's response headers. */
  dispatchedAt = 0;
  upstreamMs: number | null = null;

  private controller: Dispatcher.DispatchController | null = null;
  private total = -1; // known response length, -1 = unknown (chunked)
  private chunk: Buffer | null = null;
  private pending: Buffer | null = null;
  private pendingOffset = 0;
  private writableRegistered = false;
  /** An exception was reported for this request (see guard). */
  private internal = false;

  constructor(
    readonly res: HttpResponse,
    readonly method: string,
    public requestId: string,
    private readonly hooks: ExchangeHooks,
  ) {
    this.startedAt = performance.now();
    res.onAborted(this.onAborted);
  }

  private readonly onAborted = (): void => {
    this.aborted = true;
    if (this.done) return;
    this.done = true;
    this.controller?.abort(new Error('client aborted'));
    this.body?.destroy();
    this.finish();
  };

  private finish(): void {
    this.releasePool();
    this.hooks.done(this);
  }

  /**
   * Runs `fn` inside this request's boundary: an exception answers this request 500
   * `internal` (or closes its connection when the answer has started), is reported once,
   * and goes no further. Every callback a request registers (uWS, undici, promise
   * continuations) enters through here, so no request can end the process.
   */
  guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.fail(err);
    }
  }

  /** The boundary's answer to an exception (see guard). */
  fail(err: unknown): void {
    if (this.internal) return; // once per request, even if answering fails too
    this.internal = true;
    try {
      this.hooks.internalError(this, err);
    } catch {
      // reporting must not throw out of the boundary
    }
    // Answer (or close) first: aborting undici calls onResponseError synchronously, which
    // must find the exchange already done.
    if (!this.done) {
      if (!this.started) this.answer('internal');
      else {
        this.done = true;
        this.code = 'internal';
        this.res.cork(() => this.res.close());
        this.finish();
      }
    }
    this.abortUpstream();
  }

  /** The request body failed (too large, client silent): answer, and abort the upstream request. */
  bodyFailed(code: 'payload_too_large' | 'request_timeout'): void {
    if (!this.done) {
      if (!this.started) this.answer(code, { close: true });
      else {
        this.done = true;
        this.code = code;
        this.res.cork(() => this.res.close());
        this.finish();
      }
    }
    this.abortUpstream();
  }

  private abortUpstream(): void {
    const c = this.controller;
    if (c !== null && !c.aborted) c.abort(new Error('request failed at the gateway'));
  }

  private releasePool(): void {
    if (this.pool !== null) {
      this.pool.release();
      this.pool = null;
    }
  }

  /**
   * Answers with a gateway error (JSON body, README "What the gateway answers"). Safe to
   * call from any callback.
   *
   * An answer that closes the connection is written on the next turn of the event loop:
   * uWebSockets.js 20.30 keeps parsing the bytes after a request answered synchronously,
   * even with its close flag set, so a request smuggled behind an ambiguous one would be
   * handled next. Left unanswered until then, the pending answer makes uWS drop the
   * connection instead of dispatching anything more from it; when nothing follows, the
   * answer goes out and the connection closes.
   */
  answer(code: ErrorCode, extras?: AnswerExtras): void {
    if (this.done) return;
    this.done = true;
    this.code = code;
    const e = ERRORS[code];
    this.status = e.status;
    // A request body the gateway refused to read would desynchronise a kept-alive connection.
    const close = extras?.close === true || (this.body !== null && !this.body.complete);
    this.body?.destroy();
    const text = JSON.stringify({ error: e.error, error_description: extras?.description ?? e.message, request_id: this.requestId });
    if (close) setImmediate(() => this.writeAnswer(e.status, text, extras, true));
    else this.writeAnswer(e.status, text, extras, false);
    this.finish();
  }

  private writeAnswer(status: number, text: string, extras: AnswerExtras | undefined, close: boolean): void {
    if (this.aborted) return;
    const res = this.res;
    res.cork(() => {
      res.writeStatus(STATUS_LINE[status] ?? `${status}`);
      res.writeHeader('content-type', 'application/json');
      res.writeHeader('cache-control', 'no-store');
      res.writeHeader('x-request-id', this.requestId);
      if (extras?.challenge) res.writeHeader('www-authenticate', extras.challenge);
      if (extras?.allow) res.writeHeader('allow', extras.allow);
      if (extras?.retryAfter !== undefined) res.writeHeader('retry-after', String(extras.retryAfter));
      if (this.method === 'HEAD') {
        res.writeHeader('content-length', String(Buffer.byteLength(text)));
        res.endWithoutBody(undefined, close);
      } else res.end(text, close);
    });
  }

  /** Starts the upstream request. */
  dispatch(pool: UpstreamPool, opts: Dispatcher.DispatchOptions): void {
    if (this.done) return;
    const body = this.body;
    if (body !== null && !body.ready) {
      // A small body is read whole first: no upstream connection waits on a slow client.
      body.whenReady(() => this.guard(() => this.dispatch(pool, opts)));
      return;
    }
    if (body !== null) opts = { ...opts, body: body.dispatchBody() };
    if (!pool.acquire()) {
      this.answer('overloaded', { retryAfter: 1 });
      return;
    }
    this.pool = pool;
    this.dispatchedAt = performance.now();
    try {
      pool.pool.dispatch(opts, this);
    } catch (err) {
      this.onResponseError(null, err as Error);
    }
  }

  // --- undici DispatchHandler ---------------------------------------------------------

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.aborted) controller.abort(new Error('client aborted'));
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void {
    this.controller = controller;
    this.guard(() => this.responseStart(controller, statusCode, headers, statusMessage));
  }

  private responseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage: string | undefined,
  ): void {
    failpoint('upstream-response');
    if (this.done) {
      controller.abort(new Error('client gone'));
      return;
    }
    if (statusCode < 200) return; // 1xx are not forwarded
    this.upstreamMs = performance.now() - this.dispatchedAt;
    const noBody = this.method === 'HEAD' || statusCode === 204 || statusCode === 304;
    const cl = headers['content-length'];
    const length = typeof cl === 'string' && /^\d+$/.test(cl) ? Number(cl) : -1;
    this.total = noBody ? -1 : length;
    this.status = statusCode;
    this.started = true;
    const res = this.res;
    res.cork(() => {
      res.writeStatus(statusLine(statusCode, statusMessage));
      forEachResponseHeader(headers, this.writeHeader);
      res.writeHeader('x-request-id', this.requestId);
      if (noBody) {
        // RFC 9110 §9.3.2: HEAD answers carry the Content-Length a GET would have. Written as
        // a plain header: uWS 20.30's endWithoutBody(length) leaves the kept-alive connection
        // unusable for the next request.
        if (this.method === 'HEAD' && length >= 0) res.writeHeader('content-length', String(length));
        res.endWithoutBody();
        this.done = true;
      } else if (length === 0) {
        res.end();
        this.done = true;
      }
    });
    if (this.done) this.finish();
  }

  private readonly writeHeader = (name: string, value: string): void => {
    this.res.writeHeader(name, value);
  };

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.done) return;
    this.chunk = chunk;
    try {
      this.res.cork(this.total >= 0 ? this.corkedTryEnd : this.corkedWrite);
    } catch (err) {
      this.fail(err);
    }
  }

  private readonly corkedTryEnd = (): void => {
    const res = this.res;
    const chunk = this.chunk!;
    this.chunk = null;
    const offset = res.getWriteOffset();
    const [ok, done] = res.tryEnd(chunk, this.total);
    if (done) {
      this.done = true;
      this.finish();
    } else if (!ok) {
      // uWS keeps none of what it could not send: keep it and retry from onWritable.
      this.pending = chunk;
      this.pendingOffset = offset;
      this.controller?.pause();
      this.registerWritable();
    }
  };

  private readonly corkedWrite = (): void => {
    const chunk = this.chunk!;
    this.chunk = null;
    // write() buffers what it could not send; false means "stop producing".
    if (!this.res.write(chunk)) {
      this.controller?.pause();
      this.registerWritable();
    }
  };

  private registerWritable(): void {
    if (this.writableRegistered) return;
    this.writableRegistered = true;
    this.res.onWritable(this.onWritable);
  }

  private readonly onWritable = (offset: number): boolean => {
    try {
      return this.writable(offset);
    } catch (err) {
      this.fail(err);
      return true;
    }
  };

  private writable(offset: number): boolean {
    if (this.done) return true;
    if (this.total < 0) {
      this.controller?.resume();
      return true;
    }
    const pending = this.pending;
    if (pending === null) return true;
    const [ok, done] = this.res.tryEnd(pending.subarray(offset - this.pendingOffset), this.total);
    if (done) {
      this.done = true;
      this.pending = null;
      this.finish();
    } else if (ok) {
      this.pending = null;
      this.controller?.resume();
    }
    return ok;
  }

  onResponseEnd(): void {
    this.releasePool();
    if (this.done) return;
    if (this.total < 0) {
      this.done = true;
      this.res.cork(() => this.res.end());
      this.finish();
    }
    // Known length: the last tryEnd (possibly from onWritable) finishes the response.
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, err: Error): void {
    this.releasePool();
    if (this.done) return;
    this.body?.destroy();
    if (!this.started) {
      const code = (err as { code?: string }).code ?? '';
      if (TIMEOUT_CODES.has(code)) this.answer('upstream_timeout');
      else if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH' || this.body?.failed === 'client') this.answer('bad_request', { close: true });
      else if (this.body?.failed === 'too_large') this.answer('payload_too_large', { close: true });
      else if (this.body?.failed === 'idle') this.answer('request_timeout', { close: true });
      else this.answer('upstream_unavailable');
      return;
    }
    // Headers already went out: closing is the only honest answer; a truncated body
    // that ends normally would look complete to the client.
    this.done = true;
    this.code = TIMEOUT_CODES.has((err as { code?: string }).code ?? '') ? 'upstream_timeout' : 'upstream_unavailable';
    this.res.cork(() => this.res.close());
    this.finish();
  }
}

/** How a request body is read: limits from `server.*` (README, "Paths and headers"). */
export interface BodyLimits {
  /** Largest body accepted at all (413 beyond it); 0 = no limit. */
  readonly maxBytes: number;
  /** Bodies up to this size are read whole before the upstream request starts; 0 = always stream. */
  readonly bufferBytes: number;
  /** Longest silence of the client while it sends its body (408 after it). */
  readonly idleMs: number;
}

/**
 * The client's request body. Bodies up to `bufferBytes` are read whole before an
 * upstream connection is claimed (nginx's proxy_request_buffering): a client that
 * trickles a small body at one byte a second then holds no upstream connection, so four
 * slow clients cannot starve an upstream of four connections. A body that grows past
 * `bufferBytes` becomes a stream (what was read so far first), with backpressure: when
 * undici stops reading, the client socket is paused, and resumed on the next read.
 *
 * Chunks are copied out of uWS's buffer (it is detached after the callback). A client
 * silent for `idleMs` while its body is incomplete gets 408 and the upstream request is
 * aborted (RFC 9110 §15.5.9); the timer does not run while the gateway itself has paused
 * the client.
 */
export class RequestBody {
  private chunks: Buffer[] = [];
  private received = 0;
  private stream: BodyStream | null = null;
  private onReady: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** The whole body has arrived. */
  complete = false;
  failed: 'client' | 'too_large' | 'idle' | null = null;

  constructor(
    private readonly ex: Exchange,
    private readonly limits: BodyLimits,
  ) {
    ex.res.onData(this.onChunk);
    this.timer = setTimeout(this.onIdle, limits.idleMs);
  }

  /** Whether the upstream request may start: the body is complete, or it is too large to buffer. */
  get ready(): boolean {
    return this.complete || this.stream !== null;
  }

  /** Calls `fn` once the body is ready (now, if it is). */
  whenReady(fn: () => void): void {
    if (this.ready) fn();
    else this.onReady = fn;
  }

  /** What undici sends: the whole body as one Buffer, or the stream of a large one. */
  dispatchBody(): Buffer | Readable {
    if (this.stream !== null) return this.stream;
    const chunks = this.chunks;
    this.chunks = [];
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  }

  destroy(): void {
    this.stopTimer();
    this.onReady = null;
    this.chunks = [];
    this.stream?.destroy();
  }

  /** The gateway paused the client (backpressure): its silence is ours, not its own. */
  pauseClient(): void {
    this.stopTimer();
    if (!this.ex.done) this.ex.res.pause();
  }

  resumeClient(): void {
    if (this.ex.done) return;
    if (!this.complete && this.timer === null && this.failed === null) this.timer = setTimeout(this.onIdle, this.limits.idleMs);
    this.ex.res.resume();
  }

  private stopTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private readonly onIdle = (): void => {
    this.timer = null;
    if (this.complete || this.failed !== null || this.ex.done) return;
    this.failed = 'idle';
    this.ex.bodyFailed('request_timeout');
  };

  private readonly onChunk = (ab: ArrayBuffer, isLast: boolean): void => {
    if (this.failed !== null || this.ex.done) return;
    this.ex.guard(() => this.take(ab, isLast));
  };

  private take(ab: ArrayBuffer, isLast: boolean): void {
    this.received += ab.byteLength;
    const { maxBytes, bufferBytes } = this.limits;
    if (maxBytes > 0 && this.received > maxBytes) {
      this.failed = 'too_large';
      this.ex.bodyFailed('payload_too_large');
      return;
    }
    if (isLast) {
      this.complete = true;
      this.stopTimer();
    } else {
      this.timer?.refresh();
    }
    const chunk = ab.byteLength > 0 ? Buffer.from(ab.slice(0)) : null;
    if (this.stream !== null) {
      this.stream.add(chunk, isLast);
      return;
    }
    if (chunk !== null) this.chunks.push(chunk);
    if (!this.complete && this.received > bufferBytes) {
      // Too large to buffer: stream from here on, what was read so far first.
      const stream = new BodyStream(this);
      for (const c of this.chunks) stream.add(c, false);
      this.chunks = [];
      this.stream = stream;
    }
    if (this.ready && this.onReady !== null) {
      const fn = this.onReady;
      this.onReady = null;
      fn();
    }
  }
}

/** The Readable undici consumes for a body too large to buffer. */
class BodyStream extends Readable {
  private paused = false;

  constructor(private readonly body: RequestBody) {
    super({ highWaterMark: 64 * 1024 });
  }

  add(chunk: Buffer | null, isLast: boolean): void {
    if (this.destroyed) return;
    if (chunk !== null && !this.push(chunk) && !this.paused) {
      this.paused = true;
      this.body.pauseClient();
    }
    if (isLast) this.push(null);
  }

  override _read(): void {
    if (this.paused) {
      this.paused = false;
      this.body.resumeClient();
    }
  }
}
