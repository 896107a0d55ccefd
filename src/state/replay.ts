/**
 * Used DPoP proofs and logout tokens shared by every instance (RFC 9449 §11.1,
 * Back-Channel Logout 1.0 §2.6 step 8; README "Running several instances"): one atomic
 * `SET key 1 PX ttl NX` per proof, so of two instances given the same proof exactly one
 * gets `OK`. The process's own MemoryReplayStore is asked first: a replay at the same
 * instance is refused without a round trip.
 *
 * With Redis away (known down, or the command failing within `commandTimeout`),
 * `onStoreDown` decides: `closed` rejects with ReplayUnavailableError (the DPoP request
 * answers 503 `temporarily_unavailable`), `open` accepts on the local check alone and
 * says so in the log, once per outage.
 */
import { ReplayUnavailableError, type MemoryReplayStore, type ReplayStore } from '../dpop/replay.js';
import type { RedisLink } from './redis.js';
import { causeOf } from './redis.js';

export interface SharedReplayOptions {
  readonly local: MemoryReplayStore;
  readonly link: RedisLink;
  readonly keyPrefix: string;
  readonly onStoreDown: 'closed' | 'open';
  readonly now: () => number;
  /** The first proof accepted on the local check alone in an outage (`open`): logged once. */
  readonly acceptedLocally: () => void;
}

export class SharedReplayStore implements ReplayStore {
  constructor(private readonly o: SharedReplayOptions) {}

  remember(key: string, untilMs: number): boolean | Promise<boolean> {
    if (!this.o.local.remember(key, untilMs)) return false;
    const ttl = Math.ceil(untilMs - this.o.now());
    if (ttl <= 0) return true; // outside the window already: nothing to remember
    if (!this.o.link.isUp()) return this.unavailable(this.o.link.status().error ?? 'down');
    return this.o.link.commands.set(`${this.o.keyPrefix}replay:${key}`, '1', 'PX', ttl, 'NX').then(
      (ok) => {
        this.o.link.succeeded();
        return ok === 'OK';
      },
      (err: unknown) => {
        this.o.link.failed(err);
        return this.unavailable(causeOf(err));
      },
    );
  }

  private unavailable(cause: string): true | Promise<never> {
    if (this.o.onStoreDown === 'closed') return Promise.reject(new ReplayUnavailableError(cause));
    this.o.acceptedLocally();
    return true;
  }
}
