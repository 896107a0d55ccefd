/**
 * The Redis half of the shared state (README "Running several instances"), imported by
 * ./index.ts only when `state.store` is `redis`: the connection (./redis.ts), the sync
 * of rate-limit and spraying counts (./counters.ts), the revocation bridge
 * (./revocations.ts) and the shared replay store (./replay.ts). The messages on the
 * events channel are described in ./index.ts.
 */
import { randomBytes } from 'node:crypto';
import type { GatewayState } from '../config/state.js';
import type { CompiledRedis } from '../config/state-schema.js';
import { CounterSync } from './counters.js';
import type { SharedState, SharedStateOptions } from './index.js';
import { RedisLink, redisAddress, type LinkStatus } from './redis.js';
import { SharedReplayStore } from './replay.js';
import { RevocationBridge } from './revocations.js';

/** `state.store: redis`: waits for the first connection at most its connect timeout. */
export async function startRedisState(state: GatewayState, cfg: CompiledRedis, o: SharedStateOptions): Promise<SharedState> {
  const instance = randomBytes(8).toString('hex');
  const channel = `${cfg.keyPrefix}events`;
  const address = redisAddress(cfg.url);
  const onStoreDown = state.state.onStoreDown;
  let wasUp = false;
  let acceptedLocallyLogged = false;
  let loaded = 0;
  let sync: CounterSync | undefined;
  let bridge: RevocationBridge | undefined;

  const onMessage = (text: string): void => {
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return; // not one of ours
    }
    if (m === null || typeof m !== 'object' || m['from'] === instance) return;
    if (m['type'] === 'revocation') bridge?.received(m['op'], m['entry']);
    else if (m['type'] === 'block' && typeof m['key'] === 'string' && typeof m['until'] === 'number') sync?.receivedBlock(m['key'], m['until']);
  };
  const onChange = (s: LinkStatus): void => {
    if (s.up) {
      o.log('info', wasUp ? 'state store up again: counts shared, revocations and spraying blocks reloaded' : 'state store connected', { store: 'redis', redis: address, revocationsLoaded: loaded });
      wasUp = true;
      acceptedLocallyLogged = false;
      return;
    }
    // Once per outage (README "Redis outages"): what each part does until Redis is back.
    o.log('warn', 'state store down: rate limits and spraying count locally; revocations already loaded stay enforced; reconnecting', {
      store: 'redis',
      redis: address,
      error: s.error,
      dpop: onStoreDown === 'closed' ? 'DPoP requests answered 503 (state.onStoreDown: closed)' : "DPoP proofs checked by this instance's replay store alone (state.onStoreDown: open)",
    });
  };
  const link = new RedisLink({
    cfg,
    now: o.now,
    log: o.log,
    channel,
    onMessage,
    onConnected: async () => {
      loaded = await bridge!.resync();
      await sync!.resync();
    },
    onChange,
    ...(o.env !== undefined ? { env: o.env } : {}),
  });
  const publish = async (message: Record<string, unknown>): Promise<void> => {
    await link.commands.publish(channel, JSON.stringify({ from: instance, ...message }));
  };
  sync = new CounterSync({ link, keyPrefix: cfg.keyPrefix, intervalMs: state.state.syncIntervalMs, now: o.now, publish, onSync: o.onSync });
  bridge = new RevocationBridge({ list: o.revocations, link, keyPrefix: cfg.keyPrefix, channel, instance, now: o.now });
  const replay = new SharedReplayStore({
    local: o.replay,
    link,
    keyPrefix: cfg.keyPrefix,
    onStoreDown,
    now: o.now,
    acceptedLocally: () => {
      if (acceptedLocallyLogged) return;
      acceptedLocallyLogged = true;
      o.log('warn', "DPoP proof accepted on this instance's replay check alone: the state store is down (state.onStoreDown: open); another instance may accept the same proof until Redis is back", { store: 'redis', redis: address });
    },
  });
  await link.start(cfg.connectTimeoutMs + 2 * cfg.commandTimeoutMs);
  if (!link.isUp()) {
    o.log('warn', 'state store unreachable at start: serving with local counts and no shared revocations until it answers; reconnecting', { store: 'redis', redis: address, error: link.status().error });
  }
  return {
    limits: { shared: sync, onSharedBlock: o.sprayingBlocked },
    replay,
    up: () => link.isUp(),
    readiness: () => {
      const s = link.status();
      return { store: 'redis', redis: address, up: s.up, since: s.since, ...(s.error !== null ? { error: s.error } : {}), onStoreDown };
    },
    async close() {
      await sync.close();
      bridge.close();
      await link.close();
    },
  };
}
