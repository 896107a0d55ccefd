/**
 * The shared-state parts of a gateway process (README "Running several instances"),
 * built once by src/gateway.ts's startProcess and owned by the process: with
 * `state.store: memory` nothing (every part stays in this process); with `redis`, the
 * connection (./redis.ts), the sync of rate-limit and spraying counts (./counters.ts),
 * the revocation bridge (./revocations.ts) and the shared replay store (./replay.ts),
 * each behind the interface the pipeline already uses, so the hot path stays
 * synchronous: a cache-hit request never waits on Redis.
 *
 * Every instance publishes on one channel, `<keyPrefix>events`, JSON messages with the
 * sending instance's random id (`from`), which it skips on receipt:
 * `{"type":"revocation","op":"add"|"remove","entry":{…}}` and `{"type":"block","key","until"}`.
 *
 * The Redis parts (./redis-state.ts, and through it ioredis) are imported only when
 * `state.store` is `redis`: with `memory` a process never loads them. Every module a
 * process loads stays in its heap, and each full GC marks it (without ioredis the heap
 * is 1.3 MB smaller: README "Which Redis client").
 */
import type { GatewayState } from '../config/state.js';
import type { ReplayStore, MemoryReplayStore } from '../dpop/replay.js';
import type { RateLimitOptions } from '../limits/limits.js';
import type { RevocationList } from '../revocation/list.js';
import type { LogFn } from './redis.js';

export interface SharedState {
  /** What createRateLimits needs to share counts (nothing with `memory`). */
  readonly limits: Pick<RateLimitOptions, 'shared' | 'onSharedBlock'>;
  /** The replay store the DPoP and logout stages use. */
  readonly replay: ReplayStore;
  /** 1 while the store answers (the `mfa_gateway_state_store_up` gauge). */
  up(): boolean;
  /** For /readyz: the store and its state (the gateway stays ready either way: it still serves). */
  readiness(): Record<string, unknown>;
  /** One last sync (best effort), then the connections close. */
  close(): Promise<void>;
}

export interface SharedStateOptions {
  readonly now: () => number;
  readonly log: LogFn;
  /** The process's revocation list and its local replay store (src/lifecycle.ts). */
  readonly revocations: RevocationList;
  readonly replay: MemoryReplayStore;
  /** A sync of counts ended (the metrics). */
  readonly onSync: (ok: boolean) => void;
  /** A spraying block this instance began from the counts of others (logged and counted as any block). */
  readonly sprayingBlocked: (key: string) => void;
  readonly env?: NodeJS.ProcessEnv;
}

/** Builds the shared-state parts of `state.state`; with Redis, waits for the first connection at most its connect timeout. */
export async function startSharedState(state: GatewayState, o: SharedStateOptions): Promise<SharedState> {
  const cfg = state.state.redis;
  if (state.state.store === 'memory' || cfg === null) {
    return { limits: {}, replay: o.replay, up: () => true, readiness: () => ({ store: 'memory', up: true }), close: async () => {} };
  }
  const { startRedisState } = await import('./redis-state.js');
  return startRedisState(state, cfg, o);
}
