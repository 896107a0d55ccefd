import { describe, expect, it } from 'vitest';
import { tmpdir } from 'node:os';
import { compileConfig } from '../../../src/config/load.js';
import { normalizePath } from '../../../src/routes/normalize.js';
import { buildRouteTable, upstreamPath } from '../../../src/routes/table.js';
import { route } from './route.js';

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

describe('path parameters in the compiled routes', () => {
  const compile = (server: object, routes: object[]) =>
    compileConfig({ server, upstreams: { u: { url: 'http://127.0.0.1:1' } }, routes }, tmpdir());

  it('are refused by default, on every route, and the table says no route takes them', () => {
    const c = compile({}, [{ path: '/a/', upstream: 'u', auth: 'none' }]);
    expect(c.server.pathParameters).toBe('reject');
    expect(c.routes[0]!.allowPathParameters).toBe(false);
    expect(buildRouteTable(c.routes).pathParameters).toBe(false);
  });

  it('follow server.pathParameters unless the route sets its own', () => {
    const routes = [
      { path: '/a/', upstream: 'u', auth: 'none' },
      { path: '/b/', upstream: 'u', auth: 'none', pathParameters: 'allow' },
      { path: '/c/', upstream: 'u', auth: 'none', pathParameters: 'reject' },
    ];
    const allowed = (c: ReturnType<typeof compile>) => Object.fromEntries(c.routes.map((r) => [r.path, r.allowPathParameters]));
    const rejecting = compile({ pathParameters: 'reject' }, routes);
    expect(allowed(rejecting)).toEqual({ '/a/': false, '/b/': true, '/c/': false });
    expect(buildRouteTable(rejecting.routes).pathParameters).toBe(true);
    const allowing = compile({ pathParameters: 'allow' }, routes);
    expect(allowing.server.pathParameters).toBe('allow');
    expect(allowed(allowing)).toEqual({ '/a/': true, '/b/': true, '/c/': false });
    // Global allow, but every route refuses: the normalizer may refuse `;` itself.
    expect(buildRouteTable(compile({ pathParameters: 'allow' }, [routes[2]!]).routes).pathParameters).toBe(false);
  });

  it('reject a value other than reject / allow, and a route path with `;`', () => {
    expect(() => compile({ pathParameters: 'strip' }, [{ path: '/a/', upstream: 'u', auth: 'none' }])).toThrow(
      /^server\.pathParameters: "strip" is not one of reject, allow$/,
    );
    expect(() => compile({}, [{ path: '/a/', upstream: 'u', auth: 'none', pathParameters: true }])).toThrow(/^routes\[0\]\.pathParameters: must be one of reject, allow$/);
    expect(() => compile({ pathParameters: 'allow' }, [{ path: '/a;x/', upstream: 'u', auth: 'none' }])).toThrow(
      /routes\[0\]\.path: must be a normalized path \(RFC 3986 pchar only; no ;, /,
    );
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

  it('sends the upstream view of a path with parameters, matching the prefix on the match view', () => {
    const api = { match: '/api/admin/users', upstream: '/api/admin;x=1/users' };
    expect(upstreamPath(route('/api/admin/'), '', api)).toBe('/api/admin;x=1/users');
    expect(upstreamPath(route('/api/admin/'), '/v1', api)).toBe('/v1/api/admin;x=1/users');
    // Dot segments and their parameters are gone from both views already.
    expect(upstreamPath(route('/orders/'), '', { match: '/orders/1', upstream: '/orders/1' })).toBe('/orders/1');
  });

  it('strips the prefix of a path with parameters as whole segments, parameters included', () => {
    const r = route('/api/admin/', true);
    expect(upstreamPath(r, '', { match: '/api/admin/users', upstream: '/api/admin;x=1/users' })).toBe('/users');
    expect(upstreamPath(r, '', { match: '/api/admin/users/7', upstream: '/api;a/admin/users;b=2/7' })).toBe('/users;b=2/7');
    expect(upstreamPath(r, '', { match: '/api/admin', upstream: '/api/admin;x' })).toBe('/');
    expect(upstreamPath(r, '', { match: '/api/admin/', upstream: '/api/admin;x/' })).toBe('/');
    expect(upstreamPath(r, '/v1', { match: '/api/admin/u', upstream: '/api/admin;x/u;y' })).toBe('/v1/u;y');
    expect(upstreamPath(route('/', true), '', { match: '/a/b', upstream: '/a;x/b' })).toBe('/a;x/b');
    // Not under the prefix (by the match view): nothing is cut.
    expect(upstreamPath(r, '', { match: '/api/adminX/u', upstream: '/api/adminX;x/u' })).toBe('/api/adminX;x/u');
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
