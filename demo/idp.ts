import { createPublicKey, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { LRUCache } from 'lru-cache';
import { jwtVerify } from 'jose';
import type { Interaction, KoaContext, Provider as ProviderType, TokenModel } from 'oidc-provider';
import { demoAccounts, passwordMatches, type DemoAccount } from './accounts.js';
import {
  ACR_MFA,
  ACR_PWD,
  DEMO_API_SCOPE,
  DEMO_AUDIENCE,
  DEMO_CLIENT_ID,
  DEMO_REDIRECT_PATH,
  DEMO_REDIRECT_URI,
  DEMO_RESOURCE,
} from './constants.js';
import { appHomePage, consentPage, errorPage, loggedOutPage, loginPage, logoutPage, otpPage, PAGE_HEADERS, tokenPage } from './pages.js';
import { createDemoStore } from './store.js';
import { TotpVerifier } from './totp.js';
import { authorizationRequest, jwtPayload } from './token-client.js';
import { listenOn } from './listen.js';

export interface DemoIdpOptions {
  readonly host?: string;
  /** 0 = any free port. */
  readonly port?: number;
  readonly accounts?: readonly DemoAccount[];
  /** Clock of the TOTP check, in ms (tests advance it instead of sleeping). */
  readonly now?: () => number;
  /** Lifetime of the access tokens, seconds. */
  readonly accessTokenTtlSec?: number;
  /** Where the demo client's pages point curl at (can be set later with setGatewayUrl). */
  readonly gatewayUrl?: string;
  /** Unexpected errors (never with a token or a password in them). */
  readonly onError?: (message: string) => void;
}

export interface DemoIdp {
  /** `http://127.0.0.1:PORT`: the `iss` of its tokens and the base of discovery. */
  readonly issuer: string;
  readonly port: number;
  setGatewayUrl(url: string): void;
  /** Where the back-channel logout of the demo client goes: the gateway's endpoint (null: nowhere). */
  setBackchannelLogoutUri(url: string | null): void;
  close(): Promise<void>;
}

/** The demo client's registered backchannel_logout_uri, standing for the gateway's endpoint of this run. */
const LOGOUT_PLACEHOLDER = 'http://127.0.0.1/.well-known/mfa-gateway/backchannel-logout';

/** Wrong passwords or codes allowed per login attempt before it is refused. */
const MAX_FAILURES = 5;
/** Largest form body the login pages read. */
const MAX_FORM_BYTES = 4096;
/** The most an "auth_age" demo knob may back-date a login (seconds). */
const MAX_AUTH_AGE_SEC = 86_400;

/**
 * oidc-provider 9 asks for Node.js 22 and warns once, on import, on older
 * runtimes. The project targets Node 20 (package.json engines) and the library
 * works there for what the demo uses; the warning would only confuse a newcomer
 * reading the demo's output, so exactly that line is dropped while importing.
 */
async function loadOidcProvider(): Promise<typeof import('oidc-provider')> {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('Unsupported runtime')) return;
    warn(...args);
  };
  try {
    return await import('oidc-provider');
  } finally {
    console.warn = warn;
  }
}

interface PendingLogin {
  accountId: string | null;
  /** Seconds to back-date auth_time by (the demo's "pretend this login happened" knob). */
  authAgeSec: number;
  failures: number;
}

/**
 * Starts the demo identity provider on loopback: oidc-provider 9 with real OIDC
 * discovery, a JWKS, authorization code + PKCE for one public client, and RFC 9068
 * JWT access tokens for the demo API requested as a resource indicator (RFC 8707).
 * Its own pages: the login (password, then TOTP) and a small demo client under `/app/`.
 *
 * @example
 * const idp = await startDemoIdp({ port: 0 });
 * // discovery: `${idp.issuer}/.well-known/openid-configuration`
 * await idp.close();
 */
export async function startDemoIdp(options: DemoIdpOptions = {}): Promise<DemoIdp> {
  const { Provider, interactionPolicy, errors } = await loadOidcProvider();
  const host = options.host ?? '127.0.0.1';
  const accounts = options.accounts ?? demoAccounts();
  const byId = new Map(accounts.map((a) => [a.id, a]));
  const byUsername = new Map(accounts.map((a) => [a.username, a]));
  const totp = new TotpVerifier(options.now);
  const onError = options.onError ?? ((m: string) => process.stderr.write(`demo idp: ${m}\n`));
  let gatewayUrl = options.gatewayUrl ?? null;
  let backchannelLogoutUri: string | null = null;

  const server: Server = createServer();
  const port = await listenOn(server, host, options.port ?? 0, 'demo identity provider');
  const issuer = `http://${host}:${port}`;

  // A fresh signing key per start: tokens of an earlier run stop verifying, which is right.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: `demo-${randomUUID().slice(0, 8)}`, alg: 'RS256', use: 'sig' };

  // RFC 9470 step-up: a request whose acr_values ask for the multi-factor acr needs
  // a login that reached it, even when a password-only session exists.
  const policy = interactionPolicy.base();
  const { Check } = interactionPolicy;
  policy.get('login')!.checks.push(
    new Check('acr_step_up', 'a multi-factor login was requested (acr_values)', 'login_required', (ctx: KoaContext) => {
      const { oidc } = ctx;
      if (oidc.result?.login || !wantsMfa(oidc.params['acr_values'])) return Check.NO_NEED_TO_PROMPT;
      return oidc.session.acr === ACR_MFA ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT;
    }),
  );

  const store = createDemoStore();
  const publicKey = createPublicKey(privateKey);
  const provider: ProviderType = new Provider(issuer, {
    adapter: store.adapter,
    clients: [
      {
        client_id: DEMO_CLIENT_ID,
        client_name: 'mfa-gateway demo',
        // A public native client (RFC 8252): no secret, PKCE, loopback redirect with any port.
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: [DEMO_REDIRECT_URI],
        // Back-Channel Logout 1.0 §2.2: the gateway, on its own port, which is known only once it
        // listens (as a loopback redirect URI's port is not part of it, RFC 8252 §7.3): `fetch`
        // below sends this registration's requests to the gateway's URL of this run.
        backchannel_logout_uri: LOGOUT_PLACEHOLDER,
        backchannel_logout_session_required: true,
      },
    ],
    // Outgoing requests go to loopback (the gateway), which oidc-provider's own SSRF guard refuses.
    fetch: (url: string, init: RequestInit & { dispatcher?: unknown }) => {
      const { dispatcher: _guard, ...rest } = init;
      if (url !== LOGOUT_PLACEHOLDER) return Promise.reject(new Error(`the demo identity provider makes no request to ${url}`));
      if (backchannelLogoutUri === null) return Promise.reject(new Error('no gateway to send the back-channel logout to'));
      return globalThis.fetch(backchannelLogoutUri, rest);
    },
    jwks: { keys: [jwk] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    acrValues: [ACR_PWD, ACR_MFA],
    scopes: ['openid'],
    pkce: { required: () => true },
    clientBasedCORS: () => false,
    features: {
      devInteractions: { enabled: false },
      // RFC 9449: a token request with a DPoP proof gets a token bound to the proof's key (cnf.jkt).
      dPoP: { enabled: true },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx: { type: string; body: string }, form: string) => {
          ctx.type = 'html';
          ctx.body = logoutPage(form);
        },
        postLogoutSuccessSource: async (ctx: { type: string; body: string }) => {
          ctx.type = 'html';
          ctx.body = loggedOutPage();
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx: unknown, _client: unknown, oneOf?: string[]) => oneOf ?? DEMO_RESOURCE,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx: unknown, resource: string) => {
          if (resource !== DEMO_RESOURCE) throw new errors.InvalidTarget(`unknown resource; this IdP serves ${DEMO_RESOURCE}`);
          return {
            scope: DEMO_API_SCOPE,
            audience: DEMO_AUDIENCE,
            accessTokenTTL: options.accessTokenTtlSec ?? 600,
            // RFC 9068: a signed JWT with typ at+jwt (oidc-provider sets the typ).
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    // RFC 9068 §2.2.1: auth_time, acr and amr may be carried by a JWT access token;
    // the gateway judges MFA from exactly these. roles per RFC 9068 §2.2.3.1 (RFC 7643 roles).
    extraTokenClaims: async (ctx: KoaContext, token: TokenModel) => {
      if (token.kind !== 'AccessToken') return undefined;
      const source = ctx.oidc.entities.AuthorizationCode ?? ctx.oidc.entities.RefreshToken;
      const account = token.accountId === undefined ? undefined : byId.get(token.accountId);
      return {
        // The session (as Keycloak and Entra ID put it in access tokens): a back-channel logout names it.
        ...(token.sid ? { sid: token.sid } : {}),
        ...(source?.amr ? { amr: [...source.amr] } : {}),
        ...(source?.acr ? { acr: source.acr } : {}),
        ...(source?.authTime !== undefined ? { auth_time: source.authTime } : {}),
        roles: account ? [...account.roles] : [],
      };
    },
    findAccount: async (_ctx: unknown, sub: string) => {
      const account = byId.get(sub);
      return account ? { accountId: account.id, claims: () => ({ sub: account.id, name: account.name }) } : undefined;
    },
    interactions: { policy, url: (_ctx: unknown, interaction: Interaction) => `/interaction/${interaction.uid}` },
    ttl: {
      AccessToken: options.accessTokenTtlSec ?? 600,
      AuthorizationCode: 60,
      IdToken: 600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    renderError: async (ctx: { type: string; body: string }, out: Record<string, string>) => {
      ctx.type = 'html';
      ctx.body = errorPage('Sign-in error', `${out['error'] ?? 'error'}: ${out['error_description'] ?? ''}`);
    },
  });
  provider.on('server_error', (_ctx: unknown, err: unknown) => onError(`server error: ${(err as Error)?.message ?? String(err)}`));
  const oidcCallback = provider.callback();

  const unknownUserPassword = randomUUID();
  const pending = new LRUCache<string, PendingLogin>({ max: 1000, ttl: 10 * 60_000 });
  const flows = new LRUCache<string, { verifier: string; redirectUri: string }>({ max: 1000, ttl: 10 * 60_000 });

  const send = (res: ServerResponse, status: number, html: string) => {
    res.writeHead(status, PAGE_HEADERS);
    res.end(html);
  };
  const redirect = (res: ServerResponse, location: string) => {
    res.writeHead(303, { location, 'cache-control': 'no-store', 'content-length': '0' });
    res.end();
  };

  // The grant the demo client gets: an ID token and the demo API's scope. A native
  // client needs an explicit consent result on every request (oidc-provider's
  // native_client_prompt check): the login form, or the consent page, is that.
  const grantFor = async (accountId: string, clientId: string) => {
    const grant = new provider.Grant({ accountId, clientId });
    grant.addOIDCScope('openid');
    grant.addResourceScope(DEMO_RESOURCE, DEMO_API_SCOPE);
    return grant.save();
  };

  const finishLogin = async (req: IncomingMessage, res: ServerResponse, details: Interaction, accountId: string, factors: 'pwd' | 'mfa', authAgeSec: number) => {
    pending.delete(details.uid);
    const now = Math.floor(Date.now() / 1000);
    await provider.interactionFinished(
      req,
      res,
      {
        consent: { grantId: await grantFor(accountId, String(details.params['client_id'])) },
        login: {
          accountId,
          // RFC 8176 §2: "pwd" password, "otp" one-time password.
          amr: factors === 'mfa' ? ['pwd', 'otp'] : ['pwd'],
          acr: factors === 'mfa' ? ACR_MFA : ACR_PWD,
          ts: now - authAgeSec,
          // A browser-session cookie: closing the browser logs out.
          remember: false,
        },
      },
      { mergeWithLastSubmission: false },
    );
  };

  const refuse = async (req: IncomingMessage, res: ServerResponse, uid: string, description: string) => {
    pending.delete(uid);
    await provider.interactionFinished(req, res, { error: 'access_denied', error_description: description }, { mergeWithLastSubmission: false });
  };

  const interaction = async (req: IncomingMessage, res: ServerResponse, uid: string, step: string | undefined) => {
    let details: Interaction;
    try {
      details = await provider.interactionDetails(req, res);
    } catch {
      return send(res, 400, errorPage('Login expired', 'This login attempt is unknown or has expired. Start again from the application.'));
    }
    if (details.uid !== uid) return send(res, 400, errorPage('Login mismatch', 'This page belongs to another login attempt. Start again.'));
    const base = `/interaction/${uid}`;
    if (details.prompt.name === 'consent' && details.session) {
      // Already logged in (a session cookie): confirm the account, then grant.
      if (req.method === 'GET' && step === undefined) return send(res, 200, consentPage({ action: `${base}/consent`, abortUrl: `${base}/abort`, accountId: details.session.accountId }));
      if (req.method === 'POST' && step === 'consent') {
        await readForm(req);
        return provider.interactionFinished(req, res, { consent: { grantId: await grantFor(details.session.accountId, String(details.params['client_id'])) } }, { mergeWithLastSubmission: true });
      }
    }
    if (step === 'abort' && req.method === 'GET') return refuse(req, res, uid, 'the user cancelled the login');
    if (details.prompt.name !== 'login') return send(res, 400, errorPage('Unexpected step', `The identity provider asked for "${details.prompt.name}", which the demo does not handle.`));

    const abortUrl = `${base}/abort`;
    const mfaRequired = wantsMfa(details.params['acr_values']);
    const common = { abortUrl, clientName: 'the mfa-gateway demo' };
    const stepUp = stepUpText(details);

    if (step === undefined && req.method === 'GET') {
      // Back to step 1; the failure count stays, so reloading gives no extra guesses.
      const state = pending.get(uid);
      if (state) state.accountId = null;
      return send(res, 200, loginPage({ ...common, action: `${base}/login`, ...(stepUp ? { stepUp } : {}) }));
    }
    if (req.method !== 'POST' || (step !== 'login' && step !== 'otp')) return send(res, 405, errorPage('Not allowed', 'Use the form.'));

    const form = await readForm(req);
    if (form === null) return send(res, 413, errorPage('Too large', 'The form is too large.'));

    if (step === 'login') {
      const state = pending.get(uid) ?? { accountId: null, authAgeSec: 0, failures: 0 };
      const username = form.get('username') ?? '';
      const account = byUsername.get(username);
      // A password is compared even for an unknown user name, so both take the same time.
      const matches = passwordMatches(account?.password ?? unknownUserPassword, form.get('password') ?? '');
      if (!account || !matches) {
        state.failures++;
        pending.set(uid, state);
        if (state.failures >= MAX_FAILURES) return refuse(req, res, uid, 'too many failed sign-in attempts');
        return send(res, 200, loginPage({ ...common, action: `${base}/login`, username, error: { code: 'bad_credentials', message: 'Wrong username or password.' }, ...(stepUp ? { stepUp } : {}) }));
      }
      const age = Number(form.get('auth_age') ?? '0');
      const authAgeSec = Number.isInteger(age) && age >= 0 && age <= MAX_AUTH_AGE_SEC ? age : 0;
      if (account.totpSecret === null) return finishLogin(req, res, details, account.id, 'pwd', authAgeSec);
      // Wrong passwords and wrong codes share one budget per login attempt.
      pending.set(uid, { accountId: account.id, authAgeSec, failures: state.failures });
      return send(res, 200, otpPage({ ...common, action: `${base}/otp`, username: account.username, allowSkip: !mfaRequired }));
    }

    // step === 'otp'
    const state = pending.get(uid);
    const account = state?.accountId ? byId.get(state.accountId) : undefined;
    if (!state || !account || account.totpSecret === null) {
      return send(res, 400, errorPage('Start again', 'Enter your username and password first.'));
    }
    const otpForm = (error: { code: string; message: string }) =>
      send(res, 200, otpPage({ ...common, action: `${base}/otp`, username: account.username, allowSkip: !mfaRequired, error }));
    if (form.get('action') === 'skip') {
      if (mfaRequired) return otpForm({ code: 'skip_not_allowed', message: 'This login must use the second factor.' });
      return finishLogin(req, res, details, account.id, 'pwd', state.authAgeSec);
    }
    const outcome = await totp.check(account.id, account.totpSecret, (form.get('code') ?? '').trim());
    if (outcome === 'ok') return finishLogin(req, res, details, account.id, 'mfa', state.authAgeSec);
    if (outcome === 'replayed') {
      return otpForm({ code: 'otp_replayed', message: 'This code was already used. Wait for the next one (RFC 6238 §5.2: a code is accepted once).' });
    }
    state.failures++;
    if (state.failures >= MAX_FAILURES) return refuse(req, res, uid, 'too many wrong one-time codes');
    return otpForm({ code: 'otp_invalid', message: 'Wrong code. Check the clock of the device that shows it.' });
  };

  /**
   * Demo only: ends the session an access token of this IdP was issued in, as its own
   * logout (`/session/end`) would for the demo client: the session is dropped and the
   * back-channel logout is sent (to the gateway) before the answer. `demo logout` calls it,
   * so a tour in a terminal can log out without a browser session.
   */
  const logoutByToken = async (req: IncomingMessage, res: ServerResponse) => {
    const form = await readForm(req);
    const text = (status: number, body: string) => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
      res.end(`${body}\n`);
    };
    if (form === null) return text(413, 'too large');
    let claims: Record<string, unknown>;
    try {
      claims = (await jwtVerify(form.get('access_token') ?? '', publicKey, { issuer, typ: 'at+jwt', audience: DEMO_AUDIENCE })).payload;
    } catch {
      return text(400, 'access_token is no valid access token of this identity provider');
    }
    const sid = claims['sid'];
    const client = await provider.Client.find(DEMO_CLIENT_ID);
    if (typeof sid !== 'string' || typeof claims['sub'] !== 'string' || client === undefined) return text(400, 'the access token names no session');
    store.destroySessionsWithSid(sid);
    try {
      await client.backchannelLogout(claims['sub'], sid);
    } catch (err) {
      return text(502, `the session ended, but the back-channel logout failed: ${(err as Error).message}`);
    }
    return text(200, 'logged out');
  };

  /** The demo client (a public client of this IdP, served on the same port for convenience). */
  const app = async (req: IncomingMessage, res: ServerResponse, url: URL) => {
    const home = `${issuer}/app/`;
    const redirectUri = `${issuer}${DEMO_REDIRECT_PATH}`;
    if (url.pathname === '/app/logout' && req.method === 'POST') return logoutByToken(req, res);
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, errorPage('Not allowed', 'The demo client only has pages to GET.'));
    if (url.pathname === '/app/' || url.pathname === '/app') return send(res, 200, appHomePage(`${issuer}/app/login`, gatewayUrl));
    if (url.pathname === '/app/login') {
      const { url: auth, verifier, state } = authorizationRequest(`${issuer}/auth`, redirectUri);
      flows.set(state, { verifier, redirectUri });
      // RFC 9470 §4: the client passes on what the resource server asked for.
      const acr = url.searchParams.get('acr_values');
      if (acr && /^[\x21-\x7e ]{1,200}$/.test(acr)) auth.searchParams.set('acr_values', acr);
      const maxAge = url.searchParams.get('max_age');
      if (maxAge && /^\d{1,6}$/.test(maxAge)) auth.searchParams.set('max_age', maxAge);
      return redirect(res, auth.href);
    }
    if (url.pathname === DEMO_REDIRECT_PATH) {
      const state = url.searchParams.get('state') ?? '';
      const flow = flows.get(state);
      flows.delete(state);
      const error = url.searchParams.get('error');
      if (error) return send(res, 400, errorPage('Login refused', `${error}: ${url.searchParams.get('error_description') ?? ''}`));
      if (!flow) return send(res, 400, errorPage('Unknown login', 'This callback does not belong to a login this page started (state mismatch).'));
      // RFC 9207: the authorization response names its issuer.
      const iss = url.searchParams.get('iss');
      if (iss !== null && iss !== issuer) return send(res, 400, errorPage('Wrong issuer', 'The authorization response came from another issuer.'));
      const tokenRes = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code: url.searchParams.get('code') ?? '',
          redirect_uri: flow.redirectUri,
          client_id: DEMO_CLIENT_ID,
          code_verifier: flow.verifier,
          resource: DEMO_RESOURCE,
        }),
      });
      const body = (await tokenRes.json()) as { access_token?: string; error?: string; error_description?: string };
      if (!tokenRes.ok || typeof body.access_token !== 'string') {
        return send(res, 502, errorPage('Token request failed', `${body.error ?? tokenRes.status}: ${body.error_description ?? ''}`));
      }
      // RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2) of this browser's session.
      const logoutUrl = `${issuer}/session/end?${new URLSearchParams({ client_id: DEMO_CLIENT_ID })}`;
      return send(res, 200, tokenPage(body.access_token, jwtPayload(body.access_token), gatewayUrl, home, logoutUrl));
    }
    return send(res, 404, errorPage('Not found', 'No such page.'));
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', issuer);
    const m = /^\/interaction\/([A-Za-z0-9_-]{1,64})(?:\/(login|otp|consent|abort))?$/.exec(url.pathname);
    let work: Promise<void> | void;
    if (url.pathname === '/') work = redirect(res, '/app/');
    else if (url.pathname === '/app' || url.pathname.startsWith('/app/')) work = app(req, res, url);
    else if (m) work = interaction(req, res, m[1]!, m[2]);
    else work = oidcCallback(req, res);
    void Promise.resolve(work).catch((err: unknown) => {
      onError(`${req.method} ${url.pathname}: ${(err as Error)?.message ?? String(err)}`);
      if (!res.headersSent) send(res, 500, errorPage('Error', 'The demo identity provider failed; see its terminal.'));
      else res.destroy();
    });
  });

  let closing: Promise<void> | null = null;
  return {
    issuer,
    port,
    setGatewayUrl(url: string) {
      gatewayUrl = url;
    },
    setBackchannelLogoutUri(url: string | null) {
      backchannelLogoutUri = url;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}

/** Whether `acr_values` (space-separated, OIDC Core §3.1.2.1) asks for the multi-factor acr. */
function wantsMfa(acrValues: unknown): boolean {
  return typeof acrValues === 'string' && acrValues.split(' ').includes(ACR_MFA);
}

/** The line the login page shows when the application asked for a stronger or fresher login. */
function stepUpText(details: Interaction): string | undefined {
  const parts: string[] = [];
  if (wantsMfa(details.params['acr_values'])) parts.push(`a multi-factor login (acr_values=${ACR_MFA})`);
  const maxAge = details.params['max_age'];
  if (maxAge !== undefined && details.prompt.reasons.includes('max_age')) parts.push(`a login at most ${String(maxAge)} seconds old (max_age)`);
  return parts.length ? `The application asked for ${parts.join(' and ')}.` : undefined;
}

/** Reads an application/x-www-form-urlencoded body of at most MAX_FORM_BYTES; null when larger. */
async function readForm(req: IncomingMessage): Promise<URLSearchParams | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) return null;
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}
