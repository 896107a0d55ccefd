import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { tmpdir } from 'node:os';
import { compileConfig } from '../../../src/config/load.js';
import { HeaderRewriter, encodeIdentityList, encodeIdentityValue } from '../../../src/proxy/headers.js';
import type { Principal } from '../../../src/authz/claims.js';

// Fixed seed in the normal run; FUZZ_RUNS / FUZZ_SEED for a long campaign (no time limit then).
const numRuns = Number(process.env.FUZZ_RUNS ?? 2000);
const params = { seed: Number(process.env.FUZZ_SEED ?? 42), numRuns };
const timeout = process.env.FUZZ_RUNS ? 0 : undefined;

/** String.prototype.isWellFormed (ES2024, in Node 20): an oracle independent of the encoder. */
const wellFormed = (s: string): boolean => (s as string & { isWellFormed(): boolean }).isWellFormed();
const VISIBLE = /^[\x21-\x7e]*$/;

// Units biased towards what the rule is about: "%", ",", space, controls, line
// separators, multi-byte code points, text that looks encoded; and lone surrogates.
const wellFormedUnits = [
  fc.constantFrom('%', ',', ' ', '\r', '\n', '\t', '\u0000', '\u007f', '\u0085', '\u00a0', '\u2028', '\u2029', '%C3%A9', '%2C', 'é', '+'),
  fc.integer({ min: 0, max: 0xffff - 0x800 }).map((c) => String.fromCharCode(c < 0xd800 ? c : c + 0x800)),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
  fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 4 }),
];
const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
const claim = fc.string({ unit: fc.oneof(...wellFormedUnits, loneSurrogate), maxLength: 24 });
// Two halves of a pair may still meet side by side; the filter keeps the name honest.
const wellFormedClaim = fc.string({ unit: fc.oneof(...wellFormedUnits), maxLength: 24 }).filter(wellFormed);

describe('encodeIdentityValue (property)', () => {
  it('never throws; well-formed strings become visible ASCII without "," or space that decodes back exactly; ill-formed ones give null', () => {
    fc.assert(
      fc.property(claim, (s) => {
        const out = encodeIdentityValue(s);
        if (!wellFormed(s)) return out === null;
        return out !== null && VISIBLE.test(out) && !out.includes(',') && decodeURIComponent(out) === s;
      }),
      params,
    );
  }, timeout);

  it('returns visible ASCII without "%" and "," unchanged', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme-ascii', maxLength: 40 }), (s) => {
        const out = encodeIdentityValue(s);
        return /^[\x21-\x24\x26-\x2b\x2d-\x7e]*$/.test(s) ? out === s : out !== s;
      }),
      params,
    );
  }, timeout);

  it('is injective: two different well-formed strings never share an encoding', () => {
    fc.assert(
      fc.property(wellFormedClaim, wellFormedClaim, (a, b) => a === b || encodeIdentityValue(a) !== encodeIdentityValue(b)),
      params,
    );
  }, timeout);
});

describe('encodeIdentityList (property)', () => {
  it('splitting the header on its separator and decoding each item gives the list back; any ill-formed item gives null', () => {
    fc.assert(
      fc.property(fc.array(claim.filter((s) => s !== ''), { minLength: 1, maxLength: 6 }), fc.constantFrom(',', ' '), (items, sep) => {
        const out = encodeIdentityList(items, sep);
        if (!items.every(wellFormed)) return out === null;
        if (out === null) return false;
        // The separator is the only character outside visible ASCII minus "," (or the only "," there is).
        if (!VISIBLE.test(out.replaceAll(sep, ''))) return false;
        expect(out.split(sep).map(decodeURIComponent)).toEqual(items);
        return true;
      }),
      params,
    );
  }, timeout);
});

describe('HeaderRewriter.identityFor (property)', () => {
  const names = compileConfig({ upstreams: { a: { url: 'http://x' } }, routes: [{ path: '/', upstream: 'a', auth: 'none' }] }, tmpdir()).identityHeaders;
  const rw = new HeaderRewriter(names);
  const principalOf = (str: fc.Arbitrary<string>) => {
    const list = fc.option(fc.array(str, { maxLength: 4 }), { nil: undefined });
    return fc
      .record({
        iss: str,
        subject: fc.option(str, { nil: undefined }),
        acr: fc.option(str, { nil: undefined }),
        amr: list,
        roles: list,
        scopes: list,
        groups: list,
        authTime: fc.option(fc.integer({ min: 0, max: 2 ** 40 }), { nil: undefined }),
      })
      .map((c): Principal => ({ issuer: 'corp', exp: 2e9, ...c, roles: c.roles ?? [], scopes: c.scopes ?? [], groups: c.groups ?? [] }));
  };
  const claimsOf = (p: Principal): string[] => [p.iss, p.subject, p.acr, ...(p.amr ?? []), ...p.roles!, ...p.scopes!, ...p.groups!].filter((s) => s !== undefined);

  it('never throws, and gives null exactly when a claim is not well-formed', () => {
    fc.assert(
      fc.property(principalOf(claim), (p) => (rw.identityFor(p) === null) === !claimsOf(p).every(wellFormed)),
      params,
    );
  }, timeout);

  it('for well-formed claims, every header is visible ASCII (and list separators) and decodes back to its claim', () => {
    fc.assert(
      fc.property(principalOf(wellFormedClaim), (p) => {
        const out = rw.identityFor(p);
        if (out === null) return false;
        const got = new Map<string, string>();
        for (let i = 0; i < out.length; i += 2) got.set(out[i]!, out[i + 1]!);
        const decoded = (name: string) => {
          const v = got.get(name);
          return v === undefined ? undefined : decodeURIComponent(v);
        };
        const single = (v: string | undefined) => (v === '' ? undefined : v);
        expect(decoded(names.subject)).toEqual(single(p.subject));
        expect(decoded(names.issuer)).toEqual(single(p.iss));
        expect(decoded(names.acr)).toEqual(single(p.acr));
        // Empty items are left out, and so is a header with no item left.
        const items = (v: readonly string[] | undefined) => {
          const kept = v?.filter((s) => s !== '');
          return kept === undefined || kept.length === 0 ? undefined : kept;
        };
        for (const [name, value, sep] of [[names.amr, p.amr, ','], [names.roles, p.roles!, ','], [names.groups, p.groups!, ','], [names.scopes, p.scopes!, ' ']] as const) {
          expect(got.get(name)?.split(sep).map(decodeURIComponent)).toEqual(items(value));
        }
        expect(got.get(names.authTime)).toBe(p.authTime === undefined ? undefined : String(p.authTime));
        expect([...got.values()].filter((v) => !VISIBLE.test(v.replaceAll(' ', '')) || v.startsWith(' ') || v.endsWith(' '))).toEqual([]);
        return true;
      }),
      params,
    );
  }, timeout);
});
