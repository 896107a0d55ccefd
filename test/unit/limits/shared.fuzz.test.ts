/**
 * Property test of the shared rate limit (src/limits/shared.ts) against a model of the
 * rule README "Running several instances" documents: an instance admits a request when
 * its own count in the aligned window plus the others' total it learned at its last sync
 * that carried a count of its own is below `points`; a sync sends what it counted since
 * the last one; a failed sync keeps it; a window's counts end with the window. Any
 * sequence of requests, syncs, outages and clock steps across 2-4 instances must give
 * exactly the model's answers, the store must end up holding exactly what was admitted,
 * and no window ever admits more than instances × points.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createRateLimits, type RateLimits } from '../../../src/limits/limits.js';
import type { CompiledRouteRateLimit } from '../../../src/config/observe-schema.js';
import { SimRedis, type SimStore } from './store-sim.js';

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 300);
const SEED = process.env['FUZZ_SEED'] !== undefined ? Number(process.env['FUZZ_SEED']) : 42;
const WINDOW = 10_000;

type Op = { kind: 'hit'; who: number; key: number } | { kind: 'sync'; who: number } | { kind: 'outage'; up: boolean } | { kind: 'tick'; ms: number };

const op = (n: number): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('hit' as const), who: fc.nat(n - 1), key: fc.nat(2) }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('sync' as const), who: fc.nat(n - 1) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('outage' as const), up: fc.boolean() }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 4000 }) }) },
  );

/** The model of one instance's knowledge of one key in the current window. */
interface Known {
  own: number;
  unsynced: number;
  sent: number;
  others: number;
}

describe('the shared rate limit, against its model', () => {
  it('answers every request as the documented rule says, loses no count, and never admits more than instances × points', () => {
    const scenario = fc.integer({ min: 2, max: 4 }).chain((n) => fc.record({ n: fc.constant(n), points: fc.integer({ min: 1, max: 6 }), ops: fc.array(op(n), { maxLength: 80 }) }));
    fc.assert(
      fc.property(scenario, ({ n, points, ops }) => {
        let now = 1_700_000_000_000;
        const redis = new SimRedis();
        const stores: SimStore[] = [];
        const limits: RateLimits[] = [];
        for (let i = 0; i < n; i++) {
          const s = redis.store();
          stores.push(s);
          limits.push(
            createRateLimits({ maxKeys: 1000, ipv6Prefix: 64, address: { points, windowMs: WINDOW }, subject: null, spraying: null, routes: new Map<string, CompiledRouteRateLimit>() }, { now: () => now, shared: s }),
          );
        }
        // The model: per instance and key, for the current window; the store's totals by window and key.
        const model = new Map<string, Known>();
        const totals = new Map<string, number>();
        const admitted = new Map<string, number>();
        const windowOf = () => Math.floor(now / WINDOW);
        const known = (who: number, key: number): Known => {
          const id = `${who}:${windowOf()}:${key}`;
          let k = model.get(id);
          if (k === undefined) model.set(id, (k = { own: 0, unsynced: 0, sent: 0, others: 0 }));
          return k;
        };
        for (const o of ops) {
          if (o.kind === 'tick') now += o.ms;
          else if (o.kind === 'outage') redis.up = o.up;
          else if (o.kind === 'hit') {
            const k = known(o.who, o.key);
            const expectAdmit = k.own + k.others < points;
            const wait = limits[o.who]!.checkAddress('r', `10.0.0.${o.key}`);
            expect(wait === 0).toBe(expectAdmit);
            if (expectAdmit) {
              k.own++;
              k.unsynced++;
              const id = `${windowOf()}:${o.key}`;
              admitted.set(id, (admitted.get(id) ?? 0) + 1);
              expect(admitted.get(id)).toBeLessThanOrEqual(n * points);
            } else {
              expect(wait).toBe(Math.max(1, Math.ceil(((windowOf() + 1) * WINDOW - now) / 1000)));
            }
          } else {
            stores[o.who]!.sync(now);
            if (!redis.up) continue;
            for (let key = 0; key <= 2; key++) {
              const k = known(o.who, key);
              if (k.unsynced === 0) continue; // nothing of its own to send: it learns nothing
              const id = `${windowOf()}:${key}`;
              const total = (totals.get(id) ?? 0) + k.unsynced;
              totals.set(id, total);
              k.sent += k.unsynced;
              k.unsynced = 0;
              k.others = total - k.sent;
            }
          }
        }
        // Everything admitted in the current window reaches the store once it is up and every instance synced.
        redis.up = true;
        for (const s of stores) s.sync(now);
        const w = windowOf();
        for (let key = 0; key <= 2; key++) {
          const stored = redis.totals.get(`rl:address:${WINDOW}:${w}:10.0.0.${key}`) ?? 0;
          expect(stored).toBe(admitted.get(`${w}:${key}`) ?? 0);
        }
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});
