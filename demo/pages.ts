/**
 * HTML of the demo identity provider's pages: the login and TOTP forms and the
 * demo client's pages. Every interpolated value goes through `esc`. The forms and
 * the `data-*` attributes are also what the token helper reads, so the helper
 * drives exactly the page a person sees.
 */

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML element content and double- or single-quoted attributes. */
export function esc(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/**
 * Headers of every demo page: no caching of pages that carry one-time state or
 * tokens, no framing (clickjacking of the login form), and no script at all.
 */
export const PAGE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
});

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · mfa-gateway demo</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#1d2330}
h1{font-size:1.4rem}label{display:block;margin:.8rem 0 .2rem}
input[type=text],input[type=password],select{font:inherit;padding:.4rem;width:100%;box-sizing:border-box}
button{font:inherit;padding:.45rem 1rem;margin:1rem .5rem 0 0;cursor:pointer}
.error{background:#fde8e8;border:1px solid #e0a0a0;padding:.5rem .8rem}
.note{color:#555;font-size:.9rem}.box{background:#f4f6fa;border:1px solid #d8dde8;padding:.6rem .8rem}
textarea{width:100%;height:9rem;font:12px/1.4 ui-monospace,monospace;word-break:break-all}
pre{background:#f4f6fa;border:1px solid #d8dde8;padding:.6rem;overflow:auto;font-size:.85rem}
code{font-family:ui-monospace,monospace}
</style></head><body>
<p class="note">mfa-gateway demo identity provider · loopback only</p>
${body}
</body></html>`;
}

function errorBox(error: { code: string; message: string } | undefined): string {
  return error ? `<p class="error" role="alert" data-error="${esc(error.code)}">${esc(error.message)}</p>` : '';
}

export interface LoginPageInput {
  readonly action: string;
  readonly abortUrl: string;
  readonly clientName: string;
  readonly username?: string;
  readonly error?: { code: string; message: string };
  /** Why the login is asked for again (step-up: acr_values / max_age in the request). */
  readonly stepUp?: string;
}

/** Step 1: username and password. */
export function loginPage(p: LoginPageInput): string {
  return layout(
    'Sign in',
    `<h1>Sign in to ${esc(p.clientName)}</h1>
${p.stepUp ? `<p class="box" data-step-up>${esc(p.stepUp)}</p>` : ''}
${errorBox(p.error)}
<form id="login-form" method="post" action="${esc(p.action)}" autocomplete="off">
<label for="username">Username</label>
<input id="username" name="username" type="text" value="${esc(p.username ?? '')}" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" required>
<label for="auth_age">Pretend this login happened (demo only: shows the <code>max_age</code> step-up)</label>
<select id="auth_age" name="auth_age">
<option value="0" selected>just now</option>
<option value="600">10 minutes ago</option>
<option value="7200">2 hours ago</option>
</select>
<button id="login-submit" type="submit">Next</button>
</form>
<p><a href="${esc(p.abortUrl)}">Cancel</a></p>
<p class="note">Demo accounts: <code>alice</code> / <code>wonderland</code> (password + TOTP), <code>bob</code> / <code>builder</code> (password only).</p>`,
  );
}

export interface OtpPageInput {
  readonly action: string;
  readonly abortUrl: string;
  readonly username: string;
  /** false when the request asked for the multi-factor acr (RFC 9470 step-up). */
  readonly allowSkip: boolean;
  readonly error?: { code: string; message: string };
}

/** Step 2: the TOTP code (RFC 6238), or the demo's "skip" to get a password-only login. */
export function otpPage(p: OtpPageInput): string {
  return layout(
    'Second factor',
    `<h1>Second factor for ${esc(p.username)}</h1>
${errorBox(p.error)}
<form id="otp-form" method="post" action="${esc(p.action)}" autocomplete="off">
<label for="code">6-digit code from your authenticator app</label>
<input id="code" name="code" type="text" inputmode="numeric" pattern="[0-9]{6}" maxlength="6">
<button id="otp-submit" type="submit" name="action" value="verify">Verify</button>
${
  p.allowSkip
    ? `<button id="otp-skip" type="submit" name="action" value="skip" formnovalidate>Skip the second factor</button>
<p class="note">Skipping yields a password-only login: <code>amr: ["pwd"]</code>. The gateway answers such a token with an RFC 9470 step-up challenge.</p>`
    : '<p class="note" data-skip-disabled>The application asked for a multi-factor login (<code>acr_values</code>): the second factor cannot be skipped.</p>'
}
</form>
<p><a href="${esc(p.abortUrl)}">Cancel</a></p>`,
  );
}

/** An existing session: confirm the account before the demo client gets a token. */
export function consentPage(p: { action: string; abortUrl: string; accountId: string }): string {
  return layout(
    'Continue',
    `<h1>Continue as ${esc(p.accountId)}?</h1>
<p>The mfa-gateway demo client asks for an access token for the demo API. You are already signed in.</p>
<form id="consent-form" method="post" action="${esc(p.action)}">
<button id="consent-submit" type="submit">Continue</button>
</form>
<p><a href="${esc(p.abortUrl)}">Cancel</a></p>`,
  );
}

/** The demo client's start page. */
export function appHomePage(loginUrl: string, gatewayUrl: string | null): string {
  return layout(
    'Demo client',
    `<h1>mfa-gateway demo client</h1>
<p>This page is a public OAuth client (authorization code + PKCE, RFC 7636) of the demo identity provider.
It asks for an RFC 9068 JWT access token for the demo API (resource indicator <code>urn:mfa-gateway:demo-api</code>, RFC 8707).</p>
<p><a id="login" href="${esc(loginUrl)}">Log in and get a token</a></p>
<p class="note">After an RFC 9470 challenge, ask again with what the gateway asked for, e.g.
<a href="${esc(`${loginUrl}?acr_values=urn%3Amfa-gateway%3Ademo%3Amfa`)}">acr_values=urn:mfa-gateway:demo:mfa</a> or
<a href="${esc(`${loginUrl}?max_age=120`)}">max_age=120</a>.</p>
${gatewayUrl ? `<p class="note">The gateway is at <code>${esc(gatewayUrl)}</code>.</p>` : ''}`,
  );
}

/** The demo client's callback page: the access token, its claims, and a curl line. */
export function tokenPage(token: string, claims: Record<string, unknown>, gatewayUrl: string | null, homeUrl: string, logoutUrl: string): string {
  const api = gatewayUrl ? `${gatewayUrl}/api/hello` : 'http://127.0.0.1:8080/api/hello';
  return layout(
    'Access token',
    `<h1>Access token</h1>
<p>Signed by the demo identity provider for the demo API (<code>typ: at+jwt</code>, RFC 9068).</p>
<textarea id="access-token" readonly>${esc(token)}</textarea>
<h2>Claims the gateway will judge</h2>
<pre id="claims">${esc(JSON.stringify(claims, null, 2))}</pre>
<h2>Try it</h2>
<pre>export TOKEN='${esc(token)}'
curl -i -H "Authorization: Bearer $TOKEN" ${esc(api)}</pre>
<p><a id="logout" href="${esc(logoutUrl)}">Log out at the identity provider</a>: it then tells the gateway
(OpenID Connect Back-Channel Logout), which refuses this token from the next request on.</p>
<p><a href="${esc(homeUrl)}">Back</a></p>`,
  );
}

/** RP-initiated logout's question (oidc-provider's `logoutSource`): `form` is the library's own form, with its xsrf value. */
export function logoutPage(form: string): string {
  return layout(
    'Log out',
    `<h1>Log out of the demo identity provider?</h1>
<p>Every application of this session is told (back-channel logout), the gateway among them.</p>
${form}
<button id="logout-yes" type="submit" form="op.logoutForm" name="logout" value="yes">Yes, log me out</button>
<button id="logout-no" type="submit" form="op.logoutForm">No, stay logged in</button>`,
  );
}

/** After the logout (oidc-provider's `postLogoutSuccessSource`). */
export function loggedOutPage(): string {
  return layout('Logged out', '<h1 id="logged-out">You are logged out</h1><p>The gateway refuses the tokens of that session from now on.</p>');
}

/** A plain error page (bad or expired login state, refused login). */
export function errorPage(title: string, message: string): string {
  return layout(title, `<h1>${esc(title)}</h1><p class="error" role="alert">${esc(message)}</p>`);
}
