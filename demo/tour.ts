import { ACR_MFA, ACR_PWD, DEMO_PORTS } from './constants.js';

/**
 * What `npm run demo` prints: where everything runs and the commands to try, with
 * the answers they get. The steps are data, so the integration test runs the very
 * same steps against a running demo and checks that each answer is the one printed.
 */

/**
 * Which token a step sends: none, password-only, MFA, MFA with a login back-dated by 10
 * minutes, or a DPoP-bound password-only token (RFC 9449) with the one proof printed
 * beside it (password-only: the tour's commands run back to back, and a third TOTP login
 * within 30 seconds would wait for the next code).
 */
export type TourToken = 'none' | 'PW' | 'MFA' | 'OLD' | 'DPOP';

export interface TourStep {
  readonly title: string;
  readonly token: TourToken;
  readonly path: string;
  /** Status the gateway answers. */
  readonly status: number;
  /** Pieces the WWW-Authenticate header contains (in this order), when there is one. */
  readonly challenge?: readonly string[];
  /** Identity headers the upstream's echo shows (200 answers). */
  readonly identity?: Readonly<Record<string, string>>;
  /** Before the request, the token's session is ended at the identity provider (`demo logout`). */
  readonly logoutFirst?: boolean;
  /** The explanation printed under the command. */
  readonly notes: readonly string[];
}

/** The token commands, by variable name, as flags of `demo token`. */
export const TOKEN_FLAGS: Readonly<Record<Exclude<TourToken, 'none'>, string>> = Object.freeze({
  PW: '--pwd',
  MFA: '--mfa',
  OLD: '--mfa --auth-age 10m',
  DPOP: '--pwd --dpop',
});

/** The shell variable the DPoP proof printed with the `DPOP` token goes into. */
export const PROOF_VARIABLE = 'PROOF';

/** The DPoP challenge's algorithms with the demo config (the default `dpop.algorithms`). */
const DPOP_ALGS = 'algs="ES256 ES384 EdDSA PS256 RS256"';

export const TOUR_STEPS: readonly TourStep[] = Object.freeze([
  {
    title: 'A public route (auth: none): no token needed',
    token: 'none',
    path: '/public/hello',
    status: 200,
    notes: ['The echo shows no x-auth-* headers: nobody was authenticated.'],
  },
  {
    title: 'No token on an MFA route',
    token: 'none',
    path: '/api/hello',
    status: 401,
    challenge: ['Bearer realm="mfa-gateway"'],
    notes: ['A bare challenge without an error code: the request had no credentials (RFC 6750 §3.1).'],
  },
  {
    title: 'A password-only token: the RFC 9470 step-up challenge',
    token: 'PW',
    path: '/api/hello',
    status: 401,
    challenge: ['Bearer realm="mfa-gateway"', 'error="insufficient_user_authentication"', `acr_values="${ACR_MFA}"`],
    notes: [
      'The token itself is fine (signature, issuer, audience, typ at+jwt, expiry), but its amr is ["pwd"]:',
      'one factor. error="insufficient_user_authentication" (RFC 9470 §3) tells the client that a stronger',
      'login would do, and acr_values names it. The client sends the user back to the identity provider',
      'with those acr_values, and the demo IdP then insists on the TOTP step. In the browser:',
      '  IDP_STEP_UP_URL',
    ],
  },
  {
    title: 'An MFA token (password + TOTP): through to the upstream',
    token: 'MFA',
    path: '/api/hello',
    status: 200,
    identity: { 'x-auth-subject': 'alice', 'x-auth-amr': 'pwd,otp', 'x-auth-roles': 'reader,admin', 'x-auth-acr': ACR_MFA },
    notes: [
      'amr ["pwd","otp"] is a "know" and a "have" factor (RFC 8176 §2): MFA. The upstream\'s echo shows the',
      'identity headers the gateway injected (x-auth-subject, x-auth-amr, x-auth-roles, x-auth-time, …),',
      'and "authorization": "absent": the token stays at the gateway (forwardAuthorization: false).',
    ],
  },
  {
    title: 'The admin route wants a login at most 2 minutes old: step-up with max_age',
    token: 'OLD',
    path: '/admin/users',
    status: 401,
    challenge: ['Bearer realm="mfa-gateway"', 'error="insufficient_user_authentication"', `acr_values="${ACR_MFA}"`, 'max_age="120"'],
    notes: [
      'The route has mfa: { maxAge: 2m }, and this login was 10 minutes ago (auth_time): max_age="120" asks',
      'the client for a login at most 120 seconds old (RFC 9470 §3), and acr_values says it must be MFA again.',
      '--auth-age back-dates the login (a demo-only choice on the login page) so you need not wait;',
      '$MFA gets 200 here for 2 minutes after you fetched it, then this same answer.',
    ],
  },
  {
    title: 'A role alice does not have',
    token: 'MFA',
    path: '/billing/invoices',
    status: 403,
    challenge: ['Bearer realm="mfa-gateway"', 'error="insufficient_scope"'],
    notes: ['MFA is satisfied, but the route needs the role "billing" (RFC 6750 §3.1 insufficient_scope).'],
  },
  {
    title: 'A DPoP-bound token (RFC 9449) with its proof: through (/reports/ takes any valid token)',
    token: 'DPOP',
    path: '/reports/summary',
    status: 200,
    identity: { 'x-auth-subject': 'alice', 'x-auth-amr': 'pwd', 'x-auth-roles': 'reader,admin', 'x-auth-acr': ACR_PWD },
    notes: [
      'The token command made a key, had the IdP bind the token to it (cnf.jkt), and printed a proof for',
      'exactly this request: signed with that key, naming the method, the URL and the token\'s hash (ath).',
      'A thief with the token alone has no key to make a proof with: the token is useless to them.',
    ],
  },
  {
    title: 'The same proof again: a replay',
    token: 'DPOP',
    path: '/reports/summary',
    status: 401,
    challenge: ['DPoP error="invalid_dpop_proof"', DPOP_ALGS],
    notes: [
      'A proof is good for one request (its jti is remembered): whoever captured this request cannot send',
      'it again. (As a Bearer token, $DPOP gets 401 too: a bound token must come with a proof.)',
    ],
  },
  {
    title: 'Log out at the identity provider: the gateway refuses $MFA on the next request',
    token: 'MFA',
    path: '/api/hello',
    status: 401,
    challenge: ['Bearer realm="mfa-gateway"', 'error="invalid_token"', 'error_description="token revoked"'],
    logoutFirst: true,
    notes: [
      'The logout command ends the session of $MFA at the IdP, which sends the gateway a logout token',
      '(OpenID Connect Back-Channel Logout). The token is still signed and unexpired, and the gateway had it',
      'cached, but it is refused from this request on (audit reason "revoked"). In a browser, the token',
      'page\'s "Log out at the identity provider" link does the same through the IdP\'s own logout.',
    ],
  },
]);

export interface TourContext {
  readonly gatewayUrl: string;
  readonly adminUrl: string;
  readonly issuer: string;
  readonly upstreamUrl: string;
  /** e.g. `node dist/demo/cli.js token`; the flags are appended. */
  readonly tokenCommand: string;
  readonly totpUri: string;
  /** The same URI as a QR code drawn with text characters, for a phone's authenticator app. */
  readonly totpQr?: string;
}

/** `--idp URL` when the demo IdP is not on its default port. */
function idpFlag(ctx: Pick<TourContext, 'issuer'>): string {
  return ctx.issuer === `http://127.0.0.1:${DEMO_PORTS.idp}` ? '' : ` --idp ${ctx.issuer}`;
}

/** The `demo token` command line that fills one tour variable (the DPoP one with the request its proof is for). */
export function tokenCommandLine(ctx: Pick<TourContext, 'tokenCommand' | 'issuer'> & { gatewayUrl?: string }, token: Exclude<TourToken, 'none'>, path = '/api/hello'): string {
  const url = token === 'DPOP' && ctx.gatewayUrl !== undefined ? ` --url ${ctx.gatewayUrl}${path}` : '';
  return `${ctx.tokenCommand} ${TOKEN_FLAGS[token]}${url}${idpFlag(ctx)}`;
}

/** The shell line that fills a tour variable: `X=$(…)`, or for DPoP the token and its proof, one line each. */
export function assignmentLine(ctx: Pick<TourContext, 'tokenCommand' | 'issuer' | 'gatewayUrl'>, token: Exclude<TourToken, 'none'>, path?: string): string {
  const command = tokenCommandLine(ctx, token, path);
  return token === 'DPOP' ? `{ read -r ${token}; read -r ${PROOF_VARIABLE}; } < <(${command})` : `${token}=$(${command})`;
}

/** The `demo logout` line of a step that logs its token's session out first. */
export function logoutLine(ctx: Pick<TourContext, 'tokenCommand' | 'issuer'>, step: TourStep): string {
  return `${ctx.tokenCommand.replace(/ token$/, ' logout')} "$${step.token}"${idpFlag(ctx)}`;
}

/** The curl line of a step. */
export function curlLine(ctx: Pick<TourContext, 'gatewayUrl'>, step: TourStep): string {
  const flags = step.status === 200 ? '-s' : '-si';
  const auth =
    step.token === 'none'
      ? ''
      : step.token === 'DPOP'
        ? ` -H "Authorization: DPoP $${step.token}" -H "DPoP: $${PROOF_VARIABLE}"`
        : ` -H "Authorization: Bearer $${step.token}"`;
  return `curl ${flags}${auth} ${ctx.gatewayUrl}${step.path}`;
}

/** A step's challenge as printed: its pieces, with the (wordier) error_description elided. */
export function challengeShape(pieces: readonly string[]): string {
  return pieces.flatMap((p) => (p.startsWith('error=') ? [p, 'error_description="…"'] : [p])).join(', ');
}

/** The whole text `npm run demo` prints once everything is listening. */
export function tourText(ctx: TourContext): string {
  const stepUpUrl = `${ctx.issuer}/app/login?acr_values=${encodeURIComponent(ACR_MFA)}`;
  const out: string[] = [];
  out.push(
    'mfa-gateway demo: an identity provider, an API, and the gateway in front of it, all on loopback.',
    '',
    `  gateway             ${ctx.gatewayUrl.padEnd(26)} config/demo.yaml`,
    `  gateway admin       ${ctx.adminUrl.padEnd(26)} /healthz /readyz /metrics`,
    `  identity provider   ${ctx.issuer.padEnd(26)} oidc-provider: /.well-known/openid-configuration`,
    `  demo upstream       ${ctx.upstreamUrl.padEnd(26)} echoes what the gateway sent it`,
    '',
    'Accounts on the demo identity provider:',
    '  alice / wonderland   password + TOTP    roles: reader, admin',
    '  bob   / builder      password only      roles: reader',
    "  alice's TOTP secret, for an authenticator app (to log in by hand in the browser):",
    `    ${ctx.totpUri}`,
    ...(ctx.totpQr ? ['    or scan it:', ...ctx.totpQr.trimEnd().split('\n').map((l) => `    ${l}`)] : []),
    '',
    `Log in with a browser: ${ctx.issuer}/app/  (password, then the TOTP code, or "Skip the second factor")`,
    '',
    'Try it, in another terminal in this folder. Each `token` command logs in through that same login',
    'page over HTTP (it computes the TOTP code) and prints only the access token',
    '(`npm run -s demo -- token --mfa` does the same, after rebuilding):',
    '',
  );
  const seen = new Set<TourToken>();
  TOUR_STEPS.forEach((step, i) => {
    out.push(`${i + 1}. ${step.title} → ${step.status}`);
    if (step.token !== 'none' && !seen.has(step.token)) {
      seen.add(step.token);
      out.push(`   ${assignmentLine(ctx, step.token, step.path)}`);
    }
    if (step.logoutFirst) out.push(`   ${logoutLine(ctx, step)}`);
    out.push(`   ${curlLine(ctx, step)}`);
    if (step.challenge) out.push(`   answers  WWW-Authenticate: ${challengeShape(step.challenge)}`);
    if (step.identity) out.push(`   echoes   ${Object.entries(step.identity).map(([k, v]) => `"${k}": "${v}"`).join(', ')}`);
    for (const note of step.notes) out.push(`   ${note.replace('IDP_STEP_UP_URL', stepUpUrl)}`);
    out.push('');
  });
  out.push(
    'Watch this terminal: the gateway writes one JSON audit line per request (never the token, only a short hash).',
    `Metrics: curl -s ${ctx.adminUrl}/metrics | grep '^mfa_gateway_requests'`,
    'Ctrl-C stops everything.',
    '',
  );
  return out.join('\n');
}
