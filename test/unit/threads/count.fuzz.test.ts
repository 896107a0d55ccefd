/**
 * The split of an upstream's `connections` across front-end threads (src/threads/count.ts,
 * README "Threads"), and what `server.threads: auto` means. A fixed seed in the normal
 * run; FUZZ_RUNS and FUZZ_SEED run a longer campaign.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { availableParallelism } from 'node:os';
import { connectionShare, frontThreads } from '../../../src/threads/count.js';

const RUNS = Number.parseInt(process.env['FUZZ_RUNS'] ?? '', 10) || 2000;
const SEED = process.env['FUZZ_SEED'] ? Number.parseInt(process.env['FUZZ_SEED'], 10) : 42;

describe('connectionShare', () => {
  it('adds up to the configured total (or one each when there are more threads), shares differing by at most one', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 65536 }), fc.integer({ min: 1, max: 256 }), (total, threads) => {
        const shares = Array.from({ length: threads }, (_, i) => connectionShare(total, threads, i));
        expect(shares.reduce((a, b) => a + b, 0)).toBe(Math.max(total, threads));
        expect(Math.min(...shares)).toBeGreaterThanOrEqual(1);
        expect(Math.max(...shares) - Math.min(...shares)).toBeLessThanOrEqual(1);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('gives the first threads the remainder: 128 over 3 is 43, 43, 42', () => {
    expect([0, 1, 2].map((i) => connectionShare(128, 3, i))).toEqual([43, 43, 42]);
    expect([0, 1].map((i) => connectionShare(1, 2, i))).toEqual([1, 1]);
  });
});

describe('frontThreads', () => {
  it('takes a number as it is; auto is MFA_GATEWAY_THREADS when valid, else the CPUs this process may use', () => {
    expect(frontThreads(3, { MFA_GATEWAY_THREADS: '1' })).toBe(3);
    expect(frontThreads('auto', { MFA_GATEWAY_THREADS: '4' })).toBe(4);
    for (const bad of ['0', '257', 'x', '', '2.5', '-1']) expect(frontThreads('auto', { MFA_GATEWAY_THREADS: bad })).toBe(availableParallelism());
    expect(frontThreads('auto', {})).toBe(availableParallelism());
  });
});
