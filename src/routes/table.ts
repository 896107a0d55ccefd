import type { CompiledRoute } from '../config/state.js';
import { matchView, type NormalizedPath } from './normalize.js';

/** Finds the route for a normalized path (its match view, see normalize.ts); never sees the query. */
export interface RouteTable {
  /** The route with the longest prefix matching `path` on a segment boundary, or undefined (→ 404). */
  match(path: string): CompiledRoute | undefined;
  /** Some route allows `;` path parameters; when none does, the normalizer refuses every `;` itself. */
  readonly pathParameters: boolean;
}

/**
 * Builds the route table. Routes arrive sorted longest prefix first (src/config/load.ts);
 * the table sorts its own copy again so that a caller passing another order cannot change
 * which route wins. Two different prefixes of equal length never both match one path, so
 * the order among them does not matter.
 */
export function buildRouteTable(routes: readonly CompiledRoute[]): RouteTable {
  const sorted = [...routes].sort((a, b) => b.prefix.length - a.prefix.length);
  const prefixes = sorted.map((r) => r.prefix);
  const count = sorted.length;
  return {
    pathParameters: routes.some((r) => r.allowPathParameters),
    match(path: string): CompiledRoute | undefined {
      // A linear scan with startsWith allocates nothing; route tables are tens of entries.
      for (let i = 0; i < count; i++) {
        if (prefixMatches(prefixes[i]!, path)) return sorted[i];
      }
      return undefined;
    },
  };
}

/**
 * True when `path` is `prefix` or lies below it: `/orders` matches `/orders`, `/orders/`,
 * `/orders/1`, never `/ordersX`. The root prefix `''` matches every path (they all start with `/`).
 */
function prefixMatches(prefix: string, path: string): boolean {
  const n = prefix.length;
  return path.startsWith(prefix) && (path.length === n || path.charCodeAt(n) === 0x2f);
}

/**
 * The path sent upstream for a path `route` matched: with `stripPrefix`, the route's prefix
 * is removed (leaving at least `/`); then the upstream's `basePath` ('' or e.g. `/api`,
 * without a trailing slash) is prepended. `/orders/1` on `/orders/` with stripPrefix and
 * basePath `/v1` → `/v1/1`. A path with parameters is sent as its upstream view; the prefix
 * is matched on the match view and stripped as that many whole segments of the upstream
 * view, parameters included: `/api/admin;x=1/users` on `/api/admin/` → `/users`.
 */
export function upstreamPath(route: CompiledRoute, basePath: string, path: NormalizedPath): string {
  const match = matchView(path);
  let rest = typeof path === 'string' ? path : path.upstream;
  const prefix = route.prefix;
  // The boundary check is repeated so a path the route did not match is never cut mid-segment.
  if (route.stripPrefix && prefix !== '' && prefixMatches(prefix, match)) {
    if (typeof path === 'string') rest = path.length === prefix.length ? '/' : path.slice(prefix.length);
    else rest = afterSegments(rest, segmentCount(prefix));
  }
  return basePath === '' ? rest : basePath + rest;
}

/** Segments of a route prefix: one per `/` (`/api/admin` → 2). */
function segmentCount(prefix: string): number {
  let n = 0;
  for (let i = 0; i < prefix.length; i++) if (prefix.charCodeAt(i) === 0x2f) n++;
  return n;
}

/** `path` without its first `n` segments, starting at the `/` after them, or `/` if nothing is left. */
function afterSegments(path: string, n: number): string {
  let at = 0;
  for (let k = 0; k < n; k++) {
    at = path.indexOf('/', at + 1);
    if (at < 0) return '/';
  }
  return path.slice(at);
}
