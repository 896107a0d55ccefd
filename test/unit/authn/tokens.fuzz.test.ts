/**
 * Property-based tests of the bearer extractor and the JWS segment check, against
 * straightforward reference implementations written here. A fixed seed in the normal
 * run; FUZZ_RUNS and FUZZ_SEED run a longer campaign (e.g. FUZZ_RUNS=200000).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bearerCandidate, extractToken, isB64Token, jwsForm, MALFORMED_TOKEN, type Extracted, type TokenForm } from '../../../src/authn/extract.js';

const RUNS = Number.parseInt(process.env['FUZZ_RUNS'] ?? '', 10) || 2000;
const SEED = process.env['FUZZ_SEED'] ? Number.parseInt(process.env['FUZZ_SEED'], 10) : 42;
const run = (runs = RUNS) => ({ seed: SEED, numRuns: runs });
/** Per-test time limit, growing with a long campaign's FUZZ_RUNS. */
const LIMIT_MS = Math.max(15_000, RUNS * 3);

// --- reference implementations ---------------------------------------------------------

/** RFC 4648 §3.5 by definition: canonical iff decoding and re-encoding gives the same text. */
function refCanonical(segment: string): boolean {
  return Buffer.from(segment, 'base64url').toString('base64url') === segment;
}

function refForm(token: string): TokenForm {
  const parts = token.split('.');
  if (parts.length !== 3) return 'opaque';
  return parts.every(refCanonical) ? 'jws' : 'non_canonical';
}

/** RFC 6750 §2.1 b64token, from its ABNF: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
const B64TOKEN_CHARS = new Set([...'ABCDEFGHIJKLMNOPQRSTUVWXYZ', ...'abcdefghijklmnopqrstuvwxyz', ...'0123456789', ...'-._~+/']);
function refB64Token(token: string): boolean {
  let end = token.length;
  while (end > 0 && token[end - 1] === '=') end--;
  const body = token.slice(0, end);
  return body.length > 0 && [...body].every((c) => B64TOKEN_CHARS.has(c));
}

/** RFC 6750 §2.1 / RFC 9110 §11, spelt out instead of a scan. */
function refExtract(value: string | undefined, count: number, max: number): Extracted {
  if (count > 1) return { kind: 'invalid_request', description: 'multiple Authorization headers' };
  if (value === undefined) return { kind: 'none' };
  const v = value.replace(/^[ \t]+/, '').replace(/[ \t]+$/, '');
  if (!/^bearer/i.test(v)) return { kind: 'none' };
  const rest = v.slice(6);
  if (rest === '') return { kind: 'invalid_request', description: 'empty bearer token' };
  if (rest[0] !== ' ') return { kind: 'none' };
  const token = rest.replace(/^ +/, '');
  if (token === '') return { kind: 'invalid_request', description: 'empty bearer token' };
  if (token.length > max) return { kind: 'too_large' };
  if (!refB64Token(token)) return { kind: 'invalid_request', description: 'malformed bearer token' };
  return { kind: 'token', token };
}

// --- generators --------------------------------------------------------------------------

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64TOKEN_EXTRA = '+/~=.';

/** The canonical encoding of some bytes. */
const canonicalSegment = fc.uint8Array({ maxLength: 96 }).map((b) => Buffer.from(b).toString('base64url'));

/** Its last character with random pad bits (canonical only when they happen to be zero). */
const padBitsSegment = fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.integer({ min: 0, max: 15 })).map(([b, bits]) => {
  const s = Buffer.from(b).toString('base64url');
  const width = s.length % 4 === 2 ? 4 : s.length % 4 === 3 ? 2 : 0;
  if (width === 0) return s;
  const last = ALPHABET.indexOf(s.at(-1)!);
  return s.slice(0, -1) + ALPHABET[(last & ~((1 << width) - 1)) | (bits & ((1 << width) - 1))];
});

/** Alphabet characters of any length (a length of 1 mod 4 encodes no whole byte). */
const alphabetRun = fc.string({ unit: fc.constantFrom(...ALPHABET), maxLength: 41 });

/** Padding, the standard alphabet and the other b64token characters mixed in. */
const b64tokenRun = fc.string({ unit: fc.constantFrom(...ALPHABET, ...B64TOKEN_EXTRA), maxLength: 41 });

const segment = fc.oneof(
  { arbitrary: canonicalSegment, weight: 4 },
  { arbitrary: padBitsSegment, weight: 3 },
  { arbitrary: canonicalSegment.map((s) => `${s}=`), weight: 1 },
  { arbitrary: canonicalSegment.map((s) => `${s}==`), weight: 1 },
  { arbitrary: alphabetRun, weight: 2 },
  { arbitrary: b64tokenRun, weight: 2 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 12 }), weight: 1 },
);

/** Huge segments, up to the largest maxTokenBytes the schema allows and a little past it. */
const hugeSegment = fc
  .tuple(fc.integer({ min: 4000, max: 66_000 }), fc.constantFrom('A', 'Q', '_', '+', '='))
  .map(([n, ch]) => `${'A'.repeat(n)}${ch}`);

const tokenText = fc.oneof(
  { arbitrary: fc.array(segment, { minLength: 3, maxLength: 3 }).map((s) => s.join('.')), weight: 6 },
  { arbitrary: fc.array(segment, { minLength: 1, maxLength: 6 }).map((s) => s.join('.')), weight: 3 },
  { arbitrary: fc.tuple(segment, hugeSegment, segment).map((s) => s.join('.')), weight: 1 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 40 }), weight: 1 },
);

const scheme = fc.oneof(
  { arbitrary: fc.mixedCase(fc.constant('bearer')), weight: 6 },
  { arbitrary: fc.constantFrom('Basic', 'Bearerx', 'Bear', 'Digest', 'Token', ''), weight: 1 },
  { arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 8 }), weight: 1 },
);
const ows = fc.string({ unit: fc.constantFrom(' ', '\t'), maxLength: 3 });
const separator = fc.oneof(
  { arbitrary: fc.string({ unit: fc.constant(' '), minLength: 1, maxLength: 3 }), weight: 6 },
  { arbitrary: fc.string({ unit: fc.constantFrom(' ', '\t', '\r', '\n', '\u00a0', ','), maxLength: 3 }), weight: 1 },
);

const authorization: fc.Arbitrary<string | undefined> = fc.oneof(
  { arbitrary: fc.tuple(ows, scheme, separator, tokenText, ows).map((p) => p.join('')), weight: 8 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 60 }), weight: 1 },
  { arbitrary: fc.constant(undefined), weight: 1 },
);
const headerCount = fc.oneof({ arbitrary: fc.constant(1), weight: 8 }, { arbitrary: fc.integer({ min: 0, max: 3 }), weight: 1 });
const maxTokenBytes = fc.constantFrom(256, 8192, 65536);

// --- properties --------------------------------------------------------------------------

describe('extractToken (property-based)', () => {
  it('never throws and agrees with the reference extractor', () => {
    fc.assert(
      fc.property(authorization, headerCount, maxTokenBytes, (value, count, max) => {
        expect(extractToken(value, count, max)).toEqual(refExtract(value, count, max));
      }),
      run(),
    );
  }, LIMIT_MS);

  it('the two-step extraction (candidate, then the character check on a cache miss) agrees with extractToken', () => {
    fc.assert(
      fc.property(authorization, headerCount, maxTokenBytes, (value, count, max) => {
        const cand = bearerCandidate(value, count, max);
        const twoStep = cand.kind === 'token' && !isB64Token(cand.token) ? MALFORMED_TOKEN : cand;
        expect(twoStep).toEqual(extractToken(value, count, max));
      }),
      run(),
    );
  }, LIMIT_MS);
});

describe('jwsForm (property-based)', () => {
  it('never throws and agrees with the decode-and-re-encode reference', () => {
    fc.assert(
      fc.property(tokenText, (token) => {
        expect(jwsForm(token)).toBe(refForm(token));
      }),
      run(),
    );
  }, LIMIT_MS);

  it('agrees with the reference on what the extractor hands over', () => {
    fc.assert(
      fc.property(authorization, (value) => {
        const got = extractToken(value, 1, 65536);
        if (got.kind === 'token') expect(jwsForm(got.token)).toBe(refForm(got.token));
      }),
      run(),
    );
  }, LIMIT_MS);

  it('every accepted token has exactly one spelling: another pad bit, a trailing "=", or "+" / "/" is refused', () => {
    const jws = fc.array(fc.uint8Array({ minLength: 1, maxLength: 80 }), { minLength: 3, maxLength: 3 });
    fc.assert(
      fc.property(jws, (parts) => {
        const segments = parts.map((b) => Buffer.from(b).toString('base64url'));
        const token = segments.join('.');
        expect(jwsForm(token)).toBe('jws');
        expect(extractToken(`Bearer ${token}`, 1, 65536)).toEqual({ kind: 'token', token });
        const respellings: string[] = [];
        segments.forEach((s, i) => {
          const respell = (v: string) => segments.map((x, j) => (j === i ? v : x)).join('.');
          const width = s.length % 4 === 2 ? 4 : s.length % 4 === 3 ? 2 : 0;
          const last = ALPHABET.indexOf(s.at(-1)!);
          const variants = [`${s}=`, `${s}==`];
          for (let bit = 0; bit < width; bit++) variants.push(s.slice(0, -1) + ALPHABET[last ^ (1 << bit)]);
          for (const v of variants) {
            // A lenient decoder reads the same bytes from it: the same token, spelt otherwise…
            if (!Buffer.from(v, 'base64url').equals(parts[i]!)) throw new Error(`not a respelling: ${v}`);
            respellings.push(respell(v));
          }
          if (/[-_]/.test(s)) respellings.push(respell(s.replace(/-/g, '+').replace(/_/g, '/')));
        });
        // …and every one is refused.
        expect(respellings.filter((t) => jwsForm(t) !== 'non_canonical')).toEqual([]);
      }),
      run(),
    );
  }, LIMIT_MS);
});

describe('jwsForm (examples)', () => {
  it.each([
    ['eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln', 'jws'],
    ['eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2k', 'jws'], // "si"
    ['eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2l', 'non_canonical'], // "si" with a pad bit set: "c2l" decodes as "c2k" does
    ['eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln=', 'non_canonical'],
    ['eyJhbGciOiJSUzI1NiJ9=.eyJzdWIiOiJhIn0.c2ln', 'non_canonical'],
    ['eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnA', 'non_canonical'], // length 5: 1 mod 4
    ['a+b/.c.d', 'non_canonical'],
    ['..', 'jws'], // three empty segments: canonical; decoding them fails later
    ['a.b.c.d.e', 'opaque'], // JWE compact: five segments
    ['opaque-token', 'opaque'],
    ['', 'opaque'],
  ])('%s → %s', (token, form) => {
    expect(jwsForm(token)).toBe(form);
    expect(refForm(token)).toBe(form);
  });
});
