import type { CompiledRoute, GatewayState } from '../config/state.js';
import type { Answer } from './answer.js';
import type { RequestContext } from './context.js';

/** A stage's verdict: pass the request on to the next stage. */
export const NEXT = Symbol('next');

/** What a stage returns: NEXT, an answer that ends the request, or a promise of either (only where the work is). */
export type StageResult = typeof NEXT | Answer | Promise<typeof NEXT | Answer>;

/**
 * One step of the pipeline (docs/architecture.md, "Stages"). A stage reads and fills the
 * request context and knows nothing of its neighbours. It is synchronous unless its work
 * needs I/O (a cache-miss verification); a stage that has nothing to do for a route says
 * so at compile time (`applies`), and is then left out of that route's chain.
 */
export interface Stage {
  readonly name: string;
  readonly run: (ctx: RequestContext) => StageResult;
  /** Whether a route needs this stage at all (default: every route). Read once per state. */
  readonly applies?: (route: CompiledRoute, state: GatewayState) => boolean;
}
