/**
 * The audit line, written by hand for its fixed fields. pino's generic object → JSON
 * walk (with redaction paths and a line hook) cost about 5 % of a cached request's CPU
 * in the profile (bench/README.md, "What the profile showed"); this writer builds the
 * very same line (same keys, same order, the operational log's shape: `"level":"info"`,
 * ISO `time`, the fields, `"msg":"audit"`) from one template, and escapes only the
 * fields whose text comes from outside: claims, config names, the path. A property
 * test holds it byte for byte to what pino writes (test/unit/observe/audit-line.fuzz.test.ts).
 *
 * Escaping follows RFC 8259 §7 (`"`, `\` and C0 as JSON.stringify writes them) and
 * writes U+007F–U+009F, U+2028 and U+2029 as `\uXXXX` too, so every reader sees one line.
 */
import type { AuditEntry } from './audit.js';
import { memoOf } from '../authz/memo.js';

/** Printable ASCII without `"` or `\`: written between quotes as it is (a regex test beats a charCode loop here). */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const plain = (s: string): boolean => PLAIN.test(s);

const BREAKERS = /[\u007f-\u009f\u2028\u2029]/g;
const hex4 = (ch: string): string => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** A JSON string literal of `s` that every line-based reader keeps on one line. */
export function jsonString(s: string): string {
  if (plain(s)) return `"${s}"`;
  return JSON.stringify(s).replace(BREAKERS, hex4);
}

const orNull = (s: string | null): string => (s === null ? 'null' : jsonString(s));

/**
 * Milliseconds rounded to microseconds, as the line has always carried them: the text
 * JSON gives `Math.round(v * 1000) / 1000`, built from the integer microseconds (turning a
 * fraction into its shortest text is the slow part of number formatting).
 */
function ms(v: number): string {
  const us = Math.round(v * 1000);
  if (us < 0 || !Number.isSafeInteger(us)) return String(us / 1000);
  const whole = Math.floor(us / 1000);
  let frac = us - whole * 1000;
  if (frac === 0) return String(whole);
  let digits = 3;
  while (frac % 10 === 0) {
    frac /= 10;
    digits--;
  }
  const text = String(frac);
  return `${whole}.${text.length < digits ? '0'.repeat(digits - text.length) + text : text}`;
}

function list(items: readonly string[] | null): string {
  if (items === null) return 'null';
  let out = '[';
  for (let i = 0; i < items.length; i++) out += (i === 0 ? '' : ',') + jsonString(items[i]!);
  return `${out}]`;
}

/** The route and upstream part, per route name (config names: a bounded set). */
const routeParts = new Map<string | null, Map<string | null, string>>();

/**
 * The part of a line a principal decides (issuer, subject, amr, acr, token_hash),
 * remembered in the principal's memo (src/authz/memo.ts) by auditLine: a cached token's
 * principal is one object for as long as it is cached, so a cache hit's line needs none
 * of these escaped again.
 *
 * Joined rather than concatenated: V8 keeps a concatenation as a tree of its pieces (a
 * cons string, ~13 nodes here) until something needs it flat, and this text lives as
 * long as its principal is cached. `join` writes one flat string: a heap snapshot after
 * 20,000 cached tokens held 266,030 cons strings before, and every audit line walked
 * the tree again to encode it.
 */
function principalPart(e: AuditEntry): string {
  return [
    ',"issuer":',
    orNull(e.issuer),
    ',"subject":',
    orNull(e.subject),
    ',"amr":',
    list(e.amr),
    ',"acr":',
    orNull(e.acr),
    ',"token_hash":',
    orNull(e.token_hash),
  ].join('');
}

function routePart(route: string | null, upstream: string | null): string {
  let byUpstream = routeParts.get(route);
  let part = byUpstream?.get(upstream);
  if (part === undefined) {
    part = `,"route":${orNull(route)},"upstream":${orNull(upstream)}`;
    // Bounded all the same: a config holds tens of routes, never a client's text.
    if (routeParts.size < 10_000) {
      if (byUpstream === undefined) routeParts.set(route, (byUpstream = new Map()));
      byUpstream.set(upstream, part);
    }
  }
  return part;
}

/**
 * One audit line, newline included. `time` is the ISO text of the line's time.
 * `principal`, the verified principal the entry's claims come from, lets the claims part
 * be remembered on it (its fields must be that principal's, with its token's hash).
 *
 * The request id (a UUID, or a client's matching `^[A-Za-z0-9._-]{1,128}$`), the client
 * address, the method (an RFC 9110 token) and the normalized path (RFC 3986 pchar and
 * `%XX`) hold no character JSON escapes; they are scanned all the same, by one regex test.
 *
 * @example auditLine(entry, '2030-01-01T00:00:00.000Z')
 * // {"level":"info","time":"2030-01-01T00:00:00.000Z","request_id":"…",…,"msg":"audit"}\n
 */
export function auditLine(e: AuditEntry, time: string, principal?: object | null): string {
  const memo = principal ? memoOf(principal) : undefined;
  const who = memo === undefined ? principalPart(e) : (memo.auditPart ??= principalPart(e));
  return (
    `{"level":"info","time":"${time}","request_id":${jsonString(e.request_id)},"client":${jsonString(e.client)},"method":${jsonString(e.method)},"path":${orNull(e.path)}` +
    routePart(e.route, e.upstream) +
    `,"status":${e.status},"decision":"${e.decision}","reason":"${e.reason}"` +
    who +
    `,"cache":${e.cache === null ? 'null' : `"${e.cache}"`},"total_ms":${ms(e.total_ms)},"verify_ms":${e.verify_ms === null ? 'null' : ms(e.verify_ms)},"upstream_ms":${e.upstream_ms === null ? 'null' : ms(e.upstream_ms)},"msg":"audit"}\n`
  );
}
