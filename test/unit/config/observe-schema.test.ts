import { describe, expect, it } from 'vitest';
import { ConfigError, compileConfig } from '../../../src/config/load.js';

// The audit / rateLimit keys through the real config schema and compiler (src/config/),
// as `check` and `start` see them.
const BASE = { upstreams: { app: { url: 'http://127.0.0.1:9' } } };
const compile = (extra: Record<string, unknown>, routes: unknown[] = [{ path: '/', upstream: 'app', auth: 'none' }]) =>
  compileConfig({ ...BASE, routes, ...extra }, '/etc/gw');

/** The `path` of every problem a config has ([] when it compiles). */
function problemPaths(extra: Record<string, unknown>, routes?: unknown[]): string[] {
  try {
    compile(extra, routes);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => p.path);
    throw err;
  }
}

describe('observe config', () => {
  it('fills every default and compiles durations into milliseconds', () => {
    const c = compile({});
    expect(c.audit).toEqual({ enabled: true, destination: 'stdout', bufferBytes: 65_536, flushIntervalMs: 1000, maxBufferBytes: 16 * 1_048_576 });
    expect(c.rateLimit).toEqual({
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
    const c = compile(
      {
        issuers: [{ name: 'corp', issuer: 'https://idp.example', jwksUri: 'https://idp.example/certs', audience: ['api'] }],
        audit: { destination: 'logs/audit.log', flushInterval: '250ms' },
        rateLimit: { address: { points: 100, duration: '1m' }, subject: { points: 50, duration: '10s' }, spraying: { invalidTokens: 5, window: '30s', block: '1h' } },
      },
      [
        { path: '/login/', upstream: 'app', rateLimit: { address: { points: 5, duration: '1m' } } },
        { name: 'health', path: '/healthz', upstream: 'app', auth: 'token', rateLimit: { address: false, subject: false } },
        { path: '/orders/', upstream: 'app' },
      ],
    );
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
    expect(compile({ audit: { destination: 'stderr' } }).audit.destination).toBe('stderr');
    expect(compile({ audit: { destination: '/var/log/gw.log' } }).audit.destination).toBe('/var/log/gw.log');
    expect(compile({ rateLimit: { spraying: { enabled: false } } }).rateLimit.spraying).toBeNull();
  });

  it('rejects unknown keys, unknown stores, zero points and windows under a second, at the key that is wrong', () => {
    expect(problemPaths({ audit: { destnation: 'stdout' } })).toEqual(['audit.destnation']);
    expect(problemPaths({ rateLimit: { store: 'postgres' } })).toEqual(['rateLimit.store']);
    expect(problemPaths({ rateLimit: { address: { points: 0, duration: '1m' } } })).toEqual(['rateLimit.address.points']);
    expect(problemPaths({ rateLimit: { address: { points: 5, duration: '500ms' } } })).toEqual(['rateLimit.address.duration']);
    expect(problemPaths({ rateLimit: { address: { points: 5, duration: 'soon' } } })).toEqual(['rateLimit.address.duration']);
    expect(problemPaths({ rateLimit: { address: { points: 5 } } })).toEqual(['rateLimit.address.duration']);
    expect(problemPaths({ rateLimit: { spraying: { invalidTokens: 0 } } })).toEqual(['rateLimit.spraying.invalidTokens']);
    expect(problemPaths({}, [{ path: '/', upstream: 'app', auth: 'none', rateLimit: { address: true } }])).toEqual(['routes[0].rateLimit.address']);
    expect(problemPaths({}, [{ path: '/', upstream: 'app', auth: 'none', rateLimit: { adress: false } }])).toEqual(['routes[0].rateLimit.adress']);
  });

  it('cross-checks: a subject limit on an auth: none route has no subject to count', () => {
    const issuers = [{ name: 'corp', issuer: 'https://idp.example', jwksUri: 'https://idp.example/certs', audience: ['api'] }];
    expect(
      problemPaths({ issuers }, [
        { path: '/public/', upstream: 'app', auth: 'none', rateLimit: { subject: { points: 1, duration: '1s' } } },
        { path: '/open/', upstream: 'app', auth: 'none', rateLimit: { subject: false, address: { points: 1, duration: '1s' } } },
        { path: '/orders/', upstream: 'app', rateLimit: { subject: { points: 1, duration: '1s' } } },
      ]),
    ).toEqual(['routes[0].rateLimit.subject']);
  });
});
