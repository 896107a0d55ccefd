import { describe, expect, it } from 'vitest';
import { tmpdir } from 'node:os';
import { compileConfig } from '../../../src/config/load.js';
import { UpstreamPools } from '../../../src/proxy/pools.js';

const upstreams = (u: Record<string, unknown>) =>
  compileConfig({ upstreams: u, routes: [{ path: '/', upstream: Object.keys(u)[0], auth: 'none' }] }, tmpdir()).upstreams;

describe('UpstreamPools.reconfigure', () => {
  it('keeps the pool of an unchanged upstream, replaces a changed one, and keeps a removed one reachable until closeRetired', async () => {
    const pools = new UpstreamPools(upstreams({ a: { url: 'http://127.0.0.1:3001' }, b: { url: 'http://127.0.0.1:3002' }, c: { url: 'http://127.0.0.1:3003' } }));
    const [a, b, c] = ['a', 'b', 'c'].map((n) => pools.get(n));
    const changes = pools.reconfigure(upstreams({ a: { url: 'http://127.0.0.1:3001' }, b: { url: 'http://127.0.0.1:3002', connections: 4 }, d: { url: 'http://127.0.0.1:3004' } }));
    expect(changes).toEqual({ kept: ['a'], replaced: ['b'], added: ['d'], removed: ['c'] });
    expect(pools.get('a')).toBe(a);
    expect(pools.get('b')).not.toBe(b);
    expect(pools.get('b').upstream.connections).toBe(4);
    // A request that arrived under the old config can still be sent to c.
    expect(pools.get('c')).toBe(c);
    expect([...pools.entries()].map(([n]) => n)).toEqual(['a', 'b', 'd']);
    await pools.closeRetired();
    expect(b!.pool.closed).toBe(true);
    expect(c!.pool.closed).toBe(true);
    expect(a!.pool.closed).toBe(false);
    expect(() => pools.get('c')).toThrow(/no pool for upstream c/);
    await pools.close(true);
    expect(a!.pool.destroyed).toBe(true);
  });

  it('a removed upstream that comes back with other settings gets a new pool, and the old one retires', async () => {
    const pools = new UpstreamPools(upstreams({ a: { url: 'http://127.0.0.1:3001' }, b: { url: 'http://127.0.0.1:3002' } }));
    const b = pools.get('b');
    pools.reconfigure(upstreams({ a: { url: 'http://127.0.0.1:3001' } }));
    expect(pools.reconfigure(upstreams({ a: { url: 'http://127.0.0.1:3001' }, b: { url: 'http://127.0.0.1:4002' } }))).toEqual({ kept: ['a'], replaced: [], added: ['b'], removed: [] });
    expect(pools.get('b')).not.toBe(b);
    await pools.closeRetired();
    expect(b.pool.closed).toBe(true);
    await pools.close();
  });
});
