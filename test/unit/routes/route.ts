import type { CompiledRoute } from '../../../src/config/state.js';

/** A route as src/config/load.ts compiles it; only the fields matching, stripping and path parameters read matter. */
export function route(path: string, stripPrefix = false, allowPathParameters = false): CompiledRoute {
  return {
    name: path,
    path,
    prefix: path.endsWith('/') ? path.slice(0, -1) : path,
    methods: null,
    allow: '',
    upstream: 'u',
    stripPrefix,
    forwardAuthorization: true,
    allowPathParameters,
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
