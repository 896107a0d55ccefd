import { Readable } from 'node:stream';
import { STATUS_CODES } from 'node:http';
import type { Dispatcher } from 'undici';
import type { HttpResponse } from 'uWebSockets.js';
import { ERRORS, STATUS_LINE, type ErrorCode } from '../errors.js';
import { forEachResponseHeader } from './headers.js';
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

/** Called once per exchange when it is over (answered, failed or aborted). */
export type ExchangeListener = (ex: Exchange) => void;

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

  constructor(
    readonly res: HttpResponse,
    readonly method: string,
    public requestId: string,
    private readonly onDone: ExchangeListener,
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
    this.onDone(this);
  }

  private releasePool(): void {
    if (this.pool !== null) {
      this.pool.release();
      this.pool = null;
    }
  }

  /** Answers with a gateway error (JSON body per DESIGN.md). Safe to call from any callback. */
  answer(code: ErrorCode, extras?: AnswerExtras): void {
    if (this.done) return;
    this.done = true;
    this.code = code;
    const e = ERRORS[code];
    this.status = e.status;
    this.body?.destroy();
    const res = this.res;
    const text = JSON.stringify({ error: e.error, error_description: extras?.description ?? e.message, request_id: this.requestId });
    res.cork(() => {
      res.writeStatus(STATUS_LINE[e.status] ?? `${e.status}`);
      res.writeHeader('content-type', 'application/json');
      res.writeHeader('cache-control', 'no-store');
      res.writeHeader('x-request-id', this.requestId);
      if (extras?.challenge) res.writeHeader('www-authenticate', extras.challenge);
      if (extras?.allow) res.writeHeader('allow', extras.allow);
      if (extras?.retryAfter !== undefined) res.writeHeader('retry-after', String(extras.retryAfter));
      // A request body the gateway refused to read would desynchronise a kept-alive connection.
      const close = extras?.close === true || this.body !== null;
      if (this.method === 'HEAD') {
        res.writeHeader('content-length', String(Buffer.byteLength(text)));
        res.endWithoutBody(undefined, close);
      }
      else res.end(text, close);
    });
    this.finish();
  }

  /** Starts the upstream request. */
  dispatch(pool: UpstreamPool, opts: Dispatcher.DispatchOptions): void {
    if (this.done) return;
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

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.done) return;
    this.chunk = chunk;
    this.res.cork(this.total >= 0 ? this.corkedTryEnd : this.corkedWrite);
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
  };

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

/**
 * The client's request body as a Readable that undici consumes. Chunks are copied
 * out of uWS's buffer (it is detached after the callback); when undici stops
 * reading, the client socket is paused, and resumed on the next read.
 */
export class RequestBody extends Readable {
  private paused = false;
  private received = 0;
  failed: 'client' | 'too_large' | null = null;

  constructor(
    private readonly ex: Exchange,
    private readonly maxBytes: number,
  ) {
    super({ highWaterMark: 64 * 1024 });
    ex.res.onData(this.onChunk);
  }

  private readonly onChunk = (ab: ArrayBuffer, isLast: boolean): void => {
    if (this.destroyed) return;
    this.received += ab.byteLength;
    if (this.maxBytes > 0 && this.received > this.maxBytes) {
      this.failed = 'too_large';
      this.destroy(new Error('request body too large'));
      if (!this.ex.started) this.ex.answer('payload_too_large', { close: true });
      return;
    }
    if (ab.byteLength > 0 && !this.push(Buffer.from(ab.slice(0)))) {
      if (!this.ex.done) {
        this.paused = true;
        this.ex.res.pause();
      }
    }
    if (isLast) this.push(null);
  };

  override _read(): void {
    if (this.paused && !this.ex.done) {
      this.paused = false;
      this.ex.res.resume();
    }
  }
}
