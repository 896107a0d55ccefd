/**
 * `explain`'s stand-ins for what would write to a socket: the answerer keeps the
 * gateway's answer instead of writing it, and the pools keep the request the gateway
 * would send upstream instead of sending it. Everything before them is the real code.
 */
import type { Dispatcher } from 'undici';
import type { CompiledUpstream, GatewayState } from '../config/state.js';
import type { Answer } from '../pipeline/answer.js';
import type { Answerer } from '../pipeline/answerer.js';
import type { RequestContext } from '../pipeline/context.js';
import type { UpstreamPool, UpstreamPools } from '../proxy/pools.js';
import { REASONS } from '../reasons.js';

/** Takes the request's one answer, as the Responder would before writing it. */
export class RecordingAnswerer implements Answerer {
  done = false;
  readonly started = false;
  /** The answer the gateway would give; null while none (or when it forwarded). */
  answered: Answer | null = null;
  private ctx: RequestContext | null = null;

  bind(ctx: RequestContext): void {
    this.ctx = ctx;
  }

  answer(a: Answer): void {
    if (this.done) return;
    this.done = true;
    this.answered = a;
    const ctx = this.ctx!;
    ctx.reason = a.reason;
    ctx.status = REASONS[a.reason].status;
  }

  close(): void {
    this.done = true;
  }
}

/** The request forward() handed to an upstream pool. */
export interface RecordedDispatch {
  readonly upstream: CompiledUpstream;
  readonly options: Dispatcher.DispatchOptions;
}

/**
 * Upstream pools that record the one dispatch instead of connecting: what UpstreamCall
 * uses of a pool (a slot, and `pool.dispatch`) and nothing more.
 */
export function recordingPools(state: GatewayState, onDispatch: (d: RecordedDispatch) => void): UpstreamPools {
  const poolOf = (upstream: CompiledUpstream) => ({
    upstream,
    inFlight: 0,
    acquire: () => true,
    release: () => {},
    pool: {
      dispatch(options: Dispatcher.DispatchOptions): boolean {
        onDispatch({ upstream, options });
        return true;
      },
    },
  });
  const pools = {
    get(name: string): UpstreamPool {
      const u = state.upstreams.get(name);
      if (u === undefined) throw new Error(`no upstream ${name}`);
      return poolOf(u) as unknown as UpstreamPool;
    },
    entries: () => [][Symbol.iterator](),
    close: () => Promise.resolve(),
  };
  return pools as unknown as UpstreamPools;
}
