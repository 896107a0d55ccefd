import { describe, expect, it } from 'vitest';
import { tmpdir } from 'node:os';
import { compileConfig } from '../../../src/config/load.js';
import type { CompiledRoute } from '../../../src/config/types.js';
import { normalizePath } from '../../../src/routes/normalize.js';
import { buildRouteTable, upstreamPath } from '../../../src/routes/table.js';

/** A route as src/config/load.ts compiles it; only the fields matching and stripping read matter. */
function route(path: string, stripPrefix = false): CompiledRoute {
  return {
    name: path,
    path,
    prefix: path.endsWith('/') ? path.slice(0, -1) : path,
    methods: null,
    allow: '',
    upstream: 'u',
    stripPrefix,
    forwardAuthorization: true,
    policy: {
      auth: 'none',
      issuers: null,
      roles: [],
      scopes: [],
      groups: [],
      mfa: { amr: ['mfa'], acr: [], maxAgeSec: 3600 },
      requiredAcr: [],
    },
  };
}

// Listed shortest first on purpose: compileConfig sorts, so the table sees longest first.
const config = compileConfig(
  {
    upstreams: { u: { url: 'http://127.0.0.1:1/v1' } },
    routes: [
      { path: '/public/', upstream: 'u', auth: 'none' },
      { path: '/orders/', upstream: 'u', auth: 'none', stripPrefix: true },
      { path: '/orders/refunds/', upstream: 'u', auth: 'none' },
      { path: '/orders/refunds/bulk', upstream: 'u', auth: 'none' },
      { path: '/exact', upstream: 'u', auth: 'none' },
    ],
  },
  tmpdir(),
);
const table = buildRouteTable(config.routes);
const nameOf = (path: string) => table.match(path)?.path;

describe('buildRouteTable', () => {
  it('picks the longest matching prefix', () => {
    expect(nameOf('/orders/1')).toBe('/orders/');
    expect(nameOf('/orders/refunds')).toBe('/orders/refunds/');
    expect(nameOf('/orders/refunds/7')).toBe('/orders/refunds/');
    expect(nameOf('/orders/refunds/bulk')).toBe('/orders/refunds/bulk');
    expect(nameOf('/orders/refunds/bulk/2')).toBe('/orders/refunds/bulk');
    expect(nameOf('/orders/refundsX')).toBe('/orders/');
  });

  it('matches only on a segment boundary', () => {
    for (const p of ['/orders', '/orders/', '/orders/1', '/orders/a/b/']) expect(nameOf(p), p).toBe('/orders/');
    for (const p of ['/ordersX', '/orders.json', '/orders-', '/order', '/Orders/1', '/']) expect(nameOf(p), p).toBeUndefined();
    expect(nameOf('/exact')).toBe('/exact');
    expect(nameOf('/exact/sub')).toBe('/exact');
    expect(nameOf('/exactly')).toBeUndefined();
  });

  it('returns undefined when no route matches', () => {
    expect(table.match('/private')).toBeUndefined();
    expect(table.match('/')).toBeUndefined();
    expect(buildRouteTable([]).match('/a')).toBeUndefined();
  });

  it('lets the root route match everything the longer routes do not', () => {
    const t = buildRouteTable([route('/a/b/'), route('/a/'), route('/')]);
    expect(t.match('/')?.path).toBe('/');
    expect(t.match('/x/y')?.path).toBe('/');
    expect(t.match('/aa')?.path).toBe('/');
    expect(t.match('/a')?.path).toBe('/a/');
    expect(t.match('/a/bc')?.path).toBe('/a/');
    expect(t.match('/a/b/c')?.path).toBe('/a/b/');
  });

  it('still picks the longest prefix when handed routes shortest first', () => {
    const t = buildRouteTable([route('/'), route('/a/'), route('/a/b/')]);
    expect(t.match('/a/b/c')?.path).toBe('/a/b/');
    expect(t.match('/a/c')?.path).toBe('/a/');
    expect(t.match('/c')?.path).toBe('/');
  });

  it('never matches on a query-like string: the table only sees the normalized path', () => {
    // The front end splits the query off before normalizing; a `?` that reached the path
    // would make it invalid, and `/private` never matches `/public/` whatever follows it.
    expect(normalizePath('/private?x=/public/')).toBeNull();
    expect(table.match('/private')).toBeUndefined();
    expect(nameOf('/public')).toBe('/public/');
    // Even a raw string with a query in it is compared as a whole path, segment by segment.
    expect(table.match('/private?/public/')).toBeUndefined();
    expect(table.match('/public?x')).toBeUndefined();
  });

  it('matches the route a dot-segment path really names, after normalization', () => {
    expect(nameOf(normalizePath('/public/../orders/refunds/1')!)).toBe('/orders/refunds/');
    expect(normalizePath('/public/..%2Forders')).toBeNull();
  });
});

describe('upstreamPath', () => {
  it('keeps the path when stripPrefix is off, prepending the base path', () => {
    expect(upstreamPath(route('/orders/'), '', '/orders/1')).toBe('/orders/1');
    expect(upstreamPath(route('/orders/'), '/v1', '/orders/1')).toBe('/v1/orders/1');
    expect(upstreamPath(route('/'), '/v1', '/')).toBe('/v1/');
  });

  it('strips the prefix, leaving at least /', () => {
    const r = route('/orders/', true);
    expect(upstreamPath(r, '', '/orders/1')).toBe('/1');
    expect(upstreamPath(r, '', '/orders/a/b/')).toBe('/a/b/');
    expect(upstreamPath(r, '', '/orders')).toBe('/');
    expect(upstreamPath(r, '', '/orders/')).toBe('/');
    expect(upstreamPath(r, '/v1', '/orders/1')).toBe('/v1/1');
    expect(upstreamPath(r, '/v1', '/orders')).toBe('/v1/');
  });

  it('strips nothing from the root route', () => {
    expect(upstreamPath(route('/', true), '', '/x/y')).toBe('/x/y');
    expect(upstreamPath(route('/', true), '/api', '/x')).toBe('/api/x');
  });

  it('never cuts a path mid-segment', () => {
    expect(upstreamPath(route('/orders/', true), '', '/ordersX/1')).toBe('/ordersX/1');
  });

  it('works with the compiled config and the upstream base path from the URL', () => {
    const basePath = config.upstreams.get('u')!.basePath;
    expect(basePath).toBe('/v1');
    const r = table.match('/orders/7')!;
    expect(upstreamPath(r, basePath, '/orders/7')).toBe('/v1/7');
    const pub = table.match('/public/x')!;
    expect(upstreamPath(pub, basePath, '/public/x')).toBe('/v1/public/x');
  });
});
