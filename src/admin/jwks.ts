/**
 * `GET /.well-known/jwks.json` on the admin listener: the public keys of the gateway's
 * identity assertions (RFC 7517 §5), for upstreams that verify them (README "Identity
 * assertions"). Served only when `identityAssertion.enabled` is true.
 */
import type { AdminRoute } from '../server/admin.js';
import type { Assertions } from '../pipeline/services.js';

export function jwksRoute(assertions: Assertions): AdminRoute {
  return {
    method: 'get',
    path: '/.well-known/jwks.json',
    mutates: false,
    // RFC 7517 §8.5: the JWK Set media type.
    handle: () => ({ status: 200, body: JSON.stringify(assertions.jwks()), contentType: 'application/jwk-set+json' }),
  };
}
