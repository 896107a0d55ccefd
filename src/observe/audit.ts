import { createHmac, randomBytes } from 'node:crypto';
import { openSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import { LineSink } from './line-sink.js';
import type { CacheOutcome } from '../authn/types.js';
import type { Reason } from '../reasons.js';
import type { CompiledAudit } from '../config/observe-schema.js';
import { GatewayError } from '../errors.js';
import { auditLine } from './audit-line.js';
import { memoOf } from '../authz/memo.js';

/**
 * The audit line's `reason` (and the metrics' `reason` label) is a word of the one
 * vocabulary, src/reasons.ts. A fixed list keeps metric label sets bounded.
 */
export type AuditReason = Reason;

/**
 * One audit line: every decision the gateway made about a request. Every field is
 * always present (null when it does not apply), so log queries need no existence
 * checks. `time` is added when the line is written.
 */
export interface AuditEntry {
  request_id: string;
  /** Client address (clientAddress(): the peer, or X-Forwarded-For behind a trusted proxy). */
  client: string;
  method: string;
  /** The normalized path; null when the path was refused before normalization (bad_path). */
  path: string | null;
  /** Route name from the config; null when no route matched. */
  route: string | null;
  upstream: string | null;
  status: number;
  decision: 'allow' | 'deny';
  reason: AuditReason;
  /** Config name of the issuer whose keys verified the token. */
  issuer: string | null;
  subject: string | null;
  amr: readonly string[] | null;
  acr: string | null;
  /** tokenHash(token): never the token itself. */
  token_hash: string | null;
  cache: CacheOutcome | null;
  /** Milliseconds, rounded to microseconds when written. */
  total_ms: number;
  verify_ms: number | null;
  upstream_ms: number | null;
}

export interface Audit {
  /**
   * Writes one line. Never blocks: the line is buffered and written asynchronously.
   * The entry is serialized before record() returns, so the caller may reuse the object.
   * `principal`: the verified principal whose claims and token hash the entry carries
   * (its part of the line is then remembered on it: src/observe/audit-line.ts).
   */
  record(entry: AuditEntry, principal?: object | null): void;
  /**
   * Writes lines already made (each whole, newline included) by a front-end thread
   * (src/threads/): one write, so they never interleave with other lines. `count`: how
   * many lines `text` holds (a batch dropped whole counts them all).
   */
  lines(text: string, count: number): void;
  /** Lines dropped because the destination could not keep up (maxBufferBytes). */
  dropped(): number;
  /** Writes what is buffered and closes the destination (stdout / stderr stay open). Idempotent. */
  close(): Promise<void>;
}

// The per-process key: hashes correlate the lines of one process and cannot be
// computed by anyone who has only the log. Worker threads load their own copy of
// this module with another key, so hash on the main thread only; a front-end thread
// (src/threads/worker.ts) is handed the main thread's key, so a token hashes alike on
// every thread.
const TOKEN_HASH_KEY: Buffer = (workerData as { tokenHashKey?: Uint8Array } | null)?.tokenHashKey instanceof Uint8Array
  ? Buffer.from((workerData as { tokenHashKey: Uint8Array }).tokenHashKey)
  : randomBytes(32);

/** The key tokenHash uses, for the front-end threads this process starts. */
export function tokenHashKey(): Uint8Array {
  return new Uint8Array(TOKEN_HASH_KEY);
}

/**
 * A short salted fingerprint of a token for the audit line: the first 16 hex digits
 * of HMAC-SHA256 under a random per-process key. The token itself is never logged
 * (README "Secrets never reach a log"); an unkeyed hash would let anyone holding a copy of a token (a ticket,
 * a shell history) find its lines and confirm where it was used.
 *
 * `principal`, when the token was verified, keeps the fingerprint in its memo
 * (src/authz/memo.ts), so a cache hit's line costs no HMAC over ~1.5 KB (about 2.5 µs)
 * and the fingerprint lives exactly as long as the cache entry. Invalid tokens are
 * hashed every time: memoizing them would let a flood of garbage fill memory with
 * tokens of up to 8 KiB each.
 *
 * @example tokenHash('eyJ...') === '3f9a0c1d2e4b5a69'
 */
export function tokenHash(token: string, principal?: object | null): string {
  const memo = principal ? memoOf(principal) : undefined;
  if (memo === undefined) return hmac(token);
  return (memo.tokenHash ??= hmac(token));
}

function hmac(token: string): string {
  // The first 8 bytes as hex: the same 16 digits as digest('hex').slice(0, 16), as one
  // flat string (a slice of 16 characters is a V8 sliced string holding all 64 alive,
  // two objects a cached token keeps instead of one).
  return createHmac('sha256', TOKEN_HASH_KEY).update(token).digest().toString('hex', 0, 8);
}



/**
 * The `time` of audit lines, from the gateway's clock (src/runtime.ts), as
 * Date.prototype.toISOString writes it (`2026-12-01T13:45:07.123Z`). pino's isoTime builds
 * a Date and its ISO text for every line; V8's date formatting was ~7,000 instructions a
 * call under callgrind (bench/README.md, "What the profile showed"). Here the text up to
 * the seconds is built once a second and only the milliseconds are added per line;
 * lines within the same millisecond share the whole text.
 */
export function isoTimeOf(now: () => number): () => string {
  // NaN: no reading equals it (any number, the epoch's negative side included, is new).
  let isoAt = Number.NaN;
  let isoText = '';
  let secondAt = Number.NaN;
  let secondText = '';
  return () => {
    const t = now();
    if (t !== isoAt) {
      isoAt = t;
      const second = Math.floor(t / 1000);
      // Whole milliseconds only: Date truncates a fraction (toward zero, also before 1970).
      if (second !== secondAt || !Number.isInteger(t)) {
        secondAt = Number.isInteger(t) ? second : Number.NaN;
        isoText = new Date(t).toISOString();
        secondText = isoText.slice(0, -4); // up to and with the '.'
      } else {
        const ms = t - second * 1000;
        isoText = secondText + (ms < 10 ? '00' : ms < 100 ? '0' : '') + ms + 'Z';
      }
    }
    return isoText;
  };
}

/**
 * Characters a JSON serializer may write raw (only U+0000-U+001F must be escaped,
 * RFC 8259 §7) that some readers still take for a line break or a control: DEL and
 * the C1 controls U+007F-U+009F (U+0085 is NEL), and U+2028 / U+2029 (line and
 * paragraph separators; JavaScript before ES2019, Python's str.splitlines() and many
 * log shippers split on them). C0 controls are already escaped by the serializer.
 */
const LINE_BREAKERS = /[\u007f-\u009f\u2028\u2029]/g;
const jsonEscape = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * Rewrites one serialized audit line so it stays one line for every reader: each
 * character of LINE_BREAKERS becomes its `\uXXXX` JSON escape (RFC 8259 §7), which
 * parses back to the same string. The raw characters can only sit inside JSON
 * strings, where an escape always stands for them.
 *
 * All of them but DEL lie outside ASCII, so a line whose UTF-8 length equals its
 * length and that holds no DEL (nearly every line) is returned as it is; measured
 * here, that test costs a fifth of one regex scan of a 450-byte line.
 *
 * @example escapeLineBreakers('{"subject":"a\u2028b"}\n') === '{"subject":"a\\u2028b"}\n'
 */
export function escapeLineBreakers(line: string): string {
  if (Buffer.byteLength(line) === line.length && !line.includes('\u007f')) return line;
  return line.replace(LINE_BREAKERS, jsonEscape);
}

const disabled: Audit = {
  record() {},
  lines() {},
  dropped: () => 0,
  close: () => Promise.resolve(),
};

/**
 * Opens the audit log. A file destination is opened (created, appended to) right
 * here so a bad path fails at start-up, not on the first request.
 *
 * @example
 * const audit = createAudit(config.audit, { onError: (e) => logger.error({ err: e.message }, 'audit write failed') });
 * audit.record({ request_id, client, method, ... });
 * await audit.close();
 */
export function createAudit(cfg: CompiledAudit, options: { onError?: (err: Error) => void; now?: () => number } = {}): Audit {
  if (!cfg.enabled) return disabled;
  let fd: number;
  if (cfg.destination === 'stdout') fd = 1;
  else if (cfg.destination === 'stderr') fd = 2;
  else {
    try {
      fd = openSync(cfg.destination, 'a', 0o640);
    } catch (err) {
      throw new GatewayError('AUDIT_OPEN_FAILED', `cannot open the audit log ${cfg.destination}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
  }
  // record() encodes the line into a buffer; the write happens later, off the request's
  // path (src/observe/line-sink.ts). A full disk must not take the gateway down: errors
  // are reported, never thrown.
  const sink = new LineSink(fd, {
    bufferBytes: cfg.bufferBytes,
    maxBufferBytes: cfg.maxBufferBytes,
    flushIntervalMs: cfg.flushIntervalMs,
    ...(options.onError ? { onError: options.onError } : {}),
  });
  // The line's shape is the operational log's (src/observe/log.ts LINE_SHAPE); it is
  // written by auditLine, not by a pino logger (src/observe/audit-line.ts says why).
  const time = isoTimeOf(options.now ?? Date.now);
  let closed: Promise<void> | null = null;
  return {
    record(entry, principal) {
      if (closed !== null) return;
      sink.write(auditLine(entry, time(), principal));
    },
    lines(text, count) {
      if (closed === null) sink.write(text, count);
    },
    dropped: () => sink.dropped,
    close() {
      closed ??= sink.close();
      return closed;
    },
  };
}
