/**
 * The revocation list shared by every instance (README "Running several instances"):
 * each instance keeps its own list (src/revocation/list.ts, whose synchronous `check`
 * refuses on every request, cache hits included: a cached token needs no eviction), and
 * this bridge copies changes between the lists through Redis.
 *
 * - A local add (a back-channel logout, `POST /revocations`) or removal (`DELETE`) is
 *   written to a hash (field `issuer NUL kind NUL value`, value `cutoffSec expiresAtMs`,
 *   widened to the later cutoff and expiry when the entry exists) with its expiry in a
 *   sorted set, and published in the same script, so no instance can read the hash
 *   without the change or get the message before the hash holds it.
 * - A received change is applied with `origin: 'shared'`, which this bridge's own
 *   listener skips: nothing is echoed back.
 * - On (re)connecting, the changes that could not be written meanwhile are written,
 *   then the whole list is loaded (entries not expired yet). Entries already loaded stay
 *   enforced while Redis is away: an outage can only keep a token refused, never let a
 *   revoked one through. Entries the list holds that Redis lacks (Redis restarted without
 *   persistence) are written back, so a removal made elsewhere while this instance could
 *   not hear of it is undone when it reconnects: the conservative direction.
 *
 * Expiries and evictions are each list's own business and are not copied.
 */
import type { RevocationChange, RevocationEntry, RevocationKind, RevocationList } from '../revocation/list.js';
import { REVOCATION_KINDS } from '../revocation/list.js';
import type { RedisLink } from './redis.js';

/** The `origin` of changes this bridge applies: its listener never sends them back. */
export const SHARED_ORIGIN = 'shared';

/** KEYS: the hash, the expiry set; ARGV: field, cutoffSec, expiresAtMs, now (ms), channel, message. */
export const ADD_SCRIPT = `
local cutoff, expires = tonumber(ARGV[2]), tonumber(ARGV[3])
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local c, e = string.match(old, '^(%S+) (%S+)$')
  if c then cutoff = math.max(cutoff, tonumber(c)); expires = math.max(expires, tonumber(e)) end
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.0f %.0f', cutoff, expires))
redis.call('ZADD', KEYS[2], expires, ARGV[1])
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[4], 'LIMIT', 0, 100)
for _, f in ipairs(gone) do
  redis.call('HDEL', KEYS[1], f)
  redis.call('ZREM', KEYS[2], f)
end
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1`;

/** KEYS: the hash, the expiry set; ARGV: field, channel, message. */
export const REMOVE_SCRIPT = `
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1`;

interface BridgeCommands {
  mfaGatewayRevoke(numKeys: number, ...args: (string | number)[]): Promise<number>;
  mfaGatewayUnrevoke(numKeys: number, ...args: (string | number)[]): Promise<number>;
}

type Change = { readonly op: 'add' | 'remove'; readonly entry: RevocationEntry };

/** Changes made during an outage kept for writing afterwards, at most (the oldest dropped first). */
const MAX_UNWRITTEN = 10_000;
/** Entries written back at once after a reconnect (ioredis pipelines the commands of one batch). */
const RESTORE_BATCH = 500;

export interface RevocationBridgeOptions {
  readonly list: RevocationList;
  readonly link: RedisLink;
  readonly keyPrefix: string;
  readonly channel: string;
  readonly instance: string;
  readonly now: () => number;
}

const fieldOf = (e: Pick<RevocationEntry, 'issuer' | 'kind' | 'value'>): string => `${e.issuer}\u0000${e.kind}\u0000${e.value}`;

export class RevocationBridge {
  private readonly hash: string;
  private readonly expiry: string;
  private readonly unwritten = new Map<string, Change>();
  private readonly stop: () => void;

  constructor(private readonly o: RevocationBridgeOptions) {
    this.hash = `${o.keyPrefix}revocations`;
    this.expiry = `${o.keyPrefix}revocations:expiry`;
    o.link.commands.defineCommand('mfaGatewayRevoke', { lua: ADD_SCRIPT });
    o.link.commands.defineCommand('mfaGatewayUnrevoke', { lua: REMOVE_SCRIPT });
    this.stop = o.list.onChange((c) => this.changed(c));
  }

  close(): void {
    this.stop();
  }

  /** A change another instance published (`entry` as sent: checked here, it crossed the network). */
  received(op: unknown, entry: unknown): void {
    const e = asEntry(entry);
    if (e === null) return;
    try {
      if (op === 'add') this.o.list.add(e, SHARED_ORIGIN);
      else if (op === 'remove') this.o.list.remove(e.issuer, e.kind, e.value, SHARED_ORIGIN);
    } catch {
      // An entry this list refuses (a value too long): another instance's business.
    }
  }

  /**
   * On (re)connecting: writes what failed meanwhile, loads every entry, and writes back
   * the entries this list holds that Redis lacks (a Redis restarted without persistence
   * has lost them). Returns how many were loaded.
   */
  async resync(): Promise<number> {
    for (const [field, change] of [...this.unwritten]) {
      this.unwritten.delete(field);
      await this.write(change, true);
    }
    const all = await this.o.link.commands.hgetall(this.hash);
    const missing = this.o.list.list().filter((e) => all[fieldOf(e)] === undefined);
    for (let at = 0; at < missing.length; at += RESTORE_BATCH) {
      await Promise.all(missing.slice(at, at + RESTORE_BATCH).map((entry) => this.write({ op: 'add', entry }, true)));
    }
    const now = this.o.now();
    let n = 0;
    for (const [field, value] of Object.entries(all)) {
      const [issuer, kind, v] = field.split('\u0000');
      const m = /^(\d+) (\d+)$/.exec(value);
      if (m === null || v === undefined) continue;
      const e = asEntry({ issuer, kind, value: v, cutoffSec: Number(m[1]), expiresAtMs: Number(m[2]) });
      if (e === null || e.expiresAtMs <= now) continue;
      this.received('add', e);
      n++;
    }
    return n;
  }

  private changed(c: RevocationChange): void {
    if (c.origin === SHARED_ORIGIN) return;
    if (c.op === 'remove' && c.why !== 'removed') return; // expiry and eviction: each list's own
    void this.write({ op: c.op, entry: c.entry });
  }

  private async write(change: Change, replay = false): Promise<void> {
    const field = fieldOf(change.entry);
    if (!this.o.link.isUp() && !replay) return this.keep(field, change);
    const message = JSON.stringify({ from: this.o.instance, type: 'revocation', op: change.op, entry: change.entry });
    const cmds = this.o.link.commands as unknown as BridgeCommands;
    try {
      if (change.op === 'add') {
        const e = change.entry;
        await cmds.mfaGatewayRevoke(2, this.hash, this.expiry, field, e.cutoffSec, e.expiresAtMs, this.o.now(), this.o.channel, message);
      } else {
        await cmds.mfaGatewayUnrevoke(2, this.hash, this.expiry, field, this.o.channel, message);
      }
      this.o.link.succeeded();
    } catch (err) {
      this.keep(field, change);
      if (replay) throw err;
      this.o.link.failed(err);
    }
  }

  /** The latest change of each entry is what must reach Redis. */
  private keep(field: string, change: Change): void {
    this.unwritten.delete(field);
    this.unwritten.set(field, change);
    if (this.unwritten.size > MAX_UNWRITTEN) this.unwritten.delete(this.unwritten.keys().next().value!);
  }
}

/** An entry received from Redis or another instance, or null when it is not one. */
function asEntry(v: unknown): RevocationEntry | null {
  if (v === null || typeof v !== 'object') return null;
  const e = v as Record<string, unknown>;
  const { issuer, kind, value, cutoffSec, expiresAtMs } = e;
  if (typeof issuer !== 'string' || typeof value !== 'string' || !REVOCATION_KINDS.includes(kind as RevocationKind)) return null;
  if (typeof cutoffSec !== 'number' || typeof expiresAtMs !== 'number' || !Number.isFinite(cutoffSec) || !Number.isFinite(expiresAtMs)) return null;
  return { issuer, kind: kind as RevocationKind, value, cutoffSec, expiresAtMs };
}
