import type { RequestContext } from './context.js';
import { PLAIN } from './answer.js';

/**
 * The per-request boundary. Every callback a request registers (the uWS handler and
 * its onData / onWritable / onAborted, undici's handler, the continuation of a cache-miss
 * verification) runs through `guard`, so an exception answers that one request 500
 * `internal` (or closes its connection once the answer has started), is reported once,
 * and goes no further: no request can end the process.
 */
export function guard(ctx: RequestContext, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    fail(ctx, err);
  }
}

/** The boundary's answer to an exception (see guard); once per request, whatever happens next. */
export function fail(ctx: RequestContext, err: unknown): void {
  if (ctx.failed) return;
  ctx.failed = true;
  try {
    ctx.services.internalError(ctx, err);
  } catch {
    // reporting must not throw out of the boundary
  }
  const r = ctx.responder;
  // Answer (or close) first: aborting undici calls its error callback synchronously, which
  // must find the response already done.
  if (!r.done) {
    if (r.started) {
      ctx.reason = 'internal';
      r.close();
    } else r.answer(PLAIN.internal);
  }
  ctx.upstream?.abort(new Error('request failed at the gateway'));
}
