/**
 * The sync of rate-limit and spraying counts (README "Running several instances"):
 * every `state.syncInterval`, the counts each shared limiter made since the last sync
 * (src/limits/shared.ts) are added to their window's counter in Redis and the totals read
 * back, in one Lua script per batch: one round trip, each counter `INCRBY` its delta and
 * `PEXPIREAT` the end of its window (plus a second for lagging clocks), so a window's
 * counters disappear by themselves. A sync that fails keeps its deltas for the next one:
 * while Redis is away, counting is local (what the instance counted, plus the others'
 * total it last learned in that window), never looser.
 *
 * Spraying blocks go the other way at once: a block one instance begins is written to a
 * sorted set (member: the address key, score: when the block ends) and published on the
 * instances' channel; every instance loads the blocks still running when it (re)connects.
 */
import type { SharedLimitStore, SyncItem, SyncSource } from '../limits/shared.js';
import type { RedisLink } from './redis.js';

/** Keys per script call: a batch stays a small command (Redis runs a script to its end before anything else). */
const BATCH = 500;

/** KEYS: counters; ARGV: delta and expiry (ms since the epoch) of each. Returns the totals. */
export const SYNC_SCRIPT = `
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('INCRBY', key, ARGV[2 * i - 1])
  redis.call('PEXPIREAT', key, ARGV[2 * i])
end
return out`;

/** The spraying blocks that are still running when an instance (re)connects: at most this many are read. */
const MAX_BLOCKS_LOADED = 100_000;
/** Blocks begun during an outage kept for writing afterwards, at most (they are enforced here meanwhile either way). */
const MAX_UNWRITTEN = 10_000;

interface SyncCommands {
  mfaGatewaySync(numKeys: number, ...args: (string | number)[]): Promise<number[]>;
}

export interface CounterSyncOptions {
  readonly link: RedisLink;
  readonly keyPrefix: string;
  readonly intervalMs: number;
  readonly now: () => number;
  /** Sends a message to the other instances (the revocation bridge owns the channel format). */
  readonly publish: (message: Record<string, unknown>) => Promise<void>;
  /** A sync ended: ok (counts sent and totals read back, or nothing to send), or failed: Redis away, counts kept. */
  readonly onSync?: (ok: boolean) => void;
}

export class CounterSync implements SharedLimitStore {
  private readonly sources = new Set<SyncSource>();
  private readonly blockListeners: ((key: string, untilMs: number) => void)[] = [];
  private readonly timer: NodeJS.Timeout;
  private running: Promise<void> | null = null;
  private readonly blocksKey: string;
  /** Blocks begun here that could not be written (Redis away): written when it is reached again. */
  private readonly unwritten = new Map<string, number>();

  constructor(private readonly o: CounterSyncOptions) {
    o.link.commands.defineCommand('mfaGatewaySync', { lua: SYNC_SCRIPT });
    this.blocksKey = `${o.keyPrefix}spray:blocks`;
    this.timer = setInterval(() => void this.sync(), o.intervalMs);
    this.timer.unref();
  }

  register(source: SyncSource): void {
    this.sources.add(source);
  }

  unregister(source: SyncSource): void {
    this.sources.delete(source);
  }

  onBlock(listener: (key: string, untilMs: number) => void): void {
    this.blockListeners.push(listener);
  }

  publishBlock(key: string, untilMs: number): void {
    void this.writeBlock(key, untilMs);
  }

  /** A block another instance published. */
  receivedBlock(key: string, untilMs: number): void {
    for (const l of this.blockListeners) l(key, untilMs);
  }

  /** On (re)connecting: the blocks begun here meanwhile are written, then every running one is loaded. */
  async resync(): Promise<void> {
    for (const [key, until] of [...this.unwritten]) {
      this.unwritten.delete(key);
      await this.writeBlock(key, until, true);
    }
    const now = this.o.now();
    const rows = await this.o.link.commands.zrangebyscore(this.blocksKey, `(${now}`, '+inf', 'WITHSCORES', 'LIMIT', 0, MAX_BLOCKS_LOADED);
    for (let i = 0; i + 1 < rows.length; i += 2) this.receivedBlock(rows[i]!, Number(rows[i + 1]));
  }

  /** One round now (also what the interval runs); resolves when it is over. */
  sync(): Promise<void> {
    this.running ??= this.round().finally(() => (this.running = null));
    return this.running;
  }

  /** Stops the interval after one last round (best effort: a gateway stopping does not wait on Redis). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.sync();
  }

  /** One sync: every count since the last one sent, the totals read back; reported ok or failed (counts kept). */
  private async round(): Promise<void> {
    const items: SyncItem[] = [];
    const now = this.o.now();
    for (const s of this.sources) s.drain(now, items);
    const link = this.o.link;
    if (!link.isUp()) {
      for (const it of items) it.failed();
      this.o.onSync?.(false);
      return;
    }
    const run = (link.commands as unknown as SyncCommands).mfaGatewaySync.bind(link.commands);
    for (let at = 0; at < items.length; at += BATCH) {
      const batch = items.slice(at, at + BATCH);
      const args: (string | number)[] = batch.map((it) => `${this.o.keyPrefix}${it.storeKey}`);
      for (const it of batch) args.push(it.delta, it.expireAtMs);
      try {
        const totals = await run(batch.length, ...args);
        link.succeeded();
        batch.forEach((it, i) => it.done(Number(totals[i])));
      } catch (err) {
        link.failed(err);
        for (const it of items.slice(at)) it.failed();
        this.o.onSync?.(false);
        return;
      }
    }
    this.o.onSync?.(true);
  }

  private async writeBlock(key: string, untilMs: number, replay = false): Promise<void> {
    if (!this.o.link.isUp() && !replay) {
      this.keep(key, untilMs);
      return;
    }
    try {
      const results = await this.o.link.commands
        .multi()
        // GT: a block is only ever lengthened, whichever instance writes last.
        .zadd(this.blocksKey, 'GT', untilMs, key)
        .zremrangebyscore(this.blocksKey, '-inf', this.o.now())
        .exec();
      const refused = results?.find(([e]) => e !== null);
      if (refused !== undefined) throw refused[0];
      await this.o.publish({ type: 'block', key, until: untilMs });
      this.o.link.succeeded();
    } catch (err) {
      this.keep(key, untilMs);
      if (!replay) this.o.link.failed(err);
      else throw err;
    }
  }

  /** Keeps a block for writing later, the latest end of each address; bounded (the oldest dropped first). */
  private keep(key: string, untilMs: number): void {
    const was = this.unwritten.get(key) ?? 0;
    this.unwritten.delete(key);
    this.unwritten.set(key, Math.max(untilMs, was));
    if (this.unwritten.size > MAX_UNWRITTEN) this.unwritten.delete(this.unwritten.keys().next().value!);
  }
}
