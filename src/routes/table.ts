import type { CompiledRoute } from '../config/types.js';

/** Finds the route for a normalized path (see normalize.ts); never sees the query. */
export interface RouteTable {
  /** The route with the longest prefix matching `path` on a segment boundary, or undefined (→ 404). */
  match(path: string): CompiledRoute | undefined;
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
 * basePath `/v1` → `/v1/1`.
 */
export function upstreamPath(route: CompiledRoute, basePath: string, path: string): string {
  let rest = path;
  const prefix = route.prefix;
  // The boundary check is repeated so a path the route did not match is never cut mid-segment.
  if (route.stripPrefix && prefix !== '' && prefixMatches(prefix, path)) {
    rest = path.length === prefix.length ? '/' : path.slice(prefix.length);
  }
  return basePath === '' ? rest : basePath + rest;
}
