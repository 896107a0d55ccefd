import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { CompiledRoute } from '../../../src/config/state.js';
import { normalizePath, type NormalizedPath } from '../../../src/routes/normalize.js';
import { buildRouteTable, upstreamPath } from '../../../src/routes/table.js';
import { route } from './route.js';

// Property-based tests of the path normalizer and the route matcher: whatever a client
// sends, the route the gateway picks is the route a backend lands on when it reads the same
// request, and what the gateway forwards means the same thing to every reader.
//
// Two independent readers, written here from their specifications, not from normalize.ts:
// - a servlet-style reader (Tomcat's CoyoteAdapter order: drop `;…` parameters from every
//   segment, percent-decode everything, merge `//`, resolve dot segments, 400 above the root);
// - a strict RFC 3986 reader (decode unreserved characters, §6.2.2.2, then §5.2.4
//   remove_dot_segments, literally: empty segments are kept, `..` above the root clamps).
//
// Runs with a fixed seed; FUZZ_RUNS (runs per property) and FUZZ_SEED override it for a
// long campaign.

function envInteger(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer, got ${JSON.stringify(text)}`);
  return n;
}
const RUN = { seed: envInteger('FUZZ_SEED', 42), numRuns: envInteger('FUZZ_RUNS', 2000) };

// ---------------------------------------------------------------------------------------
// Readers

const HEX = /^[0-9A-Fa-f]{2}$/;

/** Decodes every %XX (a servlet decodes them all); null for a malformed escape. */
function decodeAll(s: string): string | null {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] !== '%') {
      out += s[i];
      continue;
    }
    const hex = s.slice(i + 1, i + 3);
    if (!HEX.test(hex)) return null;
    out += String.fromCharCode(parseInt(hex, 16));
    i += 2;
  }
  return out;
}

/**
 * How a servlet container (Tomcat; Jetty and Undertow agree on the order) reads a request
 * path: path parameters are cut from every segment before anything else, then the path is
 * percent-decoded (an encoded `/`, `\` or NUL is a 400), then `//` is merged and `.` / `..`
 * resolved, `..` above the root being a 400. Returns the decoded path or null (400).
 */
function servletRead(raw: string): string | null {
  if (!raw.startsWith('/')) return null;
  const stripped = raw.replace(/;[^/]*/g, '');
  const encodedSeparator = /%(2f|5c|00)/i;
  if (encodedSeparator.test(stripped)) return null;
  const decoded = decodeAll(stripped);
  if (decoded === null || decoded.includes('\\') || decoded.includes('\0')) return null;
  const out: string[] = [];
  const segments = decoded.split('/').slice(1);
  let trailing = false;
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    const last = i === segments.length - 1;
    if (seg === '' || seg === '.') trailing ||= last;
    else if (seg === '..') {
      if (out.length === 0) return null;
      out.pop();
      trailing ||= last;
    } else out.push(seg);
  }
  return joinPath(out, trailing);
}

function joinPath(segments: readonly string[], trailing: boolean): string {
  if (segments.length === 0) return '/';
  return '/' + segments.join('/') + (trailing ? '/' : '');
}

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/** RFC 3986 §6.2.2.1 and §6.2.2.2: upper-case hex, decode unreserved characters. */
function rfcPercentNormalize(s: string): string {
  return s.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => {
    const ch = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
  });
}

/** RFC 3986 §5.2.4 remove_dot_segments, step by step as the RFC writes it. */
function removeDotSegments(path: string): string {
  let input = path;
  let output = '';
  while (input.length > 0) {
    if (input.startsWith('../')) input = input.slice(3); // A
    else if (input.startsWith('./')) input = input.slice(2);
    else if (input.startsWith('/./')) input = input.slice(2); // B
    else if (input === '/.') input = '/';
    else if (input.startsWith('/../')) {
      input = input.slice(3); // C
      output = output.slice(0, Math.max(0, output.lastIndexOf('/')));
    } else if (input === '/..') {
      input = '/';
      output = output.slice(0, Math.max(0, output.lastIndexOf('/')));
    } else if (input === '.' || input === '..') input = ''; // D
    else {
      const next = input.indexOf('/', input.startsWith('/') ? 1 : 0); // E
      const seg = next < 0 ? input : input.slice(0, next);
      output += seg;
      input = input.slice(seg.length);
    }
  }
  return output;
}

/** A reader of RFC 3986 alone: `;` is an ordinary character and `//` an empty segment. */
function strictRead(raw: string): string {
  return removeDotSegments(rfcPercentNormalize(raw));
}

// ---------------------------------------------------------------------------------------
// Route tables and a second matcher, segment by segment, to read the readers' paths with

/** Route segments: ordinary names and names that only look like dot segments. */
const ROUTE_SEGMENTS = ['public', 'orders', 'api', 'admin', 'a', 'A', '...', '..a', '.well-known'];

/** 1-6 routes, distinct prefixes of 1-3 segments, sometimes a root route; each allows parameters or not. */
const routeTableArb = fc
  .tuple(
    fc.uniqueArray(fc.array(fc.constantFrom(...ROUTE_SEGMENTS), { minLength: 1, maxLength: 3 }), {
      minLength: 1,
      maxLength: 6,
      selector: (segs) => segs.join('/'),
    }),
    fc.boolean(),
  )
  .chain(([prefixes, root]) =>
    fc
      .tuple(...[...prefixes, ...(root ? [[]] : [])].map((segs) => fc.tuple(fc.constant(segs), fc.boolean(), fc.boolean())))
      .map((entries) => entries.map(([segs, slash, params]) => route(segs.length === 0 ? '/' : `/${segs.join('/')}${slash ? '/' : ''}`, false, params))),
  );

/** The route a reader of `path` picks: longest prefix, compared segment by segment. */
function readerRoute(routes: readonly CompiledRoute[], path: string | null): string | undefined {
  if (path === null) return undefined;
  const segs = path.split('/').slice(1);
  let best: CompiledRoute | undefined;
  let bestLen = -1;
  for (const r of routes) {
    const prefix = r.prefix === '' ? [] : r.prefix.split('/').slice(1);
    if (prefix.length > bestLen && prefix.every((p, i) => segs[i] === p)) {
      best = r;
      bestLen = prefix.length;
    }
  }
  return best?.name;
}

// ---------------------------------------------------------------------------------------
// Adversarial paths

const nameArb = fc.constantFrom(...ROUTE_SEGMENTS);
const dotArb = fc.constantFrom('.', '..', '%2e', '%2E', '%2e%2e', '%2E%2E', '.%2e', '%2E.', '%2e%2e%2e', '....');
const paramsArb = fc.constantFrom(';', ';x', ';x=1', ';jsessionid=ABC', ';a;b', ';..', ';%2e', ';/', ';%3b', ';x%2fy');
const escapeArb = fc.constantFrom('%2f', '%2F', '%5c', '%5C', '%3b', '%3B', '%25', '%252e', '%252f', '%00', '%41', '%7e', '%c3%a9', '%zz', '%', '%4');
const junkArb = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 3 }), // unicode
  fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)), // a lone surrogate
  fc.uint8Array({ maxLength: 3 }).map((b) => String.fromCharCode(...b)), // random bytes
  fc.string({ unit: fc.constantFrom(...";=!$&'()*+,:@-._~%/\\?#x9"), maxLength: 5 }),
);
const tokenArb = fc.oneof(nameArb, dotArb, paramsArb, escapeArb, junkArb);
/**
 * Mostly route names and dot segments, so that paths reach routes and climb between them;
 * then a name or dot segment with parameters (`admin;x=1`, `..;`, `;x`), escapes, empty
 * segments (`//`), and runs of anything (`..%3b`, `%2e.;`, unicode, bytes).
 */
const segmentArb = fc.oneof(
  { weight: 8, arbitrary: nameArb },
  { weight: 4, arbitrary: dotArb },
  { weight: 4, arbitrary: fc.tuple(fc.oneof(nameArb, dotArb, fc.constant('')), paramsArb).map(([a, b]) => a + b) },
  { weight: 1, arbitrary: fc.tuple(fc.oneof(nameArb, dotArb), escapeArb).map(([a, b]) => a + b) },
  { weight: 1, arbitrary: fc.constant('') },
  { weight: 2, arbitrary: fc.array(tokenArb, { minLength: 1, maxLength: 3 }).map((t) => t.join('')) },
);
const freePathArb = fc.oneof(
  { weight: 19, arbitrary: fc.tuple(fc.array(segmentArb, { maxLength: 8 }), fc.boolean()).map(([s, slash]) => `/${s.join('/')}${slash ? '/' : ''}`) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) }, // not even starting with `/`
);

/** Segments that climb out of, or only look like they climb out of, the segment before. */
const climbArb = fc.constantFrom('..', '..;', '..;x=1', '%2e%2e', '%2E%2E;', '.%2e', '..%3b', '%2e%2e%3B', '.;', '.', ';x', '', '...', '..a');
/** Decorations of a route's own segments: none, parameters (`admin;x=1`) or an escape (`admin%3B`). */
const decorationArb = fc.oneof({ weight: 4, arbitrary: fc.constant('') }, { weight: 2, arbitrary: paramsArb }, { weight: 1, arbitrary: escapeArb });

/**
 * Paths aimed at a route table: one route's prefix, a climb, another route's prefix, a tail
 * (`/public/..;/orders/1`, `/api/admin;x=1/users`), segments decorated at random.
 */
function aimedPathArb(routes: readonly CompiledRoute[]): fc.Arbitrary<string> {
  const prefixes = routes.map((r) => (r.prefix === '' ? [] : r.prefix.split('/').slice(1)));
  return fc
    .tuple(
      fc.constantFrom(...prefixes),
      fc.array(climbArb, { maxLength: 4 }),
      fc.constantFrom(...prefixes),
      fc.array(segmentArb, { maxLength: 3 }),
      fc.array(decorationArb, { minLength: 6, maxLength: 6 }),
      fc.boolean(),
    )
    .map(([from, climb, to, tail, deco, slash]) => {
      const named = [...from, ...to].map((seg, i) => seg + (deco[i] ?? ''));
      const segs = [...named.slice(0, from.length), ...climb, ...named.slice(from.length), ...tail];
      return `/${segs.join('/')}${slash ? '/' : ''}`;
    });
}

/** A route table and a path: a third of the paths free, the rest aimed at the table. */
const caseArb = routeTableArb.chain((routes) =>
  fc.tuple(fc.constant(routes), fc.oneof({ weight: 1, arbitrary: freePathArb }, { weight: 2, arbitrary: aimedPathArb(routes) })),
);
const pathArb = caseArb.map(([, path]) => path);

// ---------------------------------------------------------------------------------------
// Invariants of a normalized path

/** What a normalized path never contains, whatever the input: no reader can split or climb it. */
function expectCanonical(path: string, raw: string): void {
  const ctx = `${JSON.stringify(raw)} → ${JSON.stringify(path)}`;
  expect(path.startsWith('/'), ctx).toBe(true);
  expect(path.includes('//'), ctx).toBe(false);
  expect(path.includes('\\'), ctx).toBe(false);
  expect(/%(2f|5c|00)/i.test(path), ctx).toBe(false);
  const segments = path.split('/').slice(1);
  for (const seg of segments) {
    const name = seg.split(';')[0]!;
    expect(seg === '.' || seg === '..' || name === '.' || name === '..', ctx).toBe(false);
  }
  // Every escape is canonical (RFC 3986 §6.2.2.1, §6.2.2.2): upper-case hex, never of an unreserved character.
  for (const m of path.matchAll(/%(..)/g)) {
    expect(m[1], ctx).toMatch(/^[0-9A-F]{2}$/);
    expect(UNRESERVED.test(String.fromCharCode(parseInt(m[1]!, 16))), ctx).toBe(false);
  }
  expect([...path].every((c) => c.charCodeAt(0) > 0x20 && c.charCodeAt(0) < 0x7f), ctx).toBe(true);
}

const views = (p: NormalizedPath) => (typeof p === 'string' ? { match: p, upstream: p } : p);

describe('normalizePath and the route table, property-based', () => {
  it('never throws, and with parameters refused never accepts a `;`', () => {
    fc.assert(
      fc.property(pathArb, (raw) => {
        const strict = normalizePath(raw);
        const lenient = normalizePath(raw, true);
        if (raw.includes(';')) expect(strict).toBeNull();
        else expect(lenient).toBe(strict); // parameters allowed changes nothing for a path without `;`
        if (lenient !== null) expect(typeof lenient === 'object').toBe(raw.includes(';'));
      }),
      RUN,
    );
  });

  it('returns canonical, idempotent paths in both views', () => {
    fc.assert(
      fc.property(pathArb, fc.boolean(), (raw, parameters) => {
        const result = normalizePath(raw, parameters);
        if (result === null) return;
        const { match, upstream } = views(result);
        expectCanonical(match, raw);
        expectCanonical(upstream, raw);
        expect(match.includes(';')).toBe(false);
        expect(match.split('/').length).toBe(upstream.split('/').length); // the same segments, one for one
        // Idempotence: normalize(normalize(p)) === normalize(p), for each view.
        expect(normalizePath(match)).toBe(match);
        if (typeof result === 'string') expect(normalizePath(result, parameters)).toBe(result);
        else if (upstream.includes(';')) expect(normalizePath(upstream, true)).toEqual(result);
        else expect(normalizePath(upstream, true)).toBe(upstream);
      }),
      RUN,
    );
  });

  it('parameters refused: both readers land the raw and the forwarded path on the route the gateway chose', () => {
    const check = (routes: readonly CompiledRoute[], raw: string) => {
      const path = normalizePath(raw);
      if (path === null) return;
      const chosen = buildRouteTable(routes).match(path)?.name;
      expect(readerRoute(routes, servletRead(raw)), raw).toBe(chosen);
      // RFC 3986 keeps empty segments (`/a//..` is `/a/`) where the gateway, like Tomcat
      // and nginx, merges them first. The upstream only ever reads the forwarded path,
      // which has none, so the raw path is compared only when it has no `//`.
      if (!raw.includes('//')) expect(readerRoute(routes, strictRead(raw)), raw).toBe(chosen);
      const forwarded = upstreamPath(route(path), '', path);
      expect(forwarded).toBe(path);
      expect(readerRoute(routes, servletRead(forwarded)), forwarded).toBe(chosen);
      // Nothing is left for a strict reader to resolve: it reads the segments as sent.
      expect(strictRead(forwarded)).toBe(forwarded);
      expect(readerRoute(routes, strictRead(forwarded)), forwarded).toBe(chosen);
    };
    fc.assert(
      fc.property(caseArb, ([routes, raw]) => {
        check(routes, raw);
        // The same path without its `;`s (`/public/..;/x` → `/public/../x`): most paths
        // with parameters are refused here, and this keeps their climbs in play.
        check(routes, raw.replaceAll(';', ''));
      }),
      RUN,
    );
  });

  it('parameters allowed: the servlet reader lands the raw and the forwarded path on the route the gateway chose', () => {
    fc.assert(
      fc.property(caseArb, ([routes, raw]) => {
        const result = normalizePath(raw, true);
        if (result === null) return;
        const { match, upstream } = views(result);
        const table = buildRouteTable(routes);
        const chosen = table.match(match);
        expect(readerRoute(routes, servletRead(raw)), raw).toBe(chosen?.name);
        if (chosen === undefined) return;
        const forwarded = upstreamPath(chosen, '', result);
        expect(forwarded).toBe(upstream);
        expect(readerRoute(routes, servletRead(forwarded)), forwarded).toBe(chosen.name);
        // What is sent has no dot segment and no `//`, parameters or not: a strict reader
        // reads exactly the segments the gateway sent.
        expect(strictRead(forwarded)).toBe(forwarded);
        // A reader that knows nothing of parameters sees `admin;x=1` as a segment of its
        // own (why parameters are refused unless a route opts in); with none left in the
        // forwarded path, it too lands on the gateway's route.
        if (!forwarded.includes(';')) expect(readerRoute(routes, strictRead(forwarded)), forwarded).toBe(chosen.name);
        if (!raw.includes(';') && !raw.includes('//')) expect(readerRoute(routes, strictRead(raw)), raw).toBe(chosen.name);
      }),
      RUN,
    );
  });

  it('keeps the parameters of every segment that survives, and drops those of removed segments', () => {
    const paramArb = fc.array(fc.constantFrom('x', '=', '1', ';', ',', '%3B', '%3b', '%41', '.', '..', '~'), { maxLength: 4 }).map((a) => ';' + a.join(''));
    const namedArb = fc.tuple(nameArb, fc.option(paramArb, { nil: '' })).map(([n, p]) => n + p);
    fc.assert(
      fc.property(
        fc.array(namedArb, { minLength: 1, maxLength: 5 }),
        fc.nat(),
        fc.option(fc.tuple(fc.constantFrom('..', '%2e%2e', '.', '%2E'), fc.option(paramArb, { nil: '' })), { nil: undefined }),
        (segs, at, climb) => {
          const k = at % segs.length;
          const raw = '/' + (climb === undefined ? segs : [...segs.slice(0, k + 1), climb.join(''), ...segs.slice(k + 1)]).join('/');
          // What survives: every segment, but the one a `..` removes; neither the dot segment nor its parameters.
          const dot = climb === undefined ? null : rfcPercentNormalize(climb[0]);
          const kept = dot === '..' ? segs.filter((_, i) => i !== k) : segs;
          // A dot segment at the end leaves a directory path: `/a/b/..` → `/a/`.
          const trailing = climb !== undefined && k === segs.length - 1;
          const upstream = rfcPercentNormalize(joinPath(kept, trailing));
          const expected = raw.includes(';') ? { match: upstream.replace(/;[^/]*/g, ''), upstream } : upstream;
          expect(normalizePath(raw, true), raw).toEqual(expected);
        },
      ),
      RUN,
    );
  });
});
