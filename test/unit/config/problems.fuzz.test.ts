/**
 * Property tests of the config messages and the duration grammar. A fixed seed in the
 * normal run; FUZZ_RUNS and FUZZ_SEED for a long campaign (npm run fuzz).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { configSchema } from '../../../src/config/schema.js';
import { parseDuration } from '../../../src/config/duration.js';
import { FULL_CONFIG, ZOD_WORDING, problemsOf, schemaPaths, withValue } from './schema-walk.js';

const RUNS = Number.parseInt(process.env['FUZZ_RUNS'] ?? '', 10) || 2000;
const SEED = process.env['FUZZ_SEED'] ? Number.parseInt(process.env['FUZZ_SEED'], 10) : 42;
const timeout = process.env['FUZZ_RUNS'] ? 0 : undefined;

const PATHS = schemaPaths(configSchema);

describe('config messages, for any value at any key', () => {
  it(
    'never crash, never use zod’s wording, and quote at most 40 characters of a value the schema refuses',
    () => {
      const long = fc.string({ minLength: 41, maxLength: 80, unit: 'grapheme-ascii' });
      fc.assert(
        fc.property(fc.constantFrom(...PATHS), fc.oneof(fc.anything(), long), (path, value) => {
          const lines = problemsOf(withValue(FULL_CONFIG, path, value));
          const passphrase = path.at(-1) === 'passphrase';
          for (const line of lines) {
            // (The value itself may be quoted: it is the user's text, not zod's.)
            const quoted = (t: string) => [t, JSON.stringify(t).slice(1, -1)];
            const own = typeof value === 'string' ? [...quoted(value), ...quoted(value.slice(0, 40))].reduce((l, t) => l.replaceAll(t, ''), line) : line;
            expect(own).not.toMatch(ZOD_WORDING);
            expect(line).toMatch(/: \S/);
            // Durations and enum values are quoted, cut at 40 characters (the cross-checks
            // name header and upstream names whole: those are names, not secrets).
            if (typeof value === 'string' && value.length > 40 && /is not (a duration|one of)/.test(line)) expect(line).not.toContain(value.slice(0, 41));
            if (passphrase && value !== null && value !== undefined && typeof value !== 'boolean') expect(line).not.toContain(JSON.stringify(value).slice(0, 12));
          }
        }),
        { seed: SEED, numRuns: RUNS },
      );
    },
    timeout,
  );
});

const UNITS = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1000],
  ['ms', 1],
] as const;

describe('durations: d, h, m, s, ms, each at most once, largest first', () => {
  const parts = fc
    .array(fc.option(fc.nat({ max: 100_000 }), { nil: undefined }), { minLength: 5, maxLength: 5 })
    .filter((a) => a.some((n) => n !== undefined));

  it(
    'a spelling in order parses to the sum of its parts',
    () => {
      fc.assert(
        fc.property(parts, (counts) => {
          let text = '';
          let ms = 0;
          counts.forEach((n, i) => {
            if (n === undefined) return;
            text += `${n}${UNITS[i]![0]}`;
            ms += n * UNITS[i]![1];
          });
          expect(parseDuration(text)).toBe(ms);
        }),
        { seed: SEED, numRuns: RUNS },
      );
    },
    timeout,
  );

  it(
    'two units out of order, or one twice, are not a duration',
    () => {
      const pair = fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 4 }), fc.nat(999), fc.nat(999)).filter(([a, b]) => a >= b);
      fc.assert(
        fc.property(pair, ([a, b, x, y]) => {
          // `a >= b`: the second unit is not smaller than the first.
          expect(parseDuration(`${x}${UNITS[a]![0]}${y}${UNITS[b]![0]}`)).toBeUndefined();
        }),
        { seed: SEED, numRuns: RUNS },
      );
    },
    timeout,
  );
});
