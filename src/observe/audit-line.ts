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

/** True when `s` can be written between quotes as it is: printable ASCII, no `"` or `\`. */
function plain(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}

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

/**
 * One audit line, newline included. `time` is the ISO text of the line's time.
 *
 * @example auditLine(entry, '2030-01-01T00:00:00.000Z')
 * // {"level":"info","time":"2030-01-01T00:00:00.000Z","request_id":"…",…,"msg":"audit"}\n
 */
export function auditLine(e: AuditEntry, time: string): string {
  return (
    `{"level":"info","time":"${time}"` +
    `,"request_id":${jsonString(e.request_id)}` +
    `,"client":${jsonString(e.client)}` +
    `,"method":${jsonString(e.method)}` +
    `,"path":${orNull(e.path)}` +
    `,"route":${orNull(e.route)}` +
    `,"upstream":${orNull(e.upstream)}` +
    `,"status":${e.status}` +
    `,"decision":"${e.decision}"` +
    `,"reason":"${e.reason}"` +
    `,"issuer":${orNull(e.issuer)}` +
    `,"subject":${orNull(e.subject)}` +
    `,"amr":${list(e.amr)}` +
    `,"acr":${orNull(e.acr)}` +
    `,"token_hash":${orNull(e.token_hash)}` +
    `,"cache":${e.cache === null ? 'null' : `"${e.cache}"`}` +
    `,"total_ms":${ms(e.total_ms)}` +
    `,"verify_ms":${e.verify_ms === null ? 'null' : ms(e.verify_ms)}` +
    `,"upstream_ms":${e.upstream_ms === null ? 'null' : ms(e.upstream_ms)}` +
    `,"msg":"audit"}\n`
  );
}
