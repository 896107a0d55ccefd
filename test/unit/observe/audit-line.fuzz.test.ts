import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import pino from 'pino';
import { Writable } from 'node:stream';
import { auditLine } from '../../../src/observe/audit-line.js';
import { escapeLineBreakers, type AuditEntry } from '../../../src/observe/audit.js';
import { LINE_SHAPE } from '../../../src/observe/log.js';
import { REASON_WORDS } from '../../../src/reasons.js';

// The hand-written audit line must be, byte for byte, what a pino logger of the
// operational log's shape writes for the same entry (with line breakers escaped), for
// any entry: claims and config names of any text included.
const runs = Number(process.env['FUZZ_RUNS'] ?? 1000);
const seed = process.env['FUZZ_SEED'] !== undefined ? Number(process.env['FUZZ_SEED']) : 42;

const TIME = '2030-01-01T00:00:00.000Z';
let written = '';
const sink = new Writable({
  write(chunk: Buffer, _enc, cb) {
    written += chunk.toString();
    cb();
  },
});
const reference = pino({ base: null, ...LINE_SHAPE, timestamp: () => `,"time":"${TIME}"`, hooks: { streamWrite: escapeLineBreakers } }, sink);
const round3 = (v: number) => Math.round(v * 1000) / 1000;

function pinoLine(e: AuditEntry): string {
  written = '';
  reference.info({ ...e, total_ms: round3(e.total_ms), verify_ms: e.verify_ms === null ? null : round3(e.verify_ms), upstream_ms: e.upstream_ms === null ? null : round3(e.upstream_ms) }, 'audit');
  return written;
}

const text = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' }), fc.constantFrom('a"b', 'x\\y', 'l\u2028m', 'n\u0085', '\u007f', 'é'));
const maybe = <T,>(a: fc.Arbitrary<T>) => fc.option(a, { nil: null });
const ms = fc.double({ min: 0, max: 1e6, noNaN: true });
const entry: fc.Arbitrary<AuditEntry> = fc.record({
  request_id: fc.oneof(fc.uuid(), fc.stringMatching(/^[A-Za-z0-9._-]{1,20}$/)),
  client: fc.oneof(fc.ipV4(), fc.ipV6()),
  method: fc.constantFrom('GET', 'POST', 'PROPFIND', 'M-SEARCH'),
  path: maybe(text),
  route: maybe(text),
  upstream: maybe(fc.stringMatching(/^[A-Za-z0-9_.-]{1,12}$/)),
  status: fc.integer({ min: 100, max: 599 }),
  decision: fc.constantFrom('allow' as const, 'deny' as const),
  reason: fc.constantFrom(...REASON_WORDS),
  issuer: maybe(text),
  subject: maybe(text),
  amr: maybe(fc.array(text, { maxLength: 4 })),
  acr: maybe(text),
  token_hash: maybe(fc.stringMatching(/^[0-9a-f]{16}$/)),
  cache: fc.constantFrom(null, 'hit' as const, 'miss' as const, 'negative' as const),
  total_ms: ms,
  verify_ms: maybe(ms),
  upstream_ms: maybe(ms),
});

describe('the audit line writer', () => {
  it('writes exactly what pino writes for the same entry, one line each', () => {
    fc.assert(
      fc.property(entry, (e) => {
        const line = auditLine(e, TIME);
        expect(line).toBe(pinoLine(e));
        // With the claims part remembered on a principal: the same line, first and second time.
        const principal = {};
        expect(auditLine(e, TIME, principal)).toBe(line);
        expect(auditLine(e, TIME, principal)).toBe(line);
        expect(line.indexOf('\n')).toBe(line.length - 1);
        expect(line).not.toMatch(/[\u007f-\u009f\u2028\u2029]/);
      }),
      { seed, numRuns: runs },
    );
  });
});
