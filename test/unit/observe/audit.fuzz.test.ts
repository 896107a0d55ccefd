import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { escapeLineBreakers, isoTimeOf } from '../../../src/observe/audit.js';

// Fixed seed in the normal run; FUZZ_RUNS / FUZZ_SEED for a long campaign (no time limit then).
const params = { seed: Number(process.env.FUZZ_SEED ?? 42), numRuns: Number(process.env.FUZZ_RUNS ?? 2000) };
const timeout = process.env.FUZZ_RUNS ? 0 : undefined;

const unit = fc.oneof(
  fc.constantFrom('\n', '\r', '\u0000', '\u001e', '\u007f', '\u0085', '\u009f', '\u2028', '\u2029', '\\', '"', '\\u2028'),
  fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
);
const text = fc.string({ unit, maxLength: 20 });
// Shaped like an audit entry: string fields, a list of strings, nulls and numbers.
const entry = fc.record({ subject: fc.option(text), acr: fc.option(text), amr: fc.option(fc.array(text, { maxLength: 3 })), issuer: text, status: fc.integer() });

describe('escapeLineBreakers (property)', () => {
  it('leaves one line that parses back to the same entry, with no raw C0 / C1 control, U+2028 or U+2029', () => {
    fc.assert(
      fc.property(entry, (e) => {
        const out = escapeLineBreakers(`${JSON.stringify(e)}\n`);
        expect(out.slice(0, -1)).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
        expect(JSON.parse(out)).toEqual(e);
      }),
      params,
    );
  }, timeout);
});

describe('isoTimeOf (property)', () => {
  it('gives what Date.prototype.toISOString gives for every clock reading, in any order, fractions and far dates included', () => {
    // Readings cluster (same ms, same second, next second) as a busy clock's do, and jump around.
    const base = fc.integer({ min: -62_000_000_000_000, max: 253_000_000_000_000 });
    const step = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 999 }), fc.integer({ min: -2000, max: 2000 }), fc.double({ min: 0, max: 2, noNaN: true }));
    fc.assert(
      fc.property(base, fc.array(step, { minLength: 1, maxLength: 30 }), (start, steps) => {
        let t = start;
        let i = 0;
        const time = isoTimeOf(() => t);
        for (const s of steps) {
          t = i++ % 7 === 6 ? start + s : t + s;
          expect(time()).toBe(new Date(t).toISOString());
        }
      }),
      params,
    );
  }, timeout);
});
