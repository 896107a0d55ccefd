import { describe, expect, it } from 'vitest';
import { tmpdir } from 'node:os';
import { compileConfig } from '../../../src/config/load.js';

const state = compileConfig(
  {
    server: { trustedProxies: ['10.0.0.0/8'], realm: 'corp-api' },
    issuers: [{ name: 'corp', issuer: 'https://idp.example/realms/corp', jwksUri: 'https://idp.example/certs', audience: ['api'] }],
    upstreams: { app: { url: 'http://127.0.0.1:9/base/' } },
    routes: [
      { path: '/public/', upstream: 'app', auth: 'none' },
      { path: '/orders/', upstream: 'app', methods: ['GET', 'POST'], roles: ['reader'] },
    ],
  },
  tmpdir(),
);

/** Every object reachable from `v`, Maps' and Sets' contents included. */
function* reachable(v: unknown, seen = new Set<unknown>()): Generator<object> {
  if (v === null || typeof v !== 'object' || seen.has(v)) return;
  seen.add(v);
  yield v;
  if (v instanceof Map) for (const [k, x] of v) yield* [...reachable(k, seen), ...reachable(x, seen)];
  else if (v instanceof Set) for (const x of v) yield* reachable(x, seen);
  else for (const x of Object.values(v)) yield* reachable(x, seen);
}

describe('the compiled gateway state', () => {
  it('is frozen all the way down: the pipeline can only read it', () => {
    let count = 0;
    for (const o of reachable(state)) {
      expect(Object.isFrozen(o), `${o.constructor?.name ?? 'object'} not frozen`).toBe(true);
      count++;
    }
    expect(count).toBeGreaterThan(40);
  });

  it('holds the tables a request reads, built once', () => {
    expect(state.routeTable.match('/orders/1')?.name).toBe('/orders/');
    expect(state.routeTable.match('/nope')).toBeUndefined();
    expect(state.issuerByIss.get('https://idp.example/realms/corp')?.name).toBe('corp');
    expect(state.issuerByName.get('corp')).toBe(state.issuerByIss.get('https://idp.example/realms/corp'));
    expect(state.trusted?.check('10.1.2.3', 'ipv4')).toBe(true);
    expect(state.proto).toBe('http');
    expect(state.upstreams.get('app')?.basePath).toBe('/base');
  });

  it('builds every fixed refusal with the configured realm', () => {
    expect(state.answers.credentialsMissing).toEqual({ reason: 'credentials_missing', challenge: 'Bearer realm="corp-api"' });
    expect(state.answers.tokenFailure.expired.challenge).toBe('Bearer realm="corp-api", error="invalid_token", error_description="token expired"');
    expect(state.answers.invalidRequest.get('empty bearer token')?.challenge).toBe(
      'Bearer realm="corp-api", error="invalid_request", error_description="empty bearer token"',
    );
    const orders = state.routes.find((r) => r.name === '/orders/')!;
    expect(orders.methodNotAllowed).toEqual({ reason: 'method_not_allowed', allowMethods: 'GET, POST, HEAD' });
    expect(state.routes.find((r) => r.name === '/public/')!.methodNotAllowed).toBeNull();
  });

  it('fills in every default from the schema (nothing left for the request path to decide)', () => {
    expect(state.server.requestBuffering).toBe(65_536);
    expect(state.server.requestBodyIdleMs).toBe(10_000);
    expect(state.verifier.cacheMaxTtlMs).toBe(300_000);
    expect(state.body).toEqual({ maxBytes: 0, bufferBytes: 65_536, idleMs: 10_000 });
    expect(state.routes.find((r) => r.name === '/orders/')!.policy.auth).toBe('mfa');
  });
});
