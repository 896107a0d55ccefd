import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  auditSchema,
  compileObserve,
  observeCrossChecks,
  rateLimitSchema,
  routeRateLimitSchema,
} from '../../../src/config/observe-schema.js';

// How schema.ts will hold these keys (top-level `audit`, `rateLimit`; route `rateLimit`).
const holder = z.strictObject({
  audit: auditSchema.prefault({}),
  rateLimit: rateLimitSchema.prefault({}),
  routes: z.array(z.strictObject({ name: z.string().optional(), path: z.string(), rateLimit: routeRateLimitSchema.optional() })),
});

function issues(data: unknown): string[] {
  const r = holder.safeParse(data);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.code}`);
}

describe('observe config', () => {
  it('fills every default and compiles durations into milliseconds', () => {
    const parsed = holder.parse({ routes: [{ path: '/' }] });
    const c = compileObserve(parsed, '/etc/gw');
    expect(c.audit).toEqual({ enabled: true, destination: 'stdout', bufferBytes: 4096, flushIntervalMs: 1000, maxBufferBytes: 16 * 1_048_576 });
    expect(c.rateLimit).toEqual({
      store: 'memory',
      maxKeys: 100_000,
      ipv6Prefix: 64,
      address: null,
      subject: null,
      spraying: { invalidTokens: 20, windowMs: 60_000, blockMs: 900_000 },
      routes: new Map(),
    });
    expect(Object.isFrozen(c.rateLimit)).toBe(true);
    expect(Object.isFrozen(c.audit)).toBe(true);
  });

  it('compiles global and route limits; a route key left out inherits, false turns it off', () => {
    const parsed = holder.parse({
      audit: { destination: 'logs/audit.log', flushInterval: '250ms' },
      rateLimit: { address: { points: 100, duration: '1m' }, subject: { points: 50, duration: '10s' }, spraying: { invalidTokens: 5, window: '30s', block: '1h' } },
      routes: [
        { path: '/login/', rateLimit: { address: { points: 5, duration: '1m' } } },
        { name: 'health', path: '/healthz', rateLimit: { address: false, subject: false } },
        { path: '/orders/' },
      ],
    });
    const c = compileObserve(parsed, '/etc/gw');
    expect(c.audit.destination).toBe('/etc/gw/logs/audit.log');
    expect(c.audit.flushIntervalMs).toBe(250);
    expect(c.rateLimit.address).toEqual({ points: 100, windowMs: 60_000 });
    expect(c.rateLimit.subject).toEqual({ points: 50, windowMs: 10_000 });
    expect(c.rateLimit.spraying).toEqual({ invalidTokens: 5, windowMs: 30_000, blockMs: 3_600_000 });
    expect([...c.rateLimit.routes.keys()]).toEqual(['/login/', 'health']);
    expect(c.rateLimit.routes.get('/login/')).toEqual({ address: { points: 5, windowMs: 60_000 }, subject: undefined });
    expect(c.rateLimit.routes.get('health')).toEqual({ address: null, subject: null });
  });

  it('keeps stderr and absolute paths as they are; spraying can be turned off', () => {
    expect(compileObserve(holder.parse({ audit: { destination: 'stderr' }, routes: [] }), '/x').audit.destination).toBe('stderr');
    expect(compileObserve(holder.parse({ audit: { destination: '/var/log/gw.log' }, routes: [] }), '/x').audit.destination).toBe('/var/log/gw.log');
    expect(compileObserve(holder.parse({ rateLimit: { spraying: { enabled: false } }, routes: [] }), '/x').rateLimit.spraying).toBeNull();
  });

  it('rejects unknown keys, stores other than memory, zero points and windows under a second', () => {
    expect(issues({ audit: { destnation: 'stdout' }, routes: [] })).toEqual(['audit: unrecognized_keys']);
    expect(issues({ rateLimit: { store: 'redis' }, routes: [] })).toEqual(['rateLimit.store: invalid_value']);
    expect(issues({ rateLimit: { address: { points: 0, duration: '1m' } }, routes: [] })).toEqual(['rateLimit.address.points: too_small']);
    expect(issues({ rateLimit: { address: { points: 5, duration: '500ms' } }, routes: [] })).toEqual(['rateLimit.address.duration: custom']);
    expect(issues({ rateLimit: { address: { points: 5, duration: 'soon' } }, routes: [] })).toEqual(['rateLimit.address.duration: custom']);
    expect(issues({ rateLimit: { address: { points: 5 } }, routes: [] })).toEqual(['rateLimit.address.duration: invalid_type']);
    expect(issues({ rateLimit: { spraying: { invalidTokens: 0 } }, routes: [] })).toEqual(['rateLimit.spraying.invalidTokens: too_small']);
    expect(issues({ routes: [{ path: '/', rateLimit: { address: true } }] })).toHaveLength(1);
    expect(issues({ routes: [{ path: '/', rateLimit: { adress: false } }] })).toEqual(['routes.0.rateLimit: unrecognized_keys']);
  });

  it('cross-checks: a subject limit on an auth: none route has no subject to count', () => {
    expect(
      observeCrossChecks({
        routes: [
          { path: '/public/', auth: 'none', rateLimit: { subject: { points: 1, duration: '1s' } } },
          { path: '/open/', auth: 'none', rateLimit: { subject: false, address: { points: 1, duration: '1s' } } },
          { path: '/orders/', rateLimit: { subject: { points: 1, duration: '1s' } } },
        ],
      }),
    ).toEqual([{ path: 'routes[0].rateLimit.subject', message: 'a subject limit needs auth: token or mfa (auth: none has no subject)' }]);
    expect(observeCrossChecks(null)).toEqual([]);
    expect(observeCrossChecks({ routes: 'x' })).toEqual([]);
  });
});
