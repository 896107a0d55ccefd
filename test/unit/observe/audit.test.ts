import { afterAll, describe, expect, it, vi } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAudit, escapeLineBreakers, tokenHash, type AuditEntry } from '../../../src/observe/audit.js';
import type { CompiledAudit } from '../../../src/config/observe-schema.js';

const dir = mkdtempSync(join(tmpdir(), 'mfa-audit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const cfg = (over: Partial<CompiledAudit> = {}): CompiledAudit => ({
  enabled: true,
  destination: join(dir, `audit-${++fileNo}.log`),
  bufferBytes: 4096,
  flushIntervalMs: 60_000,
  maxBufferBytes: 16 * 1_048_576,
  ...over,
});
const readLines = (file: string): Record<string, unknown>[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

// Looks like a JWT; must never reach the file.
const TOKEN = `eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.${'s'.repeat(342)}`;
const OTHER_TOKEN = `eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJib2IifQ.${'t'.repeat(86)}`;

function entry(over: Partial<AuditEntry>): AuditEntry {
  return {
    request_id: 'rid-1',
    client: '203.0.113.7',
    method: 'GET',
    path: '/orders/42',
    route: 'orders',
    upstream: 'orders',
    status: 200,
    decision: 'allow',
    reason: 'ok',
    issuer: 'corp',
    subject: 'alice',
    amr: ['pwd', 'otp'],
    acr: 'phr',
    token_hash: tokenHash(TOKEN),
    cache: 'hit',
    total_ms: 0.7654321,
    verify_ms: null,
    upstream_ms: 0.4321987,
    ...over,
  };
}

const FIELDS = [
  'level', 'time', 'msg', 'request_id', 'client', 'method', 'path', 'route', 'upstream', 'status', 'decision', 'reason', 'issuer',
  'subject', 'amr', 'acr', 'token_hash', 'cache', 'total_ms', 'verify_ms', 'upstream_ms',
].sort();

describe('tokenHash', () => {
  it('is 16 hex digits, stable for one token, different across tokens, and not an unkeyed SHA-256', () => {
    const h = tokenHash(TOKEN);
    expect(h).toMatch(/^[0-9a-f]{16}$/);
    expect(tokenHash(`${TOKEN}`)).toBe(h);
    // A different string object with the same text (as each request brings) gives the same hash.
    expect(tokenHash(Buffer.from(TOKEN).toString('latin1'))).toBe(h);
    expect(tokenHash(OTHER_TOKEN)).not.toBe(h);
    expect(h).not.toBe(createHash('sha256').update(TOKEN).digest('hex').slice(0, 16));
    expect(TOKEN).not.toContain(h);
  });
});

describe('createAudit', () => {
  it('accepts every bufferBytes the schema allows (above sonic-boom\'s default 16 KiB maxWrite too)', async () => {
    for (const bufferBytes of [0, 16_384, 65_536, 1_048_576]) {
      const c = { ...cfg(), bufferBytes };
      const audit = createAudit(c);
      audit.record(entry({ request_id: `buf-${bufferBytes}` }));
      await audit.close();
      expect(readLines(c.destination).map((l) => l['request_id'])).toEqual([`buf-${bufferBytes}`]);
    }
  });

  it('writes one JSON line per entry with every field, for allow and deny reasons, and never the token', async () => {
    const c = cfg();
    const audit = createAudit(c);
    const cases: AuditEntry[] = [
      entry({ request_id: 'allow' }),
      entry({ request_id: 'expired', status: 401, decision: 'deny', reason: 'expired', issuer: null, subject: null, amr: null, acr: null, cache: 'miss', upstream: null, verify_ms: 0.0681234, upstream_ms: null }),
      entry({ request_id: 'bad-sig', status: 401, decision: 'deny', reason: 'bad_signature', token_hash: tokenHash(OTHER_TOKEN), issuer: null, subject: null, amr: null, acr: null, cache: 'negative', upstream: null, upstream_ms: null }),
      entry({ request_id: 'mfa', status: 401, decision: 'deny', reason: 'mfa_required', amr: ['pwd'], acr: null, upstream: null, upstream_ms: null }),
      entry({ request_id: 'role', status: 403, decision: 'deny', reason: 'role_missing', upstream: null, upstream_ms: null }),
      entry({ request_id: 'nocred', status: 401, decision: 'deny', reason: 'credentials_missing', token_hash: null, issuer: null, subject: null, amr: null, acr: null, cache: null, upstream: null, upstream_ms: null }),
      entry({ request_id: 'notfound', status: 404, decision: 'deny', reason: 'not_found', route: null, upstream: null, token_hash: null, issuer: null, subject: null, amr: null, acr: null, cache: null, upstream_ms: null }),
      entry({ request_id: 'limited', status: 429, decision: 'deny', reason: 'rate_limited', upstream: null, upstream_ms: null }),
      entry({ request_id: 'spray', status: 429, decision: 'deny', reason: 'token_spraying', token_hash: null, issuer: null, subject: null, amr: null, acr: null, cache: null, upstream: null, upstream_ms: null }),
      entry({ request_id: 'timeout', status: 504, decision: 'allow', reason: 'upstream_timeout', upstream_ms: 30000.5 }),
    ];
    for (const e of cases) audit.record({ ...e });
    await audit.close();

    const text = readFileSync(c.destination, 'utf8');
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain(OTHER_TOKEN);
    expect(text).not.toContain(TOKEN.split('.')[2]); // not even the signature part

    const lines = readLines(c.destination);
    expect(lines.map((l) => l['request_id'])).toEqual(cases.map((e) => e.request_id));
    for (const [i, line] of lines.entries()) {
      expect(Object.keys(line).sort()).toEqual(FIELDS);
      // The operational log's shape: a level name, an ISO 8601 UTC time, and msg "audit".
      expect(line['level']).toBe('info');
      expect(line['msg']).toBe('audit');
      expect(line['time']).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      expect(new Date(line['time'] as string).toISOString()).toBe(line['time']);
      const want = cases[i]!;
      for (const k of ['client', 'method', 'path', 'route', 'upstream', 'status', 'decision', 'reason', 'issuer', 'subject', 'amr', 'acr', 'token_hash', 'cache'] as const) {
        expect(line[k]).toEqual(want[k]);
      }
    }
    // Durations are rounded to microseconds.
    expect(lines[0]).toMatchObject({ total_ms: 0.765, verify_ms: null, upstream_ms: 0.432 });
    expect(lines[1]).toMatchObject({ verify_ms: 0.068, upstream_ms: null, reason: 'expired', decision: 'deny', status: 401 });
    expect(lines[0]!['token_hash']).toBe(tokenHash(TOKEN));
    expect(lines[2]!['token_hash']).toBe(tokenHash(OTHER_TOKEN));
  });

  it('writes only its fixed fields: a header object or a token slipped into the entry never reaches the line', async () => {
    const c = cfg();
    const audit = createAudit(c);
    const leaky = {
      ...entry({ request_id: 'leaky' }),
      authorization: `Bearer ${TOKEN}`,
      headers: { authorization: `Bearer ${TOKEN}`, 'proxy-authorization': 'Basic c2VjcmV0', cookie: 'sid=secret-cookie', 'x-kept': 'visible' },
      req: { headers: { Authorization: `Bearer ${OTHER_TOKEN}`, Cookie: 'sid=other-secret', 'set-cookie': 'a=secret-set' } },
      token: TOKEN,
    };
    audit.record(leaky as unknown as AuditEntry);
    await audit.close();
    const text = readFileSync(c.destination, 'utf8');
    for (const secret of [TOKEN, OTHER_TOKEN, 'c2VjcmV0', 'secret-cookie', 'other-secret', 'secret-set', 'visible']) expect(text).not.toContain(secret);
    const [line] = readLines(c.destination);
    expect(Object.keys(line!).sort()).toEqual(
      ['level', 'time', 'request_id', 'client', 'method', 'path', 'route', 'upstream', 'status', 'decision', 'reason', 'issuer', 'subject', 'amr', 'acr', 'token_hash', 'cache', 'total_ms', 'verify_ms', 'upstream_ms', 'msg'].sort(),
    );
  });

  it('keeps every line one line: claims with C0 / C1 controls, NEL, U+2028 and U+2029 are written as JSON escapes', async () => {
    const c = cfg();
    const audit = createAudit(c);
    const breakers = '\u0000\n\r\u000b\u000c\u001c\u001d\u001e\u001f\u007f\u0080\u0085\u009f\u2028\u2029';
    const odd = entry({
      request_id: 'odd',
      subject: `alice${breakers}é`,
      acr: `phr\u2028{"msg":"audit","decision":"allow"}`,
      amr: ['pwd\u0085', '\u2029otp'],
      issuer: 'corp\u009f',
      client: '203.0.113.7\u2028',
      route: 'orders\u0085',
    });
    audit.record({ ...odd });
    audit.record(entry({ request_id: 'plain' }));
    await audit.close();

    const bytes = readFileSync(c.destination);
    const text = bytes.toString('utf8');
    // Two lines, and nothing any reader splits lines on besides their two "\n".
    expect(text.split('\n')).toHaveLength(3);
    expect(text.match(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g)).toEqual(['\n', '\n']);
    // U+0085 (C2 85), U+2028 (E2 80 A8), U+2029 (E2 80 A9) are not in the bytes either.
    for (const seq of [[0xc2, 0x85], [0xe2, 0x80, 0xa8], [0xe2, 0x80, 0xa9]]) expect(bytes.includes(Buffer.from(seq))).toBe(false);
    expect(text).toContain('"subject":"alice\\u0000\\n\\r\\u000b\\f\\u001c\\u001d\\u001e\\u001f\\u007f\\u0080\\u0085\\u009f\\u2028\\u2029é"');
    expect(text).toContain('"amr":["pwd\\u0085","\\u2029otp"]');
    // …and each field reads back exactly as recorded.
    const [line, plain] = readLines(c.destination);
    for (const k of ['subject', 'acr', 'amr', 'issuer', 'client', 'route'] as const) expect(line![k]).toEqual(odd[k]);
    expect(plain).toMatchObject({ request_id: 'plain', subject: 'alice', acr: 'phr' });
  });

  it('escapeLineBreakers returns a line without such characters unchanged', () => {
    const line = '{"level":"info","msg":"audit","subject":"alice é \\u2028"}\n';
    expect(escapeLineBreakers(line)).toBe(line);
    expect(escapeLineBreakers('{"s":"\u2028\u0085\u007f"}\n')).toBe('{"s":"\\u2028\\u0085\\u007f"}\n');
    // DEL is ASCII: a line that is ASCII apart from it is escaped too.
    expect(escapeLineBreakers('{"s":"a\u007f"}\n')).toBe('{"s":"a\\u007f"}\n');
  });

  it('buffers lines and writes them once the flush interval has passed, not before', async () => {
    // Timers are faked (the interval is the thing under test); the file write itself is real I/O.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'] });
    try {
      const c = cfg({ flushIntervalMs: 200 });
      const audit = createAudit(c);
      audit.record(entry({ request_id: 'quiet' }));
      const settle = async () => {
        for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
      };
      await vi.advanceTimersByTimeAsync(150);
      await settle();
      expect(readFileSync(c.destination, 'utf8')).toBe(''); // buffered: the interval has not passed
      await vi.advanceTimersByTimeAsync(100);
      let text = '';
      for (let i = 0; i < 200 && text === ''; i++) {
        await settle();
        text = readFileSync(c.destination, 'utf8');
      }
      expect(JSON.parse(text.trim())).toMatchObject({ request_id: 'quiet' });
      await audit.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('drops and counts lines rather than buffering without bound when the destination cannot keep up', async () => {
    const c = cfg({ bufferBytes: 0, maxBufferBytes: 4096 });
    const audit = createAudit(c);
    // A synchronous burst: the event loop never turns, so nothing can be written meanwhile.
    for (let i = 0; i < 200; i++) audit.record(entry({ request_id: `burst-${i}` }));
    expect(audit.dropped()).toBeGreaterThan(0);
    await audit.close();
    const lines = readLines(c.destination);
    expect(lines.length + audit.dropped()).toBe(200);
    expect(lines.length).toBeLessThan(200);
  });

  it('appends to an existing file, ignores records after close, and close is idempotent', async () => {
    const c = cfg();
    const a1 = createAudit(c);
    a1.record(entry({ request_id: 'first' }));
    await a1.close();
    a1.record(entry({ request_id: 'after-close' }));
    await a1.close();
    const a2 = createAudit(c);
    a2.record(entry({ request_id: 'second' }));
    await a2.close();
    expect(readLines(c.destination).map((l) => l['request_id'])).toEqual(['first', 'second']);
  });

  it('fails at start-up with AUDIT_OPEN_FAILED when the file cannot be opened', () => {
    expect(() => createAudit(cfg({ destination: join(dir, 'missing-dir', 'x', 'audit.log') }))).toThrow(
      expect.objectContaining({ code: 'AUDIT_OPEN_FAILED' }),
    );
  });

  it('writes nothing when disabled', async () => {
    const c = cfg({ enabled: false });
    const audit = createAudit(c);
    audit.record(entry({}));
    await audit.close();
    expect(() => readFileSync(c.destination)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });
});


