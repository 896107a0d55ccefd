import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { GatewayState } from '../config/state.js';
import { RequestContext } from '../pipeline/context.js';
import { fail } from '../pipeline/boundary.js';
import { handle } from '../pipeline/pipeline.js';
import type { Services } from '../pipeline/services.js';
import { Responder } from './responder.js';
import { FAILPOINTS_ARMED, failpointUncaught } from '../failpoints.js';

/** The one pointer a reload swaps: requests read it once, when they arrive. */
export interface StateHolder {
  current: GatewayState;
}

/**
 * The uWS handler of the public listener: copies the request out of uWS (its `req` is
 * invalid once the handler returns), binds it to the state current at its arrival, and
 * runs the pipeline, all inside the request's boundary (src/pipeline/boundary.ts).
 */
export function frontHandler(services: Services, holder: StateHolder, accepted: () => void): (res: HttpResponse, req: HttpRequest) => void {
  return (res, req) => {
    let ctx: RequestContext | null = null;
    try {
      const responder = new Responder(res);
      ctx = new RequestContext(res, req, holder.current, services, responder);
      responder.bind(ctx);
      accepted();
      handle(ctx);
      if (FAILPOINTS_ARMED) failpointUncaught('thread-exit', ctx.matchPath ?? '');
    } catch (err) {
      if (ctx !== null) fail(ctx, err);
      else {
        // Failed before the request existed (copying it out of uWS): answer from here.
        services.internalError(null, err);
        res.writeStatus('500 Internal Server Error').writeHeader('content-type', 'application/json').end('{"error":"internal_error"}', true);
      }
    }
  };
}
