/**
 * The nesting cap applied before JSON.parse, and the untrusted segment decoder, against
 * reference implementations written here (the depth of the parsed value; jose's own
 * decoding rules). A fixed seed in the normal run; FUZZ_RUNS and FUZZ_SEED run a longer
 * campaign.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeJsonSegment, jsonDepthWithin, MAX_JSON_DEPTH } from '../../../src/authn/jws.js';

const RUNS = Number.parseInt(process.env['FUZZ_RUNS'] ?? '', 10) || 2000;
const SEED = process.env['FUZZ_SEED'] ? Number.parseInt(process.env['FUZZ_SEED'], 10) : 42;
const run = (runs = RUNS) => ({ seed: SEED, numRuns: runs });
const LIMIT_MS = Math.max(15_000, RUNS * 3);

/** Levels of objects and arrays in a parsed JSON value (a scalar is 0, `{}` is 1). */
function depthOf(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0;
  let deepest = 0;
  for (const v of Object.values(value)) deepest = Math.max(deepest, depthOf(v));
  return 1 + deepest;
}

/** Strings full of the characters the scan must not count inside a string. */
const tricky = fc.string({ unit: fc.constantFrom('[', ']', '{', '}', '"', '\\', 'a', ' ', '\u2028', '😀'), maxLength: 12 });
/** nested[d]: a JSON value nested exactly d levels deep, its strings tricky. */
const nested: fc.Arbitrary<unknown>[] = [fc.oneof(tricky, fc.integer(), fc.constant(null), fc.boolean())];
for (let d = 1; d <= MAX_JSON_DEPTH + 8; d++) {
  const inner = nested[d - 1]!;
  nested.push(fc.oneof(inner.map((v) => [v]), fc.tuple(tricky, inner).map(([k, v]) => ({ [k]: v, '"]}': '[{' }))));
}
const deepValue = fc.integer({ min: 0, max: MAX_JSON_DEPTH + 8 }).chain((d) => nested[d]!);
const anyJson = fc.jsonValue({ maxDepth: 6 });

describe('jsonDepthWithin (property-based)', () => {
  it('agrees with the depth of the parsed value, whatever the strings hold', () => {
    fc.assert(
      fc.property(fc.oneof(deepValue, anyJson), fc.integer({ min: 0, max: MAX_JSON_DEPTH + 4 }), (value, max) => {
        const text = JSON.stringify(value);
        expect(jsonDepthWithin(text, max)).toBe(depthOf(JSON.parse(text)) <= max);
      }),
      run(),
    );
  }, LIMIT_MS);

  it('never throws on text that is not JSON', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (text) => {
        expect(typeof jsonDepthWithin(text, 3)).toBe('boolean');
      }),
      run(),
    );
  }, LIMIT_MS);
});

describe('decodeJsonSegment (property-based)', () => {
  /** jose's rules, spelt out: fatal UTF-8, JSON, a plain object; and the cap. */
  function reference(bytes: Uint8Array): Record<string, unknown> | null {
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      return null;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return null;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
    return depthOf(value) <= MAX_JSON_DEPTH ? (value as Record<string, unknown>) : null;
  }

  const payloadBytes = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc.oneof(deepValue, anyJson, fc.dictionary(tricky, anyJson)).map((v) => new TextEncoder().encode(JSON.stringify(v))),
  );

  it('never throws, and answers what the reference answers', () => {
    fc.assert(
      fc.property(payloadBytes, fc.string({ unit: fc.constantFrom('a', '.'), maxLength: 3 }), (bytes, before) => {
        const token = `${before}${Buffer.from(bytes).toString('base64url')}.x`;
        expect(decodeJsonSegment(token, before.length, token.length - 2)).toEqual(reference(bytes));
      }),
      run(),
    );
  }, LIMIT_MS);
});

describe('the nesting cap (examples)', () => {
  const seg = (text: string) => Buffer.from(text).toString('base64url');
  const nest = (n: number, open = '[', close = ']') => `${open.repeat(n)}${close.repeat(n)}`;

  it('allows 32 levels counting the top-level object, refuses 33', () => {
    const at = (levels: number) => `{"a":${nest(levels - 1)}}`;
    expect(decodeJsonSegment(seg(at(MAX_JSON_DEPTH)), 0, seg(at(MAX_JSON_DEPTH)).length)).not.toBeNull();
    expect(decodeJsonSegment(seg(at(MAX_JSON_DEPTH + 1)), 0, seg(at(MAX_JSON_DEPTH + 1)).length)).toBeNull();
  });

  it('refuses a 64 KiB payload of brackets before parsing it, and counts none inside strings', () => {
    const bomb = `{"a":${'['.repeat(32_000)}`;
    expect(jsonDepthWithin(bomb, MAX_JSON_DEPTH)).toBe(false);
    expect(jsonDepthWithin(`{"a":"${'['.repeat(32_000)}"}`, 1)).toBe(true);
    expect(jsonDepthWithin('{"a\\"[[[":"\\\\"}', 1)).toBe(true);
  });

  it('refuses what is not a JSON object in UTF-8', () => {
    for (const text of ['[]', 'null', '"x"', '{"a":', '']) expect(decodeJsonSegment(seg(text), 0, seg(text).length), text).toBeNull();
    const latin1 = Buffer.from([0x7b, 0x22, 0xe9, 0x22, 0x3a, 0x31, 0x7d]).toString('base64url'); // {"é":1} in Latin-1
    expect(decodeJsonSegment(latin1, 0, latin1.length)).toBeNull();
    expect(decodeJsonSegment(seg('{"é":1}'), 0, seg('{"é":1}').length)).toEqual({ é: 1 });
  });
});
