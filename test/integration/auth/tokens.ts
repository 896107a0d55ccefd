/**
 * A real identity provider stand-in for gateway tests: a JWKS + OIDC discovery
 * endpoint on port 0 with jose-generated keys, and a token minter.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { recordToken } from '../leaks.js';

export interface TestIdp {
  readonly issuer: string;
  readonly jwksUri: string;
  /** Requests the IdP served, by path. */
  readonly hits: Map<string, number>;
  mint(claims: JWTPayload, options?: { kid?: string; alg?: string; typ?: string; expiresIn?: number }): Promise<string>;
  close(): Promise<void>;
}

interface Key {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

export async function startIdp(path = '/realms/test'): Promise<TestIdp> {
  const keys: Key[] = [];
  for (const alg of ['RS256', 'ES256']) {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const kid = `${alg.toLowerCase()}-1`;
    keys.push({ kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } });
  }
  const hits = new Map<string, number>();
  let issuer = '';
  const server: Server = createServer((req, res) => {
    hits.set(req.url!, (hits.get(req.url!) ?? 0) + 1);
    res.setHeader('content-type', 'application/json');
    if (req.url === `${path}/.well-known/openid-configuration`) {
      res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/certs`, authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token` }));
    } else if (req.url === `${path}/certs`) {
      res.end(JSON.stringify({ keys: keys.map((k) => k.jwk) }));
    } else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`;
  return {
    issuer,
    jwksUri: `${issuer}/certs`,
    hits,
    async mint(claims, options = {}) {
      const key = keys.find((k) => k.kid === (options.kid ?? 'rs256-1')) ?? keys[0]!;
      const now = Math.floor(Date.now() / 1000);
      return recordToken(
        await new SignJWT({ iss: issuer, aud: 'orders-api', sub: 'alice', iat: now, exp: now + (options.expiresIn ?? 600), ...claims })
          .setProtectedHeader({ alg: options.alg ?? key.alg, kid: key.kid, typ: options.typ ?? 'at+jwt' })
          .sign(key.privateKey),
      );
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
