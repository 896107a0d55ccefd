import { tmpdir } from 'node:os';
import { compileConfig } from '../../../src/config/load.js';
import type { CompiledRoute } from '../../../src/config/state.js';

/**
 * A route exactly as the config compiler builds it (src/config/compile.ts): the route
 * table and upstream paths are tested on the same compiled routes the gateway uses.
 */
export function route(path: string, stripPrefix = false, allowPathParameters = false): CompiledRoute {
  const state = compileConfig(
    {
      upstreams: { u: { url: 'http://127.0.0.1:9' } },
      routes: [{ path, upstream: 'u', auth: 'none', stripPrefix, pathParameters: allowPathParameters ? 'allow' : 'reject' }],
    },
    tmpdir(),
  );
  return state.routes[0]!;
}
