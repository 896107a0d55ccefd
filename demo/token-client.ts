import { createHash, generateKeyPairSync, randomBytes, randomUUID, sign, type KeyObject } from 'node:crypto';
import { DEMO_API_SCOPE, DEMO_CLIENT_ID, DEMO_REDIRECT_URI, DEMO_RESOURCE } from './constants.js';
import { TOTP_PERIOD_SEC, totpCode } from './totp.js';

/**
 * The demo's token helper: it logs in through the demo identity provider's own
 * login pages over plain HTTP, exactly as a browser would (authorization code +
 * PKCE, cookies, the password form, the TOTP form), and exchanges the code for
 * the access token. `demo token --mfa` is this function.
 */
export interface TokenOptions {
  /** The demo IdP's issuer, e.g. http://127.0.0.1:9000. */
  readonly issuer: string;
  readonly username: string;
  readonly password: string;
  /** `otp`: complete the TOTP step (needs totpSecret); `skip`: skip it for a password-only login. */
  readonly secondFactor: 'otp' | 'skip';
  readonly totpSecret?: string;
  /** Back-date the login by this many seconds (the login page's demo knob). */
  readonly authAgeSec?: number;
  /** Passed on in the authorization request (RFC 9470 §4). */
  readonly acrValues?: string;
  readonly maxAge?: number;
  /** Clock for the TOTP code, ms. */
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Told when the helper has to wait for a fresh TOTP code. */
  readonly onWait?: (message: string) => void;
  /** Ask for a DPoP-bound token (RFC 9449 §5): the token request carries a proof made with this key. */
  readonly dpop?: DpopKeyPair;
}

/** A client's DPoP key (RFC 9449 §2): an ES256 key pair made for one run of the helper. */
export interface DpopKeyPair {
  readonly privateKey: KeyObject;
  /** The public key's RFC 7638 required members (EC: crv, kty, x, y). */
  readonly publicJwk: { readonly kty: string; readonly crv: string; readonly x: string; readonly y: string };
}

export function dpopKeyPair(): DpopKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { kty, crv, x, y } = publicKey.export({ format: 'jwk' }) as { kty: string; crv: string; x: string; y: string };
  return { privateKey, publicJwk: { kty, crv, x, y } };
}

/**
 * A DPoP proof (RFC 9449 §4.2) for one request: `typ: dpop+jwt`, ES256 with the public key
 * in the `jwk` header; `htm`, `htu` (the URI without query and fragment), a fresh `jti`,
 * `iat` now, and with an access token its hash as `ath`.
 */
export function dpopProof(key: DpopKeyPair, htm: string, htu: string, accessToken?: string, nowMs: number = Date.now()): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const claims: Record<string, unknown> = { jti: randomUUID(), htm, htu, iat: Math.floor(nowMs / 1000) };
  if (accessToken !== undefined) claims['ath'] = createHash('sha256').update(accessToken).digest('base64url');
  const input = `${b64({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.publicJwk })}.${b64(claims)}`;
  // RFC 7518 §3.4: R || S, not DER.
  const signature = sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  return `${input}.${signature}`;
}

/**
 * Ends the session an access token was issued in, at the demo identity provider (its
 * demo-only `POST /app/logout`): the IdP drops the session and sends the back-channel
 * logout (OpenID Connect Back-Channel Logout 1.0) to the gateway before it answers.
 */
export async function logoutAtIdp(issuer: string, accessToken: string): Promise<void> {
  let res: Response;
  try {
    res = await fetch(`${issuer.replace(/\/+$/, '')}/app/logout`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ access_token: accessToken }),
    });
  } catch (err) {
    throw new TokenFlowError('logout_failed', `cannot reach ${issuer} (is the demo running?): ${(err as Error).message}`);
  }
  const text = await res.text();
  if (res.status !== 200) throw new TokenFlowError('logout_failed', `the identity provider refused the logout: HTTP ${res.status} ${text.trim()}`);
}

export interface TokenResult {
  readonly accessToken: string;
  readonly idToken: string | undefined;
  readonly expiresIn: number | undefined;
  /** `Bearer`, or `DPoP` for a token bound to the `dpop` key. */
  readonly tokenType: string;
  /** amr / acr / auth_time as the identity provider put them in the access token. */
  readonly claims: Record<string, unknown>;
}

export type TokenFlowErrorCode =
  | 'discovery_failed'
  | 'unexpected_page'
  | 'bad_credentials'
  | 'otp_failed'
  | 'authorization_error'
  | 'token_error'
  | 'logout_failed'
  | 'too_many_redirects';

export class TokenFlowError extends Error {
  constructor(
    readonly code: TokenFlowErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'TokenFlowError';
  }
}

/** A cookie jar just large enough for oidc-provider's cookies (RFC 6265 §5.1.4 path matching). */
class CookieJar {
  readonly #cookies = new Map<string, { name: string; value: string; path: string }>();

  store(setCookies: readonly string[]): void {
    for (const line of setCookies) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = '/';
      let expired = false;
      for (const attr of attrs) {
        const [k = '', v = ''] = attr.split('=').map((s) => s.trim());
        const key = k.toLowerCase();
        if (key === 'path' && v.startsWith('/')) path = v;
        else if (key === 'max-age' && Number(v) <= 0) expired = true;
        else if (key === 'expires' && Date.parse(v) <= Date.now()) expired = true;
      }
      const id = `${name};${path}`;
      if (expired) this.#cookies.delete(id);
      else this.#cookies.set(id, { name, value, path });
    }
  }

  header(url: URL): string {
    const out: string[] = [];
    for (const c of this.#cookies.values()) {
      const p = url.pathname;
      if (p === c.path || (p.startsWith(c.path) && (c.path.endsWith('/') || p[c.path.length] === '/'))) out.push(`${c.name}=${c.value}`);
    }
    return out.join('; ');
  }
}

const MAX_HOPS = 10;

interface Page {
  readonly url: URL;
  readonly status: number;
  readonly html: string;
}

/**
 * The demo client's authorization request (RFC 6749 §4.1.1) for the demo API as a
 * resource (RFC 8707): an S256 code challenge (RFC 7636) and a `state` against CSRF
 * (RFC 6749 §10.12). The token helper and the IdP's own browser app both start here.
 */
export function authorizationRequest(endpoint: string, redirectUri: string, extra: Record<string, string> = {}): { url: URL; verifier: string; state: string } {
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(16).toString('base64url');
  const url = new URL(endpoint);
  url.search = new URLSearchParams({
    client_id: DEMO_CLIENT_ID,
    response_type: 'code',
    redirect_uri: redirectUri,
    scope: `openid ${DEMO_API_SCOPE}`,
    resource: DEMO_RESOURCE,
    state,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    ...extra,
  }).toString();
  return { url, verifier, state };
}

/** Logs in through the demo IdP's pages and returns the access token (RFC 9068 JWT). */
export async function fetchToken(o: TokenOptions): Promise<TokenResult> {
  const jar = new CookieJar();
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));

  const request = async (url: URL, init: { method?: string; form?: Record<string, string> } = {}) => {
    const headers: Record<string, string> = { accept: 'text/html,application/json' };
    const cookie = jar.header(url);
    if (cookie) headers['cookie'] = cookie;
    let body: string | undefined;
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    const res = await fetch(url, { method: init.method ?? 'GET', headers, body, redirect: 'manual' });
    jar.store(res.headers.getSetCookie());
    return res;
  };

  // Follows redirects inside the IdP until a page, or until the redirect to our redirect_uri.
  const follow = async (first: Response, from: URL): Promise<Page | { callback: URL }> => {
    let res = first;
    let url = from;
    for (let hop = 0; hop < MAX_HOPS; hop++) {
      const location = res.headers.get('location');
      if (res.status < 300 || res.status > 399 || location === null) {
        return { url, status: res.status, html: await res.text() };
      }
      await res.body?.cancel();
      const next = new URL(location, url);
      if (sameEndpoint(next, DEMO_REDIRECT_URI)) return { callback: next };
      url = next;
      res = await request(url);
    }
    throw new TokenFlowError('too_many_redirects', `more than ${MAX_HOPS} redirects`);
  };

  // OIDC Discovery 1.0 §4.
  let meta: { issuer?: string; authorization_endpoint?: string; token_endpoint?: string };
  try {
    const res = await fetch(`${o.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    meta = (await res.json()) as typeof meta;
  } catch (err) {
    throw new TokenFlowError('discovery_failed', `cannot read ${o.issuer}/.well-known/openid-configuration (is the demo running?): ${(err as Error).message}`);
  }
  if (!meta.authorization_endpoint || !meta.token_endpoint || meta.issuer !== o.issuer.replace(/\/+$/, '')) {
    throw new TokenFlowError('discovery_failed', `${o.issuer} is not the demo identity provider`);
  }

  const { url: auth, verifier, state } = authorizationRequest(meta.authorization_endpoint, DEMO_REDIRECT_URI, {
    // A fresh login every time: the helper has no session to reuse.
    prompt: 'login',
    ...(o.acrValues ? { acr_values: o.acrValues } : {}),
    ...(o.maxAge !== undefined ? { max_age: String(o.maxAge) } : {}),
  });

  let step = await follow(await request(auth), auth);
  const page = (s: typeof step): Page => {
    if ('callback' in s) throw new TokenFlowError('unexpected_page', 'the identity provider skipped the login page');
    return s;
  };

  // Step 1: the password form.
  const login = page(step);
  const loginAction = formAction(login, 'login-form');
  step = await submit(request, follow, new URL(loginAction, login.url), {
    username: o.username,
    password: o.password,
    auth_age: String(o.authAgeSec ?? 0),
  });

  // Step 2: the TOTP form (absent for an account without a second factor).
  if (!('callback' in step) && step.html.includes('id="otp-form"')) {
    const otp = step;
    const action = new URL(formAction(otp, 'otp-form'), otp.url);
    if (o.secondFactor === 'skip') {
      step = await submit(request, follow, action, { action: 'skip' });
    } else {
      if (!o.totpSecret) throw new TokenFlowError('otp_failed', `${o.username} has a second factor; a TOTP secret is needed`);
      // A code is accepted once (RFC 6238 §5.2). When this account's current code was
      // already used, the next step's code is sent: the IdP allows one step of clock
      // drift (RFC 6238 §6). After that, wait for the next time step.
      for (let attempt = 0; attempt < 4; attempt++) {
        if (attempt >= 2) {
          const waitMs = TOTP_PERIOD_SEC * 1000 - (now() % (TOTP_PERIOD_SEC * 1000)) + 250;
          o.onWait?.(`waiting ${Math.ceil(waitMs / 1000)} s for a fresh TOTP code (the current one was already used)`);
          await sleep(waitMs);
        }
        const code = await totpCode(o.totpSecret, now() + (attempt >= 1 ? TOTP_PERIOD_SEC * 1000 : 0));
        step = await submit(request, follow, action, { action: 'verify', code });
        if ('callback' in step || pageError(step)?.code !== 'otp_replayed') break;
      }
    }
    if (!('callback' in step)) {
      const err = pageError(step);
      throw new TokenFlowError('otp_failed', `the second factor was refused: ${err?.message ?? `HTTP ${step.status}`}`);
    }
  } else if (o.secondFactor === 'otp' && 'callback' in step) {
    // The login finished after the password: the account has no second factor, so
    // the token would not be the multi-factor token the caller asked for.
    throw new TokenFlowError('otp_failed', `${o.username} has no second factor enrolled; this login can only be password-only`);
  }
  if (!('callback' in step)) {
    const err = pageError(step);
    if (err?.code === 'bad_credentials') throw new TokenFlowError('bad_credentials', err.message);
    throw new TokenFlowError('unexpected_page', `login did not finish: ${err?.message ?? `HTTP ${step.status} at ${step.url.pathname}`}`);
  }

  // The authorization response (RFC 6749 §4.1.2, RFC 9207 iss).
  const cb = step.callback.searchParams;
  if (cb.get('error')) throw new TokenFlowError('authorization_error', `${cb.get('error')}: ${cb.get('error_description') ?? ''}`);
  if (cb.get('state') !== state) throw new TokenFlowError('authorization_error', 'state mismatch in the authorization response');
  if (cb.get('iss') !== null && cb.get('iss') !== meta.issuer) throw new TokenFlowError('authorization_error', 'iss mismatch in the authorization response');
  const code = cb.get('code');
  if (!code) throw new TokenFlowError('authorization_error', 'no code in the authorization response');

  const tokenRes = await fetch(meta.token_endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
      ...(o.dpop !== undefined ? { dpop: dpopProof(o.dpop, 'POST', meta.token_endpoint) } : {}),
    },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: DEMO_REDIRECT_URI,
      client_id: DEMO_CLIENT_ID,
      code_verifier: verifier,
      resource: DEMO_RESOURCE,
    }),
  });
  const body = (await tokenRes.json().catch(() => ({}))) as {
    access_token?: unknown;
    id_token?: unknown;
    expires_in?: unknown;
    token_type?: unknown;
    error?: string;
    error_description?: string;
  };
  if (!tokenRes.ok || typeof body.access_token !== 'string') {
    throw new TokenFlowError('token_error', `token request failed: ${body.error ?? `HTTP ${tokenRes.status}`} ${body.error_description ?? ''}`.trim());
  }
  return {
    accessToken: body.access_token,
    idToken: typeof body.id_token === 'string' ? body.id_token : undefined,
    expiresIn: typeof body.expires_in === 'number' ? body.expires_in : undefined,
    tokenType: typeof body.token_type === 'string' ? body.token_type : 'Bearer',
    claims: jwtPayload(body.access_token),
  };
}

async function submit(
  request: (url: URL, init?: { method?: string; form?: Record<string, string> }) => Promise<Response>,
  follow: (res: Response, from: URL) => Promise<Page | { callback: URL }>,
  url: URL,
  form: Record<string, string>,
): Promise<Page | { callback: URL }> {
  return follow(await request(url, { method: 'POST', form }), url);
}

/** Same scheme, host and path, any loopback port (RFC 8252 §7.3), as the IdP matches it. */
function sameEndpoint(url: URL, registered: string): boolean {
  const r = new URL(registered);
  return url.protocol === r.protocol && url.hostname === r.hostname && url.pathname === r.pathname;
}

function formAction(p: Page, id: string): string {
  const m = new RegExp(`<form id="${id}"[^>]*\\saction="([^"]*)"`).exec(p.html);
  if (!m) {
    const err = pageError(p);
    throw new TokenFlowError('unexpected_page', `expected the ${id} at ${p.url.pathname} (HTTP ${p.status})${err ? `: ${err.message}` : ''}`);
  }
  return unescapeHtml(m[1]!);
}

function pageError(p: Page): { code: string; message: string } | undefined {
  const m = /data-error="([^"]+)">([^<]*)</.exec(p.html);
  return m ? { code: unescapeHtml(m[1]!), message: unescapeHtml(m[2]!) } : undefined;
}

function unescapeHtml(s: string): string {
  return s.replace(/&(amp|lt|gt|quot|#39);/g, (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" })[e] ?? '');
}

/** A JWT's payload, decoded without verification (for display and tests; the gateway verifies). */
export function jwtPayload(jwt: string): Record<string, unknown> {
  try {
    return JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}
