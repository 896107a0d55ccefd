/**
 * Proof replay detection (RFC 9449 §11.1): a proof is accepted once. A proof is only
 * acceptable while its `iat` is inside the window, so its `jti` needs remembering until
 * then and no longer.
 */
import { proofFailure, type ProofFailure, type ProofSuccess } from './proof.js';

/**
 * Where used proofs are remembered. `remember` answers true the first time a key is
 * seen (before `untilMs`), false when it was seen already. A shared store (another
 * engineer's shared state) implements the same interface, possibly asynchronously.
 */
export interface ReplayStore {
  remember(jti: string, untilMs: number): boolean | Promise<boolean>;
}

/**
 * A shared store that cannot answer (Redis away, `state.onStoreDown: closed`): the
 * DPoP stage answers 503 rather than accept a proof another instance may have seen.
 */
export class ReplayUnavailableError extends Error {
  constructor(cause: string) {
    super(`the replay store is unavailable: ${cause}`);
    this.name = 'ReplayUnavailableError';
  }
}

export interface MemoryReplayStoreOptions {
  /** Milliseconds since the epoch. */
  readonly now: () => number;
  /**
   * Most entries kept (default 100,000). Size it for the peak rate of DPoP requests times
   * twice the iat window: beyond it the oldest entries are dropped early, and counted.
   */
  readonly max?: number;
}

/** Expired entries dropped from the front per call: the clean-up is spread over the calls. */
const SWEEP_PER_CALL = 4;

/**
 * The in-memory store: a Map in insertion order, which is nearly expiry order (every
 * entry lives for the same window after its proof's `iat`), swept from the front.
 */
export class MemoryReplayStore implements ReplayStore {
  private readonly entries = new Map<string, number>();
  private readonly now: () => number;
  private readonly max: number;
  /** Entries dropped before their expiry because the store was full (a replay of those would pass). */
  evictedLive = 0;

  constructor(options: MemoryReplayStoreOptions) {
    this.now = options.now;
    this.max = options.max ?? 100_000;
  }

  remember(jti: string, untilMs: number): boolean {
    const now = this.now();
    const seen = this.entries.get(jti);
    if (seen !== undefined) {
      if (seen > now) return false;
      this.entries.delete(jti);
    }
    this.sweep(now);
    if (untilMs <= now) return true; // outside the window already: nothing to remember
    this.entries.set(jti, untilMs);
    if (this.entries.size > this.max) {
      const [oldest, until] = this.entries.entries().next().value as [string, number];
      this.entries.delete(oldest);
      if (until > now) this.evictedLive++;
    }
    return true;
  }

  get size(): number {
    return this.entries.size;
  }

  private sweep(now: number): void {
    let n = 0;
    for (const [jti, until] of this.entries) {
      if (until > now || n++ >= SWEEP_PER_CALL) return;
      this.entries.delete(jti);
    }
  }
}

/**
 * The replay check of a verified proof: remembered under its key's thumbprint and `jti`
 * (so one client's `jti` values can never block another's) until its `iat` leaves the
 * window. Resolves to null the first time, to the `replayed` failure after.
 *
 * @example
 * const replay = await checkReplay(store, proof, 30);
 * if (replay) // 401 invalid_dpop_proof, reason `replayed`
 */
export async function checkReplay(store: ReplayStore, proof: ProofSuccess, iatWindowSec: number): Promise<ProofFailure | null> {
  const first = await store.remember(`${proof.jkt}:${proof.jti}`, (proof.iat + iatWindowSec) * 1000);
  return first ? null : proofFailure('replayed');
}
