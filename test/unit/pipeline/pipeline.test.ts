import { describe, expect, it } from 'vitest';
import { tmpdir } from 'node:os';
import { compileConfig } from '../../../src/config/load.js';
import { FRONT_STAGES, ROUTE_STAGES, routeChain } from '../../../src/pipeline/pipeline.js';

const state = compileConfig(
  {
    issuers: [
      { name: 'corp', issuer: 'https://idp.example', jwksUri: 'https://idp.example/certs', audience: ['api'] },
      { name: 'opaque', issuer: 'https://op.example', jwksUri: 'https://op.example/certs', audience: ['api'], introspection: { clientId: 'gw', clientSecretEnv: 'SECRET' } },
    ],
    upstreams: { app: { url: 'http://127.0.0.1:9' } },
    rateLimit: { subject: { points: 10, duration: '1m' } },
    routes: [
      { path: '/public/', upstream: 'app', auth: 'none' },
      { path: '/limited/', upstream: 'app', auth: 'none', rateLimit: { address: { points: 5, duration: '1m' } } },
      { path: '/orders/', upstream: 'app', auth: 'mfa', issuers: ['corp'] },
      { path: '/opaque/', upstream: 'app', auth: 'token', issuers: ['opaque'], rateLimit: { subject: false } },
      { path: '/any/', upstream: 'app', auth: 'token', rateLimit: { subject: false } },
      { path: '/token/', upstream: 'app', auth: 'token', rateLimit: { subject: false } },
    ],
  },
  tmpdir(),
);
const chain = (name: string) => routeChain(state, state.routes.find((r) => r.name === name)!).map((s) => s.name);

describe('the pipeline', () => {
  it('runs its stages in the documented order', () => {
    expect(FRONT_STAGES.map((s) => s.name)).toEqual(['draining', 'framing', 'body', 'path', 'logout', 'route', 'method']);
    expect(ROUTE_STAGES.map((s) => s.name)).toEqual(['address-limit', 'credentials', 'introspection', 'token', 'revocation', 'dpop', 'policy', 'subject-limit']);
  });

  it('gives each route only the stages it needs', () => {
    expect(chain('/public/')).toEqual([]);
    expect(chain('/limited/')).toEqual(['address-limit']);
    expect(chain('/orders/')).toEqual(['credentials', 'token', 'revocation', 'dpop', 'policy', 'subject-limit']);
    expect(chain('/token/')).toEqual(['credentials', 'introspection', 'token', 'revocation', 'dpop', 'policy']);
    // Introspection only where an introspecting issuer is allowed (every issuer when the route names none).
    expect(chain('/opaque/')).toEqual(['credentials', 'introspection', 'token', 'revocation', 'dpop', 'policy']);
    expect(chain('/any/')).toEqual(chain('/opaque/'));
    expect(state.routes.find((r) => r.name === '/orders/')!.introspection).toBeNull();
    expect(state.routes.find((r) => r.name === '/any/')!.introspection).toBe('opaque');
  });

  it('works a chain out once per compiled route', () => {
    const r = state.routes[0]!;
    expect(routeChain(state, r)).toBe(routeChain(state, r));
    expect(Object.isFrozen(routeChain(state, r))).toBe(true);
  });
});
