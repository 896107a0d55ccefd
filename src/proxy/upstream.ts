import type { Dispatcher } from 'undici';
import type { RequestContext } from '../pipeline/context.js';
import { guard } from '../pipeline/boundary.js';
import { PLAIN, RETRY_SOON } from '../pipeline/answer.js';
import { failpoint } from '../failpoints.js';
import type { Reason } from '../reasons.js';
import type { UpstreamPool } from './pools.js';

/** undici error codes that mean "the upstream took too long" (RFC 9110 §15.6.5: 504). */
const TIMEOUT_CODES: ReadonlySet<string> = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/**
 * One request to an upstream: the undici dispatch handler that streams the upstream's
 * answer into the request's Responder. Backpressure both ways: a client socket that is
 * full pauses the upstream (`controller.pause()` until the Responder says it drained); a
 * slow upstream pauses the client (the request body's stream stops being read, which
 * pauses the uWS socket: src/proxy/request-body.ts).
 */
export class UpstreamCall implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private pool: UpstreamPool | null = null;

  constructor(private readonly ctx: RequestContext) {}

  /** Claims a slot in the pool (503 when its bounded queue is full) and starts the request. */
  start(pool: UpstreamPool, opts: Dispatcher.DispatchOptions): void {
    const ctx = this.ctx;
    if (!pool.acquire()) {
      ctx.responder.answer(RETRY_SOON.overloaded!);
      return;
    }
    this.pool = pool;
    ctx.upstream = this;
    ctx.dispatchedAt = performance.now();
    try {
      pool.pool.dispatch(opts, this);
    } catch (err) {
      this.onResponseError(null, err as Error);
    }
  }

  /** Stops the upstream request (the client went away, or the gateway answered instead). */
  abort(reason: Error): void {
    const c = this.controller;
    if (c !== null && !c.aborted) c.abort(reason);
  }

  private release(): void {
    if (this.pool !== null) {
      this.pool.release();
      this.pool = null;
    }
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.ctx.responder.aborted) controller.abort(new Error('client aborted'));
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void {
    this.controller = controller;
    const ctx = this.ctx;
    guard(ctx, () => {
      failpoint('upstream-response', ctx.matchPath ?? '');
      if (ctx.responder.done) {
        controller.abort(new Error('client gone'));
        return;
      }
      if (statusCode < 200) return; // 1xx are not forwarded
      ctx.upstreamMs = performance.now() - ctx.dispatchedAt;
      ctx.reason = 'ok';
      ctx.responder.head(statusCode, statusMessage, headers);
    });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const r = this.ctx.responder;
    if (r.done) return;
    try {
      if (!r.chunk(chunk)) {
        controller.pause();
        r.onDrain ??= () => this.controller?.resume();
      }
    } catch (err) {
      guard(this.ctx, () => {
        throw err;
      });
    }
  }

  onResponseEnd(): void {
    this.release();
    this.ctx.responder.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, err: Error): void {
    this.release();
    const ctx = this.ctx;
    const r = ctx.responder;
    if (r.done) return;
    const body = ctx.body;
    body?.destroy();
    const code = (err as { code?: string }).code ?? '';
    let reason: Reason;
    if (TIMEOUT_CODES.has(code)) reason = 'upstream_timeout';
    else if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH' || body?.failed === 'client') reason = 'bad_request';
    else if (body?.failed === 'too_large') reason = 'payload_too_large';
    else if (body?.failed === 'idle') reason = 'request_timeout';
    else reason = 'upstream_unavailable';
    if (!r.started) {
      r.answer(PLAIN[reason]);
      return;
    }
    // Headers already went out: closing is the only honest answer.
    ctx.reason = reason;
    r.close();
  }
}
