/**
 * A real OpenID provider for the token-lifecycle tests: oidc-provider 9 (the demo's IdP
 * library) on port 0 with the features those tests exercise switched on:
 *
 * - DPoP (RFC 9449, `features.dPoP`): access tokens bound to the test client's key,
 *   `cnf.jkt` in JWT access tokens and in introspection answers;
 * - token introspection (RFC 7662, `features.introspection`) and revocation (RFC 7009,
 *   `features.revocation`), for opaque access tokens;
 * - Back-Channel Logout 1.0 (`features.backchannelLogout`), with the relying party's
 *   `backchannel_logout_uri` served by a node:http server on port 0 that keeps every
 *   `logout_token` it receives.
 *
 * Two resource servers (RFC 8707 resource indicators): `urn:test:jwt-api` gets RFC 9068
 * JWT access tokens (ES256), `urn:test:opaque-api` opaque ones. Logins need no pages:
 * the interaction URL finishes the login at once (account `alice`, amr pwd + otp), so a
 * test drives the authorization code flow (RFC 6749 §4.1, PKCE RFC 7636) with plain
 * HTTP requests and a cookie jar.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { createDemoStore } from '../../demo/store.js';
import { recordToken } from './leaks.js';

export const JWT_API = 'urn:test:jwt-api';
export const OPAQUE_API = 'urn:test:opaque-api';
export const JWT_API_AUDIENCE = 'jwt-api';
export const OPAQUE_API_AUDIENCE = 'opaque-api';
export const API_SCOPE = 'api:read';
export const RP_CLIENT_ID = 'rp';
export const RP_SECRET = 'rp-secret-0123456789abcdef0123456789';
/** The resource server's introspection credentials: VSCHARs (RFC 6749 App. A.2) that §2.3.1 form-encodes. */
export const GATEWAY_CLIENT_ID = 'gateway:rs';
export const GATEWAY_SECRET = 'gw s3cret+/=%:&~-0123456789abcdef';
export const REDIRECT_URI = 'http://127.0.0.1/cb';
export const ACCOUNT = 'alice';

export interface TestOpOptions {
  /** Access token lifetime, seconds (default 600). */
  readonly accessTokenTtlSec?: number;
  /** Delay every introspection answer by this many ms (a slow IdP). */
  readonly introspectionDelayMs?: number;
}

export interface Login {
  readonly accessToken: string;
  readonly idToken: string;
  readonly refreshToken: string | undefined;
  /** `DPoP` or `Bearer`. */
  readonly tokenType: string;
  /** The session's cookies at the OP (for the logout). */
  readonly jar: CookieJar;
}

export interface TestOp {
  readonly issuer: string;
  readonly jwksUri: string;
  readonly tokenEndpoint: string;
  readonly introspectionEndpoint: string;
  /** Requests the OP served, by path (`/token/introspection`, …). */
  readonly hits: Map<string, number>;
  /** The most introspection requests the OP was serving at one time. */
  introspectionPeak(): number;
  /** Every logout_token the relying party's back-channel logout URI received, in order. */
  readonly logoutTokens: string[];
  /** Resolves with the next logout_token the relying party receives. */
  nextLogoutToken(): Promise<string>;
  /**
   * From now on the OP sends its back-channel logout POSTs to `url` (a gateway's
   * endpoint) instead of the relying party's own; each logout_token is still kept in
   * `logoutTokens`. The registered `backchannel_logout_uri` stays the same (the gateway's
   * port is known only once it listens).
   */
  setBackchannelLogoutUri(url: string): void;
  /** The authorization code flow for `alice`, optionally DPoP-bound to `dpop`'s key. */
  login(o: { resource?: string; scope?: string; dpop?: DpopKey }): Promise<Login>;
  /** RP-initiated logout of the login's session; the OP then calls the back-channel logout URI. */
  logout(login: Login): Promise<void>;
  /** RFC 7009 revocation of a token by the relying party. */
  revoke(token: string): Promise<void>;
  close(): Promise<void>;
}

/** A DPoP key pair of the test client, and proofs made with it by jose. */
export interface DpopKey {
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
  /** Signs a proof: the RFC 9449 §4.2 claims, any of which `override` replaces or (undefined) removes. */
  proof(htm: string, htu: string, o?: { accessToken?: string; nonce?: string; override?: Record<string, unknown>; header?: Record<string, unknown> }): Promise<string>;
}

export async function dpopKey(alg: 'ES256' | 'EdDSA' | 'PS256' = 'ES256'): Promise<DpopKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  return {
    privateKey,
    publicJwk,
    async proof(htm, htu, o = {}) {
      const claims: Record<string, unknown> = { htm, htu, jti: randomUUID(), iat: Math.floor(Date.now() / 1000) };
      if (o.accessToken !== undefined) claims['ath'] = createHash('sha256').update(o.accessToken).digest('base64url');
      if (o.nonce !== undefined) claims['nonce'] = o.nonce;
      for (const [k, v] of Object.entries(o.override ?? {})) {
        if (v === undefined) delete claims[k];
        else claims[k] = v;
      }
      // Proofs are credentials too (for seconds): the whole-run leak check looks for them as well.
      return recordToken(await new SignJWT(claims).setProtectedHeader({ alg, typ: 'dpop+jwt', jwk: publicJwk, ...o.header }).sign(privateKey));
    },
  };
}

/** Just enough of RFC 6265 for oidc-provider's cookies: name → value, paths ignored (one host). */
export class CookieJar {
  readonly cookies = new Map<string, string>();
  store(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

// oidc-provider 9 warns once, when imported, on Node.js 20 (the demo drops that one line the same way).
const warn = console.warn;
console.warn = (...args: unknown[]) => void (String(args[0]).includes('Unsupported runtime') || warn(...args));
const { Provider } = await import('oidc-provider').finally(() => (console.warn = warn));

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${new URLSearchParams({ a: id }).toString().slice(2)}:${new URLSearchParams({ a: secret }).toString().slice(2)}`).toString('base64')}`;

export async function startTestOp(options: TestOpOptions = {}): Promise<TestOp> {
  const ttl = options.accessTokenTtlSec ?? 600;

  // The relying party's back-channel logout endpoint (Back-Channel Logout 1.0 §2.5).
  const logoutTokens: string[] = [];
  const waiting: ((token: string) => void)[] = [];
  const rp = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const token = new URLSearchParams(Buffer.concat(chunks).toString('utf8')).get('logout_token');
      if (req.method !== 'POST' || req.url !== '/backchannel-logout' || token === null) {
        res.writeHead(400).end();
        return;
      }
      recordToken(token);
      logoutTokens.push(token);
      waiting.shift()?.(token);
      // §2.8: 200 OK on success, no caching.
      res.writeHead(200, { 'cache-control': 'no-store' }).end();
    });
  });
  const rpPort = await listen(rp);
  const rpLogoutUri = `http://127.0.0.1:${rpPort}/backchannel-logout`;
  let logoutTarget: string | null = null;

  const server = createServer();
  const port = await listen(server);
  const issuer = `http://127.0.0.1:${port}`;

  const [rs, es] = await Promise.all([generateKeyPair('RS256', { extractable: true }), generateKeyPair('ES256', { extractable: true })]);
  const keys = [
    { ...(await exportJWK(rs.privateKey)), kid: 'op-rs-1', alg: 'RS256', use: 'sig' },
    { ...(await exportJWK(es.privateKey)), kid: 'op-es-1', alg: 'ES256', use: 'sig' },
  ];

  const provider = new Provider(issuer, {
    adapter: createDemoStore().adapter,
    clients: [
      {
        client_id: RP_CLIENT_ID,
        client_secret: RP_SECRET,
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [REDIRECT_URI],
        backchannel_logout_uri: rpLogoutUri,
        // §2.2: the logout token carries the session's `sid`.
        backchannel_logout_session_required: true,
      },
      {
        client_id: GATEWAY_CLIENT_ID,
        client_secret: GATEWAY_SECRET,
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: [],
        response_types: [],
        redirect_uris: [],
      },
    ],
    jwks: { keys },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    scopes: ['openid', 'offline_access'],
    acrValues: ['urn:test:mfa'],
    pkce: { required: () => true },
    clientBasedCORS: () => false,
    // The relying party listens on loopback, which oidc-provider's outgoing requests refuse
    // (its SSRF guard is an undici dispatcher): the tests' own OP calls plain fetch.
    fetch: (url: string, init: RequestInit & { dispatcher?: unknown }) => {
      const { dispatcher: _ignored, ...rest } = init;
      if (logoutTarget !== null && url === rpLogoutUri) {
        const token = new URLSearchParams(String(rest.body)).get('logout_token');
        if (token !== null) logoutTokens.push(recordToken(token));
        return globalThis.fetch(logoutTarget, rest);
      }
      return globalThis.fetch(url, rest);
    },
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(t: string): boolean }) => client.grantTypeAllowed('refresh_token'),
    features: {
      devInteractions: { enabled: false },
      dPoP: { enabled: true },
      introspection: {
        enabled: true,
        // Any confidential client may introspect (the resource server's own credentials).
        allowedPolicy: async (_ctx: unknown, client: { clientAuthMethod: string }) => client.clientAuthMethod !== 'none',
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx: unknown, client: { clientId: string }, token: { clientId: string }) => token.clientId === client.clientId,
      },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        // Only the form: the test posts it as the user's "yes, sign me out".
        logoutSource: async (ctx: { body: string }, form: string) => {
          ctx.body = `<!DOCTYPE html><title>logout</title>${form}`;
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => undefined,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx: unknown, resource: string) => {
          if (resource === JWT_API) {
            return { scope: API_SCOPE, audience: JWT_API_AUDIENCE, accessTokenTTL: ttl, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } };
          }
          if (resource === OPAQUE_API) return { scope: API_SCOPE, audience: OPAQUE_API_AUDIENCE, accessTokenTTL: ttl, accessTokenFormat: 'opaque' };
          throw new Error(`unknown resource ${resource}`);
        },
      },
    },
    // What an MFA-aware access token carries (as the demo IdP does), plus the session id
    // (as Keycloak and Entra ID put `sid` in access tokens), so a logout can find them.
    extraTokenClaims: async (ctx: { oidc: { entities: { AuthorizationCode?: { amr?: string[]; acr?: string; authTime?: number } } } }, token: { kind: string; sid?: string }) => {
      if (token.kind !== 'AccessToken') return undefined;
      const code = ctx.oidc.entities.AuthorizationCode;
      return {
        ...(token.sid ? { sid: token.sid } : {}),
        ...(code?.amr ? { amr: [...code.amr] } : {}),
        ...(code?.acr ? { acr: code.acr } : {}),
        ...(code?.authTime !== undefined ? { auth_time: code.authTime } : {}),
        roles: ['reader'],
      };
    },
    findAccount: async (_ctx: unknown, sub: string) => (sub === ACCOUNT ? { accountId: sub, claims: () => ({ sub }) } : undefined),
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    ttl: { AccessToken: ttl, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600, RefreshToken: 3600 },
  });
  const callback = provider.callback();

  const hits = new Map<string, number>();
  let introspecting = 0;
  let peak = 0;
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', issuer).pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    if (path === '/token/introspection') {
      peak = Math.max(peak, ++introspecting);
      res.once('close', () => introspecting--);
    }
    const m = /^\/interaction\/([\w-]+)$/.exec(path);
    const work = async () => {
      if (m) {
        // The login is finished at once: alice, password + one-time code (RFC 8176 §2).
        const details = await provider.interactionDetails(req, res);
        const grant = new provider.Grant({ accountId: ACCOUNT, clientId: String(details.params['client_id']) });
        grant.addOIDCScope(String(details.params['scope'] ?? 'openid'));
        grant.addResourceScope(JWT_API, API_SCOPE);
        grant.addResourceScope(OPAQUE_API, API_SCOPE);
        await provider.interactionFinished(
          req,
          res,
          { login: { accountId: ACCOUNT, amr: ['pwd', 'otp'], acr: 'urn:test:mfa' }, consent: { grantId: await grant.save() } },
          { mergeWithLastSubmission: false },
        );
        return;
      }
      if (path === '/token/introspection' && options.introspectionDelayMs) {
        await new Promise((r) => setTimeout(r, options.introspectionDelayMs));
        // The caller gave up meanwhile (its timeout): there is no body left to read, nor anyone to answer.
        if (!req.readable) {
          res.destroy();
          return;
        }
      }
      callback(req, res);
    };
    work().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String((err as Error).message));
    });
  });

  const tokenEndpoint = `${issuer}/token`;

  async function login(o: { resource?: string; scope?: string; dpop?: DpopKey }): Promise<Login> {
    const jar = new CookieJar();
    const verifier = randomBytes(32).toString('base64url');
    const auth = new URL(`${issuer}/auth`);
    auth.search = new URLSearchParams({
      client_id: RP_CLIENT_ID,
      response_type: 'code',
      redirect_uri: REDIRECT_URI,
      scope: o.scope ?? `openid offline_access ${API_SCOPE}`,
      prompt: 'consent',
      state: randomBytes(8).toString('base64url'),
      nonce: randomBytes(8).toString('base64url'),
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
      ...(o.resource ? { resource: o.resource } : {}),
    }).toString();
    let url = auth;
    let code: string | null = null;
    for (let hop = 0; hop < 10 && code === null; hop++) {
      const res = await fetch(url, { headers: { cookie: jar.header() }, redirect: 'manual' });
      jar.store(res);
      await res.body?.cancel();
      const location = res.headers.get('location');
      if (location === null) throw new Error(`login stopped at ${url.pathname}: HTTP ${res.status}`);
      url = new URL(location, url);
      if (url.href.startsWith(REDIRECT_URI)) {
        if (url.searchParams.get('error')) throw new Error(`authorization error ${url.searchParams.get('error')}: ${url.searchParams.get('error_description')}`);
        code = url.searchParams.get('code');
      }
    }
    if (code === null) throw new Error('no authorization code');
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: basic(RP_CLIENT_ID, RP_SECRET),
    };
    if (o.dpop) headers['dpop'] = await o.dpop.proof('POST', tokenEndpoint);
    const res = await fetch(tokenEndpoint, {
      method: 'POST',
      headers,
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: REDIRECT_URI,
        code_verifier: verifier,
        ...(o.resource ? { resource: o.resource } : {}),
      }),
    });
    const body = (await res.json()) as Record<string, string>;
    if (res.status !== 200) throw new Error(`token endpoint: HTTP ${res.status} ${body['error']}: ${body['error_description']}`);
    return {
      accessToken: recordToken(body['access_token']!),
      idToken: recordToken(body['id_token']!),
      refreshToken: recordToken(body['refresh_token']),
      tokenType: body['token_type']!,
      jar,
    };
  }

  async function logout(l: Login): Promise<void> {
    const end = new URL(`${issuer}/session/end`);
    end.search = new URLSearchParams({ id_token_hint: l.idToken, client_id: RP_CLIENT_ID }).toString();
    const page = await fetch(end, { headers: { cookie: l.jar.header() }, redirect: 'manual' });
    l.jar.store(page);
    const html = await page.text();
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)?.[1];
    if (xsrf === undefined) throw new Error(`no logout form (HTTP ${page.status})`);
    const confirm = await fetch(`${issuer}/session/end/confirm`, {
      method: 'POST',
      headers: { cookie: l.jar.header(), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ xsrf, logout: 'yes' }),
      redirect: 'manual',
    });
    await confirm.body?.cancel();
    if (confirm.status !== 303) throw new Error(`logout confirm: HTTP ${confirm.status}`);
  }

  async function revoke(token: string): Promise<void> {
    const res = await fetch(`${issuer}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(RP_CLIENT_ID, RP_SECRET) },
      body: new URLSearchParams({ token }),
    });
    await res.body?.cancel();
    if (res.status !== 200) throw new Error(`revocation: HTTP ${res.status}`);
  }

  return {
    issuer,
    jwksUri: `${issuer}/jwks`,
    tokenEndpoint,
    introspectionEndpoint: `${issuer}/token/introspection`,
    hits,
    introspectionPeak: () => peak,
    logoutTokens,
    nextLogoutToken: () => new Promise<string>((resolve) => waiting.push(resolve)),
    setBackchannelLogoutUri: (url) => {
      logoutTarget = url;
    },
    login,
    logout,
    revoke,
    close: async () => {
      await Promise.all([closeServer(server), closeServer(rp)]);
    },
  };
}
