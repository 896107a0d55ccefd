import { STATUS_CODES } from 'node:http';
import type { HttpResponse } from 'uWebSockets.js';
import { REASONS, STATUS_LINE } from '../reasons.js';
import type { Answer } from '../pipeline/answer.js';
import type { Answerer } from '../pipeline/answerer.js';
import type { RequestContext } from '../pipeline/context.js';
import { connectionTokens, isResponseHeaderSkipped } from '../proxy/headers.js';
import { fail } from '../pipeline/boundary.js';

/**
 * Everything that writes to one uWS response: the gateway's own answers (JSON errors
 * with their challenge) and the upstream's answer, streamed. The uWebSockets.js rules
 * it keeps: `onAborted` is registered first; after an abort or a finished response `res`
 * is never touched (`done`); every write from a callback is corked; and backpressure:
 * `write`/`tryEnd` returning false makes the caller pause the upstream until one
 * `onWritable` handler per response says the socket drained.
 *
 * An upstream answer's status line and headers are held until its first body chunk, so
 * a small answer leaves in one cork, one send (status, headers and body together); an
 * answer whose body does not follow in the same turn of the event loop gets its head
 * written on its own then.
 */
export class Responder implements Answerer {
  /** `res` must not be touched any more (aborted, or the response ended). */
  done = false;
  aborted = false;
  /** The status line went out (a failure now can only close the connection). */
  started = false;
  /** Called once the socket can take more after `chunk` returned false. */
  onDrain: (() => void) | null = null;

  private ctx: RequestContext | null = null;
  // The upstream's head, held until the first chunk (see the class comment).
  /** @internal read by the module-level cork callbacks below */
  headStatus = 0;
  /** @internal */
  headMessage: string | undefined = undefined;
  /** @internal */
  headHeaders: Record<string, string | string[] | undefined> | null = null;
  private headQueued = false;
  /** Known response length, -1 = unknown (chunked). */
  private total = -1;
  private pending: Buffer | null = null;
  private pendingOffset = 0;
  private writableRegistered = false;

  constructor(readonly res: HttpResponse) {
    res.onAborted(() => {
      try {
        this.abort();
      } catch (err) {
        this.ctx?.services.internalError(this.ctx, err);
      }
    });
  }

  /** The context this responder answers for (set once, right after both exist). */
  bind(ctx: RequestContext): void {
    this.ctx = ctx;
  }

  private abort(): void {
    this.aborted = true;
    if (this.done) return;
    this.done = true;
    const ctx = this.ctx;
    if (ctx === null) return; // aborted before the request was copied out (the handler failed)
    ctx.reason = 'client_aborted';
    if (!this.started) ctx.status = 499;
    ctx.upstream?.abort(new Error('client aborted'));
    ctx.body?.destroy();
    ctx.services.finished(ctx);
  }

  /**
   * Answers with a gateway refusal or error (JSON body, README "What the gateway
   * answers"). Safe to call from any callback; does nothing once the response is done.
   *
   * An answer that closes the connection is written on the next turn of the event loop:
   * uWebSockets.js 20.30 keeps parsing the bytes after a request answered synchronously,
   * even with its close flag set, so a request smuggled behind an ambiguous one would be
   * handled next. Left unanswered until then, the pending answer makes uWS drop the
   * connection instead of dispatching anything more from it; when nothing follows, the
   * answer goes out and the connection closes.
   */
  answer(a: Answer): void {
    if (this.done) return;
    this.done = true;
    const ctx = this.ctx!;
    const info = REASONS[a.reason];
    ctx.reason = a.reason;
    ctx.status = info.status;
    // A request body left unread would desynchronise a kept-alive connection.
    const close = info.close || (ctx.body !== null && !ctx.body.complete);
    ctx.body?.destroy();
    // A reason without an `error` is a success the gateway answers itself (a logout, OpenID
    // Connect Back-Channel Logout 1.0 §2.8: 200 with an empty body).
    const text = info.error === null ? '' : JSON.stringify({ error: info.error, error_description: a.description ?? info.description, request_id: ctx.requestId });
    if (close) setImmediate(() => this.writeAnswer(a, info.status, text, true));
    else this.writeAnswer(a, info.status, text, false);
    ctx.services.finished(ctx);
  }

  private writeAnswer(a: Answer, status: number, text: string, close: boolean): void {
    if (this.aborted) return;
    const res = this.res;
    const ctx = this.ctx!;
    res.cork(() => {
      res.writeStatus(STATUS_LINE[status] ?? `${status}`);
      if (text !== '') res.writeHeader('content-type', 'application/json');
      res.writeHeader('cache-control', 'no-store');
      res.writeHeader('x-request-id', ctx.requestId);
      if (a.challenge !== undefined) res.writeHeader('www-authenticate', a.challenge);
      if (a.allowMethods !== undefined) res.writeHeader('allow', a.allowMethods);
      if (a.retryAfter !== undefined) res.writeHeader('retry-after', String(a.retryAfter));
      if (a.dpopNonce !== undefined) res.writeHeader('dpop-nonce', a.dpopNonce);
      if (ctx.method === 'HEAD') {
        res.writeHeader('content-length', String(Buffer.byteLength(text)));
        res.endWithoutBody(undefined, close);
      } else res.end(text, close);
    });
  }

  /**
   * The upstream's status and headers. Answers that have no body (HEAD, 204, 304, a
   * length of 0) are written and ended here; true when the response is complete.
   */
  head(status: number, message: string | undefined, headers: Record<string, string | string[] | undefined>): boolean {
    const ctx = this.ctx!;
    const noBody = ctx.method === 'HEAD' || status === 204 || status === 304;
    const cl = headers['content-length'];
    const length = typeof cl === 'string' && /^\d+$/.test(cl) ? Number(cl) : -1;
    this.total = noBody ? -1 : length;
    ctx.status = status;
    this.started = true;
    if (noBody || length === 0) {
      const res = this.res;
      res.cork(() => {
        this.writeHead(status, message, headers);
        if (noBody) {
          // RFC 9110 §9.3.2: HEAD answers carry the Content-Length a GET would have. Written as
          // a plain header: uWS 20.30's endWithoutBody(length) leaves the kept-alive connection
          // unusable for the next request.
          if (ctx.method === 'HEAD' && length >= 0) res.writeHeader('content-length', String(length));
          res.endWithoutBody();
        } else res.end();
      });
      this.finish();
      return true;
    }
    this.headStatus = status;
    this.headMessage = message;
    this.headHeaders = headers;
    if (!this.headQueued) {
      this.headQueued = true;
      queueHead(this);
    }
    return false;
  }

  /** flushHead inside the request's boundary (it runs from a shared microtask). */
  flushHeadGuarded(): void {
    try {
      this.flushHead();
    } catch (err) {
      if (this.ctx !== null) fail(this.ctx, err);
    }
  }

  /** The head of an answer whose body has not come yet, on its own (see queueHead). */
  private flushHead(): void {
    this.headQueued = false;
    if (this.headHeaders === null || this.done) return;
    CORKED = this;
    this.res.cork(corkedHead);
  }

  writeHead(status: number, message: string | undefined, headers: Record<string, string | string[] | undefined>): void {
    this.headHeaders = null;
    const res = this.res;
    res.writeStatus(statusLine(status, message));
    const conn = headers['connection'];
    const tokens = conn === undefined ? null : connectionTokens(Array.isArray(conn) ? conn.join(',') : conn);
    for (const name in headers) {
      if (isResponseHeaderSkipped(name, tokens)) continue;
      const v = headers[name];
      if (v === undefined) continue;
      if (typeof v === 'string') res.writeHeader(name, v);
      else for (let i = 0; i < v.length; i++) res.writeHeader(name, v[i]!);
    }
    res.writeHeader('x-request-id', this.ctx!.requestId);
  }

  /** Inside the cork of `chunk`: the held head, then the data. Sets CHUNK_OK. */
  writeChunkCorked(data: Buffer): void {
    const res = this.res;
    if (this.headHeaders !== null) this.writeHead(this.headStatus, this.headMessage, this.headHeaders);
    if (this.total >= 0) {
      const offset = res.getWriteOffset();
      const [sent, finished] = res.tryEnd(data, this.total);
      if (finished) {
        this.finish();
      } else if (!sent) {
        // uWS keeps none of what it could not send: keep it and retry from onWritable.
        this.pending = data;
        this.pendingOffset = offset;
        CHUNK_OK = false;
      }
    } else if (!res.write(data)) {
      // write() buffered what it could not send; false means "stop producing".
      CHUNK_OK = false;
    }
  }

  /**
   * One chunk of the upstream's body. Returns false when the client socket is full:
   * the caller pauses the upstream until `onDrain` is called.
   */
  chunk(data: Buffer): boolean {
    if (this.done) return true;
    CORKED = this;
    CHUNK_DATA = data;
    CHUNK_OK = true;
    this.res.cork(corkedChunk);
    CHUNK_DATA = null;
    const ok = CHUNK_OK;
    if (!ok) this.registerWritable();
    return ok;
  }

  /** The upstream's body ended. A known-length answer already ended with its last tryEnd. */
  end(): void {
    if (this.done) return;
    if (this.total < 0) {
      const res = this.res;
      res.cork(() => {
        if (this.headHeaders !== null) this.writeHead(this.headStatus, this.headMessage, this.headHeaders);
        res.end();
      });
      this.finish();
    }
  }

  /**
   * Headers already went out and the answer cannot be completed: closing is the only
   * honest answer (a truncated body that ends normally would look complete).
   */
  close(): void {
    if (this.done) return;
    this.res.cork(() => this.res.close());
    this.finish();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.ctx!.services.finished(this.ctx!);
  }

  private registerWritable(): void {
    if (this.writableRegistered) return;
    this.writableRegistered = true;
    this.res.onWritable((offset) => {
      try {
        return this.writable(offset);
      } catch (err) {
        fail(this.ctx!, err);
        return true;
      }
    });
  }

  private writable(offset: number): boolean {
    if (this.done) return true;
    if (this.total < 0) {
      this.onDrain?.();
      return true;
    }
    const pending = this.pending;
    if (pending === null) return true;
    const [ok, finished] = this.res.tryEnd(pending.subarray(offset - this.pendingOffset), this.total);
    if (finished) {
      this.pending = null;
      this.finish();
    } else if (ok) {
      this.pending = null;
      this.onDrain?.();
    }
    return ok;
  }
}

const statusLines = new Map<number, string>();
/** "NNN Reason" for any upstream status, memoized (uWS wants the whole status line). */
function statusLine(status: number, message: string | undefined): string {
  let line = statusLines.get(status);
  if (line === undefined) {
    line = STATUS_LINE[status] ?? `${status} ${message || STATUS_CODES[status] || 'Unknown'}`;
    if (statusLines.size < 1000) statusLines.set(status, line);
  }
  return line;
}

// res.cork takes a callback it runs at once: module-level callbacks reading these cost
// no closure per write (the responder being written is CORKED).
let CORKED: Responder | null = null;
let CHUNK_DATA: Buffer | null = null;
let CHUNK_OK = true;

function corkedChunk(): void {
  CORKED!.writeChunkCorked(CHUNK_DATA!);
}

function corkedHead(): void {
  const r = CORKED!;
  r.writeHead(r.headStatus, r.headMessage, r.headHeaders!);
}

/**
 * Heads waiting for their first body chunk. undici delivers the head and the first chunk
 * of a small answer in the same turn of the event loop, so the chunk usually writes
 * both; whatever is still waiting when that turn's microtasks run is written on its own
 * then. One microtask for all of them, not one closure per answer.
 */
const HEADS: Responder[] = [];

function queueHead(r: Responder): void {
  if (HEADS.push(r) === 1) queueMicrotask(flushHeads);
}

function flushHeads(): void {
  for (let i = 0; i < HEADS.length; i++) HEADS[i]!.flushHeadGuarded();
  HEADS.length = 0;
}
