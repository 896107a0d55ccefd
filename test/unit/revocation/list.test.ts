/**
 * The revocation list on an injected clock: sub / sid / jti entries, the iat cutoff,
 * expiry, the bound, and the change feed other instances would be fed from.
 */
import { describe, expect, it } from 'vitest';
import type { Principal } from '../../../src/authz/claims.js';
import { RevocationList, type RevocationChange } from '../../../src/revocation/list.js';

const T0 = 1_800_000_000_000;
const HOUR = 3_600_000;

function setup(max?: number) {
  const clock = { t: T0 };
  const list = new RevocationList({ now: () => clock.t, maxTokenLifetimeMs: HOUR, ...(max !== undefined ? { max } : {}) });
  return { clock, list };
}

/** A verified principal of issuer `corp` issued at `iat` (seconds). */
function principal(over: Partial<Principal> = {}): Principal {
  return Object.freeze({
    issuer: 'corp', iss: 'https://idp', subject: 'alice', exp: T0 / 1000 + 600, amr: ['pwd', 'otp'], acr: undefined, authTime: undefined,
    roles: [], scopes: [], groups: [], sub: 'alice', sid: 'session-1', jti: 'token-1', iat: T0 / 1000 - 10, cnfJkt: undefined, clientId: 'rp',
    ...over,
  });
}

describe('RevocationList.check', () => {
  it('passes everything while empty', () => {
    expect(setup().list.check(principal())).toBeNull();
  });

  it.each([
    ['sub', 'alice'],
    ['sid', 'session-1'],
    ['jti', 'token-1'],
  ] as const)('refuses a token by %s issued at or before the cutoff, and one issued after it passes', (kind, value) => {
    const { list } = setup();
    const entry = list.add({ issuer: 'corp', kind, value, cutoffSec: T0 / 1000 });
    expect(list.check(principal())).toBe(entry);
    expect(list.check(principal({ iat: T0 / 1000 }))).toBe(entry);
    expect(list.check(principal({ iat: T0 / 1000 + 1 }))).toBeNull();
    expect(entry).toEqual({ issuer: 'corp', kind, value, cutoffSec: T0 / 1000, expiresAtMs: T0 + HOUR });
  });

  it('refuses a token without iat (it cannot show it is newer)', () => {
    const { list } = setup();
    list.add({ issuer: 'corp', kind: 'sub', value: 'alice' });
    expect(list.check(principal({ iat: undefined }))?.kind).toBe('sub');
  });

  it('matches within the issuer only, and other values not at all', () => {
    const { list } = setup();
    list.add({ issuer: 'other', kind: 'sub', value: 'alice' });
    list.add({ issuer: 'corp', kind: 'sid', value: 'session-2' });
    expect(list.check(principal())).toBeNull();
    expect(list.check(principal({ issuer: 'other' }))?.issuer).toBe('other');
    // The same value at two issuers: each entry answers for its own issuer.
    const corp = list.add({ issuer: 'corp', kind: 'sub', value: 'alice' });
    expect(list.check(principal())).toBe(corp);
    expect(list.check(principal({ issuer: 'other' }))?.issuer).toBe('other');
    expect(list.check(principal({ issuer: 'third' }))).toBeNull();
  });

  it('reads the sub claim, whatever the issuer maps its subject to; the subject when sub is unknown', () => {
    const { list } = setup();
    list.add({ issuer: 'corp', kind: 'sub', value: 'alice' });
    expect(list.check(principal({ subject: 'oid-7', sub: 'alice' }))?.value).toBe('alice');
    expect(list.check(principal({ subject: 'alice', sub: undefined }))?.value).toBe('alice');
    expect(list.check(principal({ subject: 'alice', sub: 'bob' }))).toBeNull();
  });

  it('answers with one kind even when several entries match: jti, then sid, then sub', () => {
    const { list } = setup();
    list.add({ issuer: 'corp', kind: 'sub', value: 'alice' });
    list.add({ issuer: 'corp', kind: 'sid', value: 'session-1' });
    expect(list.check(principal())?.kind).toBe('sid');
    list.add({ issuer: 'corp', kind: 'jti', value: 'token-1' });
    expect(list.check(principal())?.kind).toBe('jti');
    // The sid entry's cutoff has passed for a newer token, the sub entry's too: both pass it.
    expect(list.check(principal({ jti: 'token-2', iat: T0 / 1000 + 5 }))).toBeNull();
  });
});

describe('RevocationList: adding again, removing, expiry', () => {
  it('widens an entry added again to the later cutoff and expiry', () => {
    const { clock, list } = setup();
    list.add({ issuer: 'corp', kind: 'sub', value: 'alice', cutoffSec: T0 / 1000 - 100 });
    expect(list.check(principal())).toBeNull();
    clock.t += 1000;
    const widened = list.add({ issuer: 'corp', kind: 'sub', value: 'alice' });
    expect(widened).toEqual({ issuer: 'corp', kind: 'sub', value: 'alice', cutoffSec: T0 / 1000 + 1, expiresAtMs: T0 + 1000 + HOUR });
    expect(list.check(principal())).toBe(widened);
    // An older cutoff does not narrow it.
    expect(list.add({ issuer: 'corp', kind: 'sub', value: 'alice', cutoffSec: 5 }).cutoffSec).toBe(T0 / 1000 + 1);
    expect(list.stats().entries).toBe(1);
  });

  it('removes an entry, and says when there was none', () => {
    const { list } = setup();
    list.add({ issuer: 'corp', kind: 'sid', value: 'session-1' });
    expect(list.remove('corp', 'sid', 'session-2')).toBe(false);
    expect(list.remove('other', 'sid', 'session-1')).toBe(false);
    expect(list.remove('corp', 'sid', 'session-1')).toBe(true);
    expect(list.check(principal())).toBeNull();
    expect(list.stats().entries).toBe(0);
  });

  it('drops an entry once the longest token lifetime has passed since its cutoff', () => {
    const { clock, list } = setup();
    list.add({ issuer: 'corp', kind: 'sub', value: 'alice' });
    list.add({ issuer: 'corp', kind: 'sid', value: 's', cutoffSec: T0 / 1000 + 60 });
    clock.t += HOUR - 1;
    expect(list.sweep()).toBe(0);
    clock.t += 1;
    expect(list.sweep()).toBe(1);
    expect(list.list().map((e) => e.kind)).toEqual(['sid']);
    clock.t += 60_000;
    expect(list.stats()).toEqual({ entries: 0, byKind: { sub: 0, sid: 0, jti: 0 }, max: 100_000, evicted: 0, expired: 2 });
    // An entry whose expiry has passed already is not stored.
    list.add({ issuer: 'corp', kind: 'jti', value: 'j', cutoffSec: 0 });
    expect(list.stats().entries).toBe(0);
  });

  it('refuses inputs that are no entry, with a message naming the field', () => {
    const { list } = setup();
    expect(() => list.add({ issuer: '', kind: 'sub', value: 'a' })).toThrow(/issuer/);
    expect(() => list.add({ issuer: 'corp', kind: 'user' as never, value: 'a' })).toThrow(/kind/);
    expect(() => list.add({ issuer: 'corp', kind: 'sub', value: '' })).toThrow(/value/);
    expect(() => list.add({ issuer: 'corp', kind: 'sub', value: 'v'.repeat(1025) })).toThrow(/value/);
    expect(() => list.add({ issuer: 'corp', kind: 'sub', value: 'a', cutoffSec: Number.NaN })).toThrow(/finite/);
    expect(() => new RevocationList({ now: Date.now, maxTokenLifetimeMs: 0 })).toThrow(/maxTokenLifetimeMs/);
  });
});

describe('RevocationList: bounded', () => {
  it('when full, drops the entries nearest to their expiry, and counts them', () => {
    const { list } = setup(3);
    list.add({ issuer: 'corp', kind: 'sub', value: 'late', cutoffSec: T0 / 1000 - 1000 });
    list.add({ issuer: 'corp', kind: 'sub', value: 'soonest', cutoffSec: T0 / 1000 - 3000 });
    list.add({ issuer: 'corp', kind: 'sid', value: 'soon', cutoffSec: T0 / 1000 - 2000 });
    list.add({ issuer: 'corp', kind: 'jti', value: 'new' });
    expect(list.list().map((e) => e.value)).toEqual(['soon', 'late', 'new']);
    list.add({ issuer: 'corp', kind: 'jti', value: 'newer', cutoffSec: T0 / 1000 + 1 });
    expect(list.list().map((e) => e.value)).toEqual(['late', 'new', 'newer']);
    expect(list.stats()).toEqual({ entries: 3, byKind: { sub: 1, sid: 0, jti: 2 }, max: 3, evicted: 2, expired: 0 });
  });

  it('holds 100,000 entries by default, and the 100,001st evicts one', () => {
    const { list } = setup();
    for (let i = 0; i < 100_001; i++) list.add({ issuer: 'corp', kind: 'jti', value: `j${i}`, cutoffSec: T0 / 1000 + i });
    expect(list.stats()).toMatchObject({ entries: 100_000, evicted: 1 });
    expect(list.check(principal({ jti: 'j0', iat: 0 }))).toBeNull();
    expect(list.check(principal({ jti: 'j1', iat: 0 }))?.value).toBe('j1');
  });
});

describe('RevocationList: plain data in and out', () => {
  it('lists entries as JSON-ready objects, and feeds every change to listeners, with its origin', () => {
    const { clock, list } = setup(2);
    const changes: RevocationChange[] = [];
    const off = list.onChange((c) => changes.push(c));
    list.onChange(() => {
      throw new Error('a broken listener');
    });
    list.add({ issuer: 'corp', kind: 'sub', value: 'alice' });
    list.add({ issuer: 'corp', kind: 'sid', value: 's1' }, 'instance-b');
    list.add({ issuer: 'corp', kind: 'jti', value: 'j1' }); // evicts one (the list holds 2)
    list.remove('corp', 'jti', 'j1', 'instance-b');
    clock.t += HOUR;
    list.sweep();
    expect(changes.map((c) => [c.op, c.entry.value, c.op === 'remove' ? c.why : '', c.origin])).toEqual([
      ['add', 'alice', '', undefined],
      ['add', 's1', '', 'instance-b'],
      ['remove', 'alice', 'evicted', undefined],
      ['add', 'j1', '', undefined],
      ['remove', 'j1', 'removed', 'instance-b'],
      ['remove', 's1', 'expired', undefined],
    ]);
    off();
    const entry = list.add({ issuer: 'corp', kind: 'sub', value: 'bob' });
    expect(changes).toHaveLength(6);
    expect(JSON.parse(JSON.stringify(list.list()))).toEqual([entry]);
    // What one instance sends, another applies with add(): the same entry results.
    const other = setup().list;
    expect(other.add(JSON.parse(JSON.stringify(entry)))).toEqual(entry);
  });
});
