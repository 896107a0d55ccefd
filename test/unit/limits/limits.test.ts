import { describe, expect, it } from 'vitest';
import { SprayGuard, WindowLimiter, addressKey, createRateLimits } from '../../../src/limits/limits.js';
import type { CompiledRateLimit, CompiledRouteRateLimit } from '../../../src/config/observe-schema.js';

/** A clock the test moves by hand. */
function clock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

function config(over: Partial<CompiledRateLimit> = {}): CompiledRateLimit {
  return {
    maxKeys: 1000,
    ipv6Prefix: 64,
    address: null,
    subject: null,
    spraying: null,
    routes: new Map<string, CompiledRouteRateLimit>(),
    ...over,
  };
}

describe('WindowLimiter', () => {
  it('allows `points` requests per window, then answers Retry-After seconds until the window ends', () => {
    const c = clock();
    const l = new WindowLimiter({ points: 3, windowMs: 10_000 }, 100, c.now);
    expect([l.hit('a'), l.hit('a'), l.hit('a')]).toEqual([0, 0, 0]);
    expect(l.hit('a')).toBe(10); // whole window left
    c.advance(2_500);
    expect(l.hit('a')).toBe(8); // 7.5 s left, rounded up (RFC 9110 §10.2.3 takes whole seconds)
    c.advance(7_499);
    expect(l.hit('a')).toBe(1); // 1 ms left is still 1 second, never 0
    c.advance(1); // exactly at the window's end: a new window
    expect([l.hit('a'), l.hit('a'), l.hit('a'), l.hit('a')]).toEqual([0, 0, 0, 10]);
  });

  it('keeps keys apart and forgets the least recently seen beyond max', () => {
    const c = clock();
    const l = new WindowLimiter({ points: 1, windowMs: 60_000 }, 1000, c.now);
    expect(l.hit('a')).toBe(0);
    expect(l.hit('b')).toBe(0);
    expect(l.hit('a')).toBe(60);
    for (let i = 0; i < 100_000; i++) l.hit(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    expect(l.size).toBeLessThanOrEqual(1000);
  });
});

describe('SprayGuard', () => {
  it('blocks an address after more than N invalid tokens in a window, reports it once, and unblocks after the cooling period', () => {
    const c = clock();
    const g = new SprayGuard(3, 60_000, 300_000, 1000, c.now);
    expect(g.blocked('6.6.6.6')).toBe(0);
    expect([g.invalidToken('6.6.6.6'), g.invalidToken('6.6.6.6'), g.invalidToken('6.6.6.6')]).toEqual([false, false, false]);
    expect(g.blocked('6.6.6.6')).toBe(0);
    expect(g.invalidToken('6.6.6.6')).toBe(true); // the 4th: blocked, reported once
    expect(g.blocked('6.6.6.6')).toBe(300);
    expect(g.blocked('7.7.7.7')).toBe(0);
    // Verifications that finish during the block are not reported again.
    expect(g.invalidToken('6.6.6.6')).toBe(false);
    c.advance(299_000);
    expect(g.blocked('6.6.6.6')).toBe(1);
    c.advance(1_000);
    expect(g.blocked('6.6.6.6')).toBe(0);
    // Counting starts afresh after the block.
    expect([g.invalidToken('6.6.6.6'), g.invalidToken('6.6.6.6'), g.invalidToken('6.6.6.6')]).toEqual([false, false, false]);
    expect(g.invalidToken('6.6.6.6')).toBe(true);
    expect(g.blocked('6.6.6.6')).toBe(300);
  });

  it('does not block when the invalid tokens are spread over more than one window', () => {
    const c = clock();
    const g = new SprayGuard(3, 60_000, 300_000, 1000, c.now);
    for (let i = 0; i < 3; i++) expect(g.invalidToken('6.6.6.6')).toBe(false);
    c.advance(60_000);
    for (let i = 0; i < 3; i++) expect(g.invalidToken('6.6.6.6')).toBe(false);
    expect(g.blocked('6.6.6.6')).toBe(0);
  });

  it('stays within max entries however many unique addresses send invalid tokens', () => {
    const c = clock();
    const g = new SprayGuard(3, 60_000, 300_000, 1000, c.now);
    for (let i = 0; i < 100_000; i++) {
      const addr = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      g.invalidToken(addr);
      g.blocked(addr);
    }
    expect(g.size).toBeLessThanOrEqual(1000);
  });
});

describe('addressKey', () => {
  it('keeps IPv4, cuts IPv6 to the prefix, and leaves unparsable text as it is', () => {
    expect(addressKey('203.0.113.7', 64)).toBe('203.0.113.7');
    expect(addressKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd', 64)).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2::1', 64)).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1', 64)).toBe('2001:db8:0:0::/64');
    expect(addressKey('2001:db8:1:2ff::1', 56)).toBe('2001:db8:1:200::/56');
    expect(addressKey('::1', 64)).toBe('0:0:0:0::/64');
    expect(addressKey('64:ff9b::192.0.2.33', 96)).toBe('64:ff9b:0:0:0:0::/96');
    expect(addressKey('::ffff:192.0.2.33', 128)).toBe('::ffff:192.0.2.33');
    expect(addressKey('2001:db8::1', 128)).toBe('2001:db8::1');
    expect(addressKey('not:an:address', 64)).toBe('not:an:address');
    expect(addressKey('1:2:3:4:5:6:7:8:9', 64)).toBe('1:2:3:4:5:6:7:8:9');
  });
});

describe('createRateLimits', () => {
  it('costs nothing and limits nothing when no limits are configured', () => {
    const rl = createRateLimits(config());
    for (let i = 0; i < 1000; i++) expect(rl.checkAddress('orders', '10.0.0.1')).toBe(0);
    expect(rl.checkSubject('orders', 'corp', 'alice')).toBe(0);
    expect(rl.blocked('10.0.0.1')).toBe(0);
    expect(rl.invalidToken('10.0.0.1')).toBe(false);
    expect(rl.sizes()).toEqual({});
  });

  it('applies the global address limit across routes, and a route limit to its own counter only', () => {
    const c = clock();
    const rl = createRateLimits(
      config({
        address: { points: 2, windowMs: 60_000 },
        routes: new Map<string, CompiledRouteRateLimit>([
          ['login', { address: { points: 1, windowMs: 10_000 }, subject: undefined }],
          ['health', { address: null, subject: undefined }],
        ]),
      }),
      { now: c.now },
    );
    // `orders` and `catalog` inherit the global limit and share its counter.
    expect(rl.checkAddress('orders', '10.0.0.1')).toBe(0);
    expect(rl.checkAddress('catalog', '10.0.0.1')).toBe(0);
    expect(rl.checkAddress('orders', '10.0.0.1')).toBe(60);
    // `login` has its own counter and rule: not affected by the global one, and vice versa.
    expect(rl.checkAddress('login', '10.0.0.1')).toBe(0);
    expect(rl.checkAddress('login', '10.0.0.1')).toBe(10);
    expect(rl.checkAddress('login', '10.0.0.2')).toBe(0);
    // `health` turned it off.
    for (let i = 0; i < 10; i++) expect(rl.checkAddress('health', '10.0.0.1')).toBe(0);
    // Other addresses are untouched.
    expect(rl.checkAddress('orders', '10.0.0.2')).toBe(0);
    c.advance(10_000);
    expect(rl.checkAddress('login', '10.0.0.1')).toBe(0);
    expect(rl.checkAddress('orders', '10.0.0.1')).toBe(50);
    expect(Object.keys(rl.sizes()).sort()).toEqual(['address', 'address:login']);
  });

  it('limits subjects per issuer, per route, and not tokens without a subject', () => {
    const c = clock();
    const rl = createRateLimits(
      config({
        subject: { points: 1, windowMs: 30_000 },
        routes: new Map<string, CompiledRouteRateLimit>([['bulk', { address: undefined, subject: { points: 3, windowMs: 30_000 } }]]),
      }),
      { now: c.now },
    );
    expect(rl.checkSubject('orders', 'corp', 'alice')).toBe(0);
    expect(rl.checkSubject('orders', 'corp', 'alice')).toBe(30);
    // Same `sub` from another issuer is another person.
    expect(rl.checkSubject('orders', 'partner', 'alice')).toBe(0);
    expect(rl.checkSubject('orders', 'corp', 'bob')).toBe(0);
    expect([rl.checkSubject('bulk', 'corp', 'alice'), rl.checkSubject('bulk', 'corp', 'alice'), rl.checkSubject('bulk', 'corp', 'alice')]).toEqual([0, 0, 0]);
    expect(rl.checkSubject('bulk', 'corp', 'alice')).toBe(30);
    for (let i = 0; i < 5; i++) expect(rl.checkSubject('orders', 'corp', undefined)).toBe(0);
    // No address limit configured: address checks stay free.
    expect(rl.checkAddress('orders', '10.0.0.1')).toBe(0);
  });

  it('counts IPv6 clients per /64 by default, and per address with ipv6Prefix 128', () => {
    const c = clock();
    const per64 = createRateLimits(config({ address: { points: 1, windowMs: 60_000 } }), { now: c.now });
    expect(per64.checkAddress('r', '2001:db8:1:2::1')).toBe(0);
    expect(per64.checkAddress('r', '2001:db8:1:2:ffff::9')).toBe(60); // same /64
    expect(per64.checkAddress('r', '2001:db8:1:3::1')).toBe(0); // next /64
    const per128 = createRateLimits(config({ ipv6Prefix: 128, address: { points: 1, windowMs: 60_000 } }), { now: c.now });
    expect(per128.checkAddress('r', '2001:db8:1:2::1')).toBe(0);
    expect(per128.checkAddress('r', '2001:db8:1:2::2')).toBe(0);
  });

  it('blocks a spraying address before verification, for every route, and spraying from a /64 counts together', () => {
    const c = clock();
    const rl = createRateLimits(config({ spraying: { invalidTokens: 2, windowMs: 60_000, blockMs: 900_000 } }), { now: c.now });
    expect(rl.invalidToken('2001:db8:1:2::a')).toBe(false);
    expect(rl.invalidToken('2001:db8:1:2::b')).toBe(false);
    expect(rl.invalidToken('2001:db8:1:2::c')).toBe(true);
    expect(rl.blocked('2001:db8:1:2::d')).toBe(900);
    expect(rl.blocked('2001:db8:1:3::d')).toBe(0);
    expect(rl.blocked('10.0.0.1')).toBe(0);
    c.advance(900_000);
    expect(rl.blocked('2001:db8:1:2::d')).toBe(0);
  });

  it('stays within maxKeys with 100k unique addresses on every limiter', () => {
    const c = clock();
    const rl = createRateLimits(
      config({
        maxKeys: 1000,
        address: { points: 5, windowMs: 60_000 },
        spraying: { invalidTokens: 5, windowMs: 60_000, blockMs: 60_000 },
      }),
      { now: c.now },
    );
    for (let i = 0; i < 100_000; i++) {
      const addr = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      rl.blocked(addr);
      rl.checkAddress('orders', addr);
      rl.invalidToken(addr);
    }
    const sizes = rl.sizes();
    expect(sizes['address']).toBeLessThanOrEqual(1000);
    expect(sizes['spraying']).toBeLessThanOrEqual(1000);
    expect(sizes['address']).toBeGreaterThan(0);
  });
});

describe('RateLimits.reconfigure (a reload)', () => {
  it('keeps the counters and blocks of unchanged rules, starts changed and new ones from zero, and drops removed ones', () => {
    const c = clock();
    const spraying = { invalidTokens: 1, windowMs: 60_000, blockMs: 600_000 };
    const before = config({
      address: { points: 1, windowMs: 60_000 },
      subject: { points: 1, windowMs: 60_000 },
      spraying,
      routes: new Map<string, CompiledRouteRateLimit>([['login', { address: { points: 1, windowMs: 60_000 }, subject: undefined }]]),
    });
    const rl = createRateLimits(before, { now: c.now });
    const checkAddress = rl.checkAddress;
    expect(rl.checkAddress('orders', '10.0.0.1')).toBe(0);
    expect(rl.checkSubject('orders', 'corp', 'alice')).toBe(0);
    expect(rl.checkAddress('login', '10.0.0.1')).toBe(0);
    rl.invalidToken('10.0.0.9');
    expect(rl.invalidToken('10.0.0.9')).toBe(true); // blocked

    const changes = rl.reconfigure(
      config({
        address: { points: 1, windowMs: 60_000 }, // unchanged
        subject: { points: 5, windowMs: 60_000 }, // changed
        spraying,
        routes: new Map<string, CompiledRouteRateLimit>([['signup', { address: { points: 1, windowMs: 60_000 }, subject: undefined }]]),
      }),
    );
    expect(changes).toEqual({ kept: ['address', 'spraying'], reset: ['subject', 'address:signup'], removed: ['address:login'] });
    // The same object, with new checks: the services hold it.
    expect(rl.checkAddress).not.toBe(checkAddress);
    expect(rl.checkAddress('orders', '10.0.0.1')).toBe(60); // its counter survived the reload
    expect(rl.checkSubject('orders', 'corp', 'alice')).toBe(0); // a new rule counts from zero
    expect(rl.checkAddress('login', '10.0.0.1')).toBe(60); // login now takes the global limit (its own counter is gone)
    expect(rl.blocked('10.0.0.9')).toBe(600); // the spraying block holds
    expect(Object.keys(rl.sizes()).sort()).toEqual(['address', 'address:signup', 'spraying', 'subject']);

    // A changed key bound or IPv6 prefix resets every limiter it shapes.
    expect(rl.reconfigure(config({ address: { points: 1, windowMs: 60_000 }, spraying, ipv6Prefix: 56 }))).toEqual({
      kept: [],
      reset: ['address', 'spraying'],
      removed: ['subject', 'address:signup'],
    });
    expect(rl.checkAddress('orders', '10.0.0.1')).toBe(0);
    expect(rl.blocked('10.0.0.9')).toBe(0);
    // And no limits at all: the constant checks again.
    rl.reconfigure(config());
    for (let i = 0; i < 10; i++) expect(rl.checkAddress('orders', '10.0.0.1')).toBe(0);
    expect(rl.sizes()).toEqual({});
  });
});
