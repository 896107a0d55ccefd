import { Readable } from 'node:stream';
import type { BodyLimits } from '../config/state.js';
import type { RequestContext } from '../pipeline/context.js';
import { guard } from '../pipeline/boundary.js';
import { PLAIN } from '../pipeline/answer.js';

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
    private readonly ctx: RequestContext,
    private readonly limits: BodyLimits,
  ) {
    ctx.res.onData((ab, isLast) => {
      if (this.failed !== null || ctx.responder.done) return;
      guard(ctx, () => this.take(ab, isLast));
    });
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
    if (!this.ctx.responder.done) this.ctx.res.pause();
  }

  resumeClient(): void {
    if (this.ctx.responder.done) return;
    if (!this.complete && this.timer === null && this.failed === null) this.timer = setTimeout(this.onIdle, this.limits.idleMs);
    this.ctx.res.resume();
  }

  private stopTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private readonly onIdle = (): void => {
    this.timer = null;
    if (this.complete || this.failed !== null || this.ctx.responder.done) return;
    this.failed = 'idle';
    bodyFailed(this.ctx, 'request_timeout');
  };

  private take(ab: ArrayBuffer, isLast: boolean): void {
    this.received += ab.byteLength;
    const { maxBytes, bufferBytes } = this.limits;
    if (maxBytes > 0 && this.received > maxBytes) {
      this.failed = 'too_large';
      bodyFailed(this.ctx, 'payload_too_large');
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
    if (isLast) {
      // Never pause on the last chunk: nothing would resume it (a stream past its end is
      // not read for more), and uWS, paused, would not write the answer either; the
      // connection would sit until uWS's idle timeout closed it.
      if (chunk !== null) this.push(chunk);
      this.push(null);
      if (this.paused) {
        this.paused = false;
        this.body.resumeClient();
      }
      return;
    }
    if (chunk !== null && !this.push(chunk) && !this.paused) {
      this.paused = true;
      this.body.pauseClient();
    }
  }

  override _read(): void {
    if (this.paused) {
      this.paused = false;
      this.body.resumeClient();
    }
  }
}

/**
 * The request body failed (too large, client silent): answer (or close, once the answer
 * has started), and abort the upstream request.
 */
function bodyFailed(ctx: RequestContext, reason: 'payload_too_large' | 'request_timeout'): void {
  const r = ctx.responder;
  if (!r.done) {
    if (r.started) {
      ctx.reason = reason;
      r.close();
    } else r.answer(PLAIN[reason]);
  }
  ctx.upstream?.abort(new Error('request body failed'));
}
