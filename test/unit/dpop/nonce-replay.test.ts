/**
 * Server nonces (RFC 9449 §8, §9) and proof replay (§11.1), on an injected clock.
 */
import { describe, expect, it } from 'vitest';
import { NonceSource } from '../../../src/dpop/nonce.js';
import { checkReplay, MemoryReplayStore } from '../../../src/dpop/replay.js';
import { proofFailure } from '../../../src/dpop/proof.js';

function clock(t = 1_800_000_000_000) {
  const c = { t, now: () => c.t };
  return c;
}

describe('NonceSource', () => {
  it('issues one NQCHAR nonce per slot, valid in its slot and the next, not after', () => {
    const c = clock();
    const n = new NonceSource({ now: c.now, slotMs: 60_000 });
    const first = n.current();
    expect(first).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(n.current()).toBe(first);
    expect(n.check(first)).toBe(true);
    c.t += 60_000;
    const second = n.current();
    expect(second).not.toBe(first);
    expect(n.check(first)).toBe(true);
    expect(n.check(second)).toBe(true);
    c.t += 60_000;
    expect(n.check(first)).toBe(false);
    expect(n.check(second)).toBe(true);
    // A jump of several slots: only the new current and previous slots count.
    c.t += 10 * 60_000;
    expect(n.check(second)).toBe(false);
    expect(n.check(n.current())).toBe(true);
  });

  it('refuses values it never issued, and a nonce of another key; instances sharing a secret agree', () => {
    const c = clock();
    const secret = new Uint8Array(32).fill(7);
    const a = new NonceSource({ now: c.now, secret });
    const b = new NonceSource({ now: c.now, secret });
    const other = new NonceSource({ now: c.now });
    expect(b.check(a.current())).toBe(true);
    expect(other.check(a.current())).toBe(false);
    const nonce = a.current();
    const altered = `${nonce.slice(0, 21)}${nonce.endsWith('A') ? 'B' : 'A'}`;
    for (const v of ['', 'x', altered, `${nonce}x`]) expect(a.check(v)).toBe(false);
  });

  it('refuses a short secret and a slot under a second', () => {
    expect(() => new NonceSource({ now: Date.now, secret: new Uint8Array(16) })).toThrow(/32 bytes/);
    expect(() => new NonceSource({ now: Date.now, slotMs: 10 })).toThrow(/slotMs/);
  });
});

describe('MemoryReplayStore', () => {
  it('remembers a jti until its deadline, then forgets it', () => {
    const c = clock();
    const s = new MemoryReplayStore({ now: c.now });
    expect(s.remember('a', c.t + 1000)).toBe(true);
    expect(s.remember('a', c.t + 1000)).toBe(false);
    expect(s.remember('b', c.t + 1000)).toBe(true);
    c.t += 1000;
    expect(s.remember('a', c.t + 1000)).toBe(true);
    expect(s.remember('a', c.t + 1000)).toBe(false);
  });

  it('sweeps expired entries as it goes, and stores nothing already past', () => {
    const c = clock();
    const s = new MemoryReplayStore({ now: c.now });
    for (let i = 0; i < 100; i++) s.remember(`old-${i}`, c.t + 10);
    expect(s.size).toBe(100);
    c.t += 10;
    for (let i = 0; i < 25; i++) s.remember(`new-${i}`, c.t + 10);
    // Four expired entries go per call: 100 gone after 25 calls.
    expect(s.size).toBe(25);
    expect(s.remember('late', c.t)).toBe(true);
    expect(s.size).toBe(25);
  });

  it('holds at most max entries, dropping the oldest, and counts live ones dropped', () => {
    const c = clock();
    const s = new MemoryReplayStore({ now: c.now, max: 3 });
    for (const j of ['a', 'b', 'c', 'd']) expect(s.remember(j, c.t + 1000)).toBe(true);
    expect(s.size).toBe(3);
    expect(s.evictedLive).toBe(1);
    // 'a' was dropped early: its replay is no longer detected (what the count warns of).
    expect(s.remember('a', c.t + 1000)).toBe(true);
    expect(s.remember('d', c.t + 1000)).toBe(false);
  });
});

describe('checkReplay', () => {
  it('keys on the proof key and jti, until iat + window', async () => {
    const c = clock();
    const s = new MemoryReplayStore({ now: c.now });
    const iat = c.t / 1000;
    const proof = { ok: true as const, jkt: 'key-1', jti: 'j-1', iat };
    expect(await checkReplay(s, proof, 30)).toBeNull();
    expect(await checkReplay(s, proof, 30)).toBe(proofFailure('replayed'));
    // Another client's key with the same jti is another proof.
    expect(await checkReplay(s, { ...proof, jkt: 'key-2' }, 30)).toBeNull();
    c.t += 30_000;
    expect(await checkReplay(s, proof, 30)).toBeNull();
  });

  it('works with an asynchronous store', async () => {
    const seen = new Set<string>();
    const store = { remember: async (jti: string) => !seen.has(jti) && !!seen.add(jti) };
    const proof = { ok: true as const, jkt: 'k', jti: 'j', iat: 1 };
    expect(await checkReplay(store, proof, 30)).toBeNull();
    expect((await checkReplay(store, proof, 30))?.reason).toBe('replayed');
  });
});
