import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { REASONS, REASON_WORDS, isReason } from '../../src/reasons.js';
import { tokenFailure } from '../../src/authn/failures.js';

const README = readFileSync(resolve(import.meta.dirname, '../../README.md'), 'utf8');

/** The rows of README's "Every reason" table: reason → [status, error]. */
function readmeReasons(): Map<string, [number, string | null]> {
  const at = README.indexOf('#### Every reason');
  expect(at).toBeGreaterThan(0);
  const rows = new Map<string, [number, string | null]>();
  for (const line of README.slice(at).split('\n').slice(1)) {
    if (line.startsWith('#')) break;
    const m = /^\| `([a-z_]+)` \| (\d{3}) \| (—|`[a-z_]+`) \|/.exec(line);
    if (m === null) continue;
    expect(rows.has(m[1]!), `${m[1]} listed twice`).toBe(false);
    rows.set(m[1]!, [Number(m[2]), m[3] === '—' ? null : m[3]!.slice(1, -1)]);
  }
  return rows;
}

describe('the vocabulary', () => {
  it('README "Every reason" lists exactly these reasons, with their status and error', () => {
    const readme = readmeReasons();
    expect([...readme.keys()].sort()).toEqual([...REASON_WORDS].sort());
    for (const word of REASON_WORDS) expect(readme.get(word), word).toEqual([REASONS[word].status, REASONS[word].error]);
  });

  it('every description is public text an RFC 6750 §3 quoted-string can carry', () => {
    for (const word of REASON_WORDS) expect(REASONS[word].description, word).toMatch(/^[\x20\x21\x23-\x5b\x5d-\x7e]{1,140}$/);
  });

  it('token failures are 401 invalid_token with an invalid_token challenge; only they are negative-cached', () => {
    for (const word of REASON_WORDS) {
      const r = REASONS[word];
      if (r.stage === 'token') expect([r.status, r.error, r.challenge], word).toEqual([401, 'invalid_token', 'invalid_token']);
      else expect(r.negativeCache, word).toBe(false);
    }
    // A token that becomes valid by itself, or whose key may appear, is never remembered as bad.
    expect(REASONS.not_yet_valid.negativeCache).toBe(false);
    expect(REASONS.unknown_kid.negativeCache).toBe(false);
    expect(REASONS.bad_signature.negativeCache).toBe(true);
  });

  it('429 and 503 answers carry Retry-After; framing and body failures close the connection', () => {
    for (const word of REASON_WORDS) {
      const r = REASONS[word];
      expect(r.retryAfter, word).toBe(r.status === 429 || r.status === 503);
    }
    for (const word of ['bad_request', 'headers_too_large', 'payload_too_large', 'request_timeout', 'shutting_down'] as const) expect(REASONS[word].close, word).toBe(true);
    expect(REASONS.not_found.close).toBe(false);
  });

  it('the audit decision: allow only for what reached the upstream', () => {
    expect(REASONS.ok.decision).toBe('allow');
    expect(REASONS.upstream_timeout.decision).toBe('allow');
    expect(REASONS.mfa_required.decision).toBe('deny');
    expect(REASONS.client_aborted.decision).toBe('dispatched');
  });

  it('knows its words and nothing else', () => {
    expect(isReason('expired')).toBe(true);
    expect(isReason('/orders/42')).toBe(false);
    expect(isReason('toString')).toBe(false);
  });

  it('token failures are one frozen object per reason, their description from the table', () => {
    expect(tokenFailure('expired')).toEqual({ ok: false, code: 'invalid_token', reason: 'expired', description: 'token expired' });
    expect(tokenFailure('expired')).toBe(tokenFailure('expired'));
    expect(Object.isFrozen(tokenFailure('malformed'))).toBe(true);
    expect(tokenFailure('overloaded')).toMatchObject({ code: 'overloaded', description: 'token verification overloaded' });
  });
});
