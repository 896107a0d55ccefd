/**
 * The revocation list against a plain model (property-based): any sequence of adds,
 * removals, clock moves and sweeps leaves the same entries, the same answers to `check`
 * and the same counts as an array that does everything the slow way. The list's heap,
 * chains and counters have to agree with it after every step. A fixed seed in the normal
 * run; FUZZ_RUNS and FUZZ_SEED run a longer campaign.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Principal } from '../../../src/authz/claims.js';
import { RevocationList, type RevocationEntry, type RevocationKind } from '../../../src/revocation/list.js';

const RUNS = Number.parseInt(process.env['FUZZ_RUNS'] ?? '', 10) || 2000;
const SEED = process.env['FUZZ_SEED'] ? Number.parseInt(process.env['FUZZ_SEED'], 10) : 42;
const LIMIT_MS = Math.max(15_000, RUNS * 5);

const T0 = 1_800_000_000_000;
const LIFETIME = 600_000;
const MAX = 5;
const issuers = ['a', 'b'] as const;
const kinds: RevocationKind[] = ['sub', 'sid', 'jti'];
const values = ['v1', 'v2', 'v3'] as const;

type Op =
  | { op: 'add'; issuer: string; kind: RevocationKind; value: string; cutoff: number }
  | { op: 'remove'; issuer: string; kind: RevocationKind; value: string }
  | { op: 'advance'; ms: number }
  | { op: 'sweep' };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('add' as const), issuer: fc.constantFrom(...issuers), kind: fc.constantFrom(...kinds), value: fc.constantFrom(...values), cutoff: fc.integer({ min: -700, max: 60 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('remove' as const), issuer: fc.constantFrom(...issuers), kind: fc.constantFrom(...kinds), value: fc.constantFrom(...values) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 300_000 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'sweep' as const }) },
);

/** Every principal the checks try: each issuer, value combination and a few iat values. */
function principals(nowSec: number): Principal[] {
  const out: Principal[] = [];
  for (const issuer of issuers) {
    for (const v of values) {
      for (const iat of [undefined, nowSec - 800, nowSec - 100, nowSec, nowSec + 100]) {
        out.push({
          issuer, iss: 'x', subject: v, exp: nowSec + 600, amr: undefined, acr: undefined, authTime: undefined, roles: [], scopes: [], groups: [],
          sub: v, sid: v, jti: v, iat, cnfJkt: undefined, clientId: undefined,
        });
      }
    }
  }
  return out;
}

describe('RevocationList against a model (property-based)', () => {
  it(
    'agrees on entries, answers and counts after every step',
    () => {
      fc.assert(
        fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
          const clock = { t: T0 };
          const list = new RevocationList({ now: () => clock.t, maxTokenLifetimeMs: LIFETIME, max: MAX });
          let model: RevocationEntry[] = [];
          let evicted = 0;
          let expired = 0;
          const sweep = () => {
            const keep = model.filter((e) => e.expiresAtMs > clock.t);
            expired += model.length - keep.length;
            model = keep;
          };
          const same = (e: RevocationEntry, o: { issuer: string; kind: RevocationKind; value: string }) => e.issuer === o.issuer && e.kind === o.kind && e.value === o.value;
          ops.forEach((o, i) => {
            if (o.op === 'add') {
              // A distinct fraction per step: no two entries ever tie on expiry, so "nearest to expiry" is one entry.
              const cutoffSec = clock.t / 1000 + o.cutoff + i / 1000;
              list.add({ issuer: o.issuer, kind: o.kind, value: o.value, cutoffSec });
              sweep();
              const old = model.find((e) => same(e, o));
              const expiresAtMs = cutoffSec * 1000 + LIFETIME;
              if (old) {
                model = model.map((e) => (e === old ? { ...e, cutoffSec: Math.max(e.cutoffSec, cutoffSec), expiresAtMs: Math.max(e.expiresAtMs, expiresAtMs) } : e));
              } else if (expiresAtMs > clock.t) {
                while (model.length >= MAX) {
                  const soonest = model.reduce((m, e) => (e.expiresAtMs < m.expiresAtMs ? e : m));
                  model = model.filter((e) => e !== soonest);
                  evicted++;
                }
                model.push({ issuer: o.issuer, kind: o.kind, value: o.value, cutoffSec, expiresAtMs });
              }
            } else if (o.op === 'remove') {
              const had = model.some((e) => same(e, o));
              expect(list.remove(o.issuer, o.kind, o.value)).toBe(had);
              model = model.filter((e) => !same(e, o));
            } else if (o.op === 'advance') {
              clock.t += o.ms;
            } else {
              list.sweep();
              sweep();
            }
            // check() does not sweep: entries past expiry still answer until a sweep, in both.
            for (const p of principals(clock.t / 1000)) {
              const hit = list.check(p);
              const want = (['jti', 'sid', 'sub'] as const)
                .map((kind) => model.find((e) => e.issuer === p.issuer && e.kind === kind && e.value === p[kind]))
                .find((e) => e !== undefined && (p.iat === undefined || p.iat <= e.cutoffSec));
              // One comparison of the fields (expect() per check would dominate the run time).
              const agree = hit === null ? want === undefined : want !== undefined && JSON.stringify(hit) === JSON.stringify(want);
              if (!agree) expect({ step: i, principal: p, hit }).toEqual({ step: i, principal: p, hit: want ?? null });
            }
          });
          sweep();
          expect(list.list()).toEqual([...model].sort((x, y) => x.expiresAtMs - y.expiresAtMs));
          const byKind = { sub: 0, sid: 0, jti: 0 };
          for (const e of model) byKind[e.kind]++;
          expect(list.stats()).toEqual({ entries: model.length, byKind, max: MAX, evicted, expired });
        }),
        { seed: SEED, numRuns: RUNS },
      );
    },
    LIMIT_MS,
  );
});
