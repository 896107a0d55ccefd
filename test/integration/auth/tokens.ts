/**
 * A real identity provider stand-in for gateway tests: the key-set and discovery
 * server of the verifier's tests (../authn/idp.ts) with an RS256 and an ES256 key,
 * and a minter of ordinary access tokens with defaults a gateway test wants.
 */
import type { JWTPayload } from 'jose';
import { makeKey, sign, startIdp as startKeyServer } from '../authn/idp.js';

export interface TestIdp {
  readonly issuer: string;
  readonly jwksUri: string;
  /** Requests the IdP served, by path. */
  readonly hits: Map<string, number>;
  mint(claims: JWTPayload, options?: { kid?: string; alg?: string; typ?: string; expiresIn?: number }): Promise<string>;
  close(): Promise<void>;
}

export async function startIdp(path = '/realms/test'): Promise<TestIdp> {
  const keys = await Promise.all([makeKey('RS256', 'rs256-1'), makeKey('ES256', 'es256-1')]);
  const server = await startKeyServer(
    keys.map((k) => k.jwk),
    path,
  );
  return {
    issuer: server.issuer,
    jwksUri: server.jwksUri,
    hits: server.hits,
    mint(claims, options = {}) {
      const key = keys.find((k) => k.kid === (options.kid ?? 'rs256-1')) ?? keys[0]!;
      const now = Math.floor(Date.now() / 1000);
      return sign(
        key,
        { iss: server.issuer, aud: 'orders-api', sub: 'alice', iat: now, exp: now + (options.expiresIn ?? 600), ...claims },
        { header: { alg: options.alg ?? key.alg, typ: options.typ ?? 'at+jwt' } },
      );
    },
    close: () => server.close(),
  };
}
