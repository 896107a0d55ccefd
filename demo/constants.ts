/**
 * Names shared by the demo identity provider, its token helper, the demo config
 * and the tour. The token helper imports only this file (not oidc-provider), so
 * `demo token` starts fast.
 */

/** The public client (RFC 6749 §2.1) the login page and the token helper use, with PKCE (RFC 7636). */
export const DEMO_CLIENT_ID = 'mfa-gateway-demo';

/**
 * Loopback redirect URI of a native client (RFC 8252 §7.3): the port is not part
 * of the match, so the demo page on the IdP's own port (whatever it is) and the
 * token helper (which never listens, it reads the redirect) share one registration.
 */
export const DEMO_REDIRECT_PATH = '/app/callback';
export const DEMO_REDIRECT_URI = `http://127.0.0.1${DEMO_REDIRECT_PATH}`;

/** The demo API as a resource indicator (RFC 8707) and the `aud` of its tokens (RFC 9068 §3). */
export const DEMO_RESOURCE = 'urn:mfa-gateway:demo-api';
export const DEMO_AUDIENCE = 'demo-api';
export const DEMO_API_SCOPE = 'api:read';

/** acr values the demo IdP emits: password only, and password + TOTP. */
export const ACR_PWD = 'urn:mfa-gateway:demo:pwd';
export const ACR_MFA = 'urn:mfa-gateway:demo:mfa';

/** Fixed loopback ports of `npm run demo` (each can be moved with its DEMO_*_PORT variable). */
export const DEMO_PORTS = Object.freeze({ gateway: 8080, admin: 9901, idp: 9000, upstream: 3001 });
