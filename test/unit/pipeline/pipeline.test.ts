import { describe, expect, it } from 'vitest';
import { tmpdir } from 'node:os';
import { compileConfig } from '../../../src/config/load.js';
import { FRONT_STAGES, ROUTE_STAGES, routeChain } from '../../../src/pipeline/pipeline.js';

const state = compileConfig(
  {
    issuers: [{ name: 'corp', issuer: 'https://idp.example', jwksUri: 'https://idp.example/certs', audience: ['api'] }],
    upstreams: { app: { url: 'http://127.0.0.1:9' } },
    rateLimit: { subject: { points: 10, duration: '1m' } },
    routes: [
      { path: '/public/', upstream: 'app', auth: 'none' },
      { path: '/limited/', upstream: 'app', auth: 'none', rateLimit: { address: { points: 5, duration: '1m' } } },
      { path: '/orders/', upstream: 'app', auth: 'mfa' },
      { path: '/token/', upstream: 'app', auth: 'token', rateLimit: { subject: false } },
    ],
  },
  tmpdir(),
);
const chain = (name: string) => routeChain(state, state.routes.find((r) => r.name === name)!).map((s) => s.name);

describe('the pipeline', () => {
  it('runs its stages in the documented order', () => {
    expect(FRONT_STAGES.map((s) => s.name)).toEqual(['draining', 'framing', 'body', 'path', 'route', 'method']);
    expect(ROUTE_STAGES.map((s) => s.name)).toEqual(['address-limit', 'credentials', 'token', 'policy', 'subject-limit']);
  });

  it('gives each route only the stages it needs', () => {
    expect(chain('/public/')).toEqual([]);
    expect(chain('/limited/')).toEqual(['address-limit']);
    expect(chain('/orders/')).toEqual(['credentials', 'token', 'policy', 'subject-limit']);
    expect(chain('/token/')).toEqual(['credentials', 'token', 'policy']);
  });

  it('works a chain out once per compiled route', () => {
    const r = state.routes[0]!;
    expect(routeChain(state, r)).toBe(routeChain(state, r));
    expect(Object.isFrozen(routeChain(state, r))).toBe(true);
  });
});
