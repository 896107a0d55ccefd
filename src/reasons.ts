/**
 * The one vocabulary of outcomes. Every answer the gateway gives, every audit line's
 * `reason` and every metric's `reason` label is one of these words, and everything
 * about it is here and nowhere else: the HTTP status, the `error` of the JSON body (the
 * OAuth error code where RFC 6750 §3.1 / RFC 9470 §3 define one, so OAuth client
 * libraries can branch on it), the public description, whether a token failing this way
 * is remembered in the negative cache, which challenge it answers with, and its audit
 * `decision`. Types of reason subsets (token failures, policy denials, …) are derived
 * from this table, so adding an outcome is one row here (docs/architecture.md).
 *
 * Descriptions are public (`error_description`, RFC 6750 §3): they name the rule, never
 * a token's content, and stay inside the quoted-string characters a challenge may carry
 * (no `"` or `\`). Some answers replace the description with a more precise one (a
 * policy deny names the route's requirement); the word stays the same.
 *
 * README "What the gateway answers" lists exactly these words (a test holds it to that).
 */

/** Which part of the pipeline produces a reason (docs/architecture.md, "Stages"). */
export type ReasonStage = 'outcome' | 'request' | 'logout' | 'route' | 'limit' | 'credentials' | 'token' | 'verifier' | 'dpop' | 'policy' | 'upstream' | 'gateway';

/**
 * The `WWW-Authenticate` an answer carries: none; the bare `Bearer realm` (no
 * credentials, RFC 6750 §3.1); `invalid_request` / `invalid_token` with the description;
 * or one the policy stage built for the route (RFC 9470 step-up, RFC 6750 insufficient_scope);
 * or `DPoP error="…", algs="…"` (RFC 9449 §7.1), built once per config (src/config/compile.ts).
 */
export type ChallengeKind = 'none' | 'realm' | 'invalid_request' | 'invalid_token' | 'policy' | 'dpop';

/**
 * `allow`: the request reached the upstream; `deny`: it never did; `dispatched`: either,
 * and the audit line says which (`allow` once the upstream request started).
 */
export type AuditDecision = 'allow' | 'deny' | 'dispatched';

export interface ReasonInfo {
  readonly stage: ReasonStage;
  /** HTTP status (499 = the client went away before any answer: logged, never sent). */
  readonly status: number;
  /** `error` of the JSON body; null for an answer the gateway does not write (ok, client_aborted). */
  readonly error: string | null;
  readonly description: string;
  /** A token refused for this reason is remembered in the negative cache (it would fail again). */
  readonly negativeCache: boolean;
  readonly challenge: ChallengeKind;
  readonly decision: AuditDecision;
  /** The answer carries `Retry-After` (429, 503). */
  readonly retryAfter: boolean;
  /** The connection closes after the answer (framing could not be trusted, or a body was left unread). */
  readonly close: boolean;
}

type Row = Partial<ReasonInfo> & Pick<ReasonInfo, 'stage' | 'status' | 'error' | 'description'>;

const row = <R extends Row>(r: R) => r;

const TOKEN = { stage: 'token', status: 401, error: 'invalid_token', challenge: 'invalid_token', decision: 'deny' } as const;
const STEP_UP = { stage: 'policy', status: 401, error: 'insufficient_user_authentication', challenge: 'policy', decision: 'deny' } as const;
const SCOPE = { stage: 'policy', status: 403, error: 'insufficient_scope', challenge: 'policy', decision: 'deny' } as const;
/** RFC 9449 §7.1: a proof problem of any kind is `invalid_dpop_proof`, under the DPoP scheme. */
const PROOF = { stage: 'dpop', status: 401, error: 'invalid_dpop_proof', challenge: 'dpop', decision: 'deny' } as const;
/** RFC 9449 §8, §9: the proof lacks a current server nonce; the answer carries `DPoP-Nonce`. */
const NONCE = { stage: 'dpop', status: 401, error: 'use_dpop_nonce', challenge: 'dpop', decision: 'deny' } as const;
/** The token itself is not usable the way it was presented (RFC 9449 §7.1, §7.2): `invalid_token` under the DPoP scheme. */
const BINDING = { stage: 'dpop', status: 401, error: 'invalid_token', challenge: 'dpop', decision: 'deny' } as const;

const ROWS = {
  ok: row({ stage: 'outcome', status: 200, error: null, description: 'The upstream answered.', decision: 'allow' }),

  // The request itself, before routing.
  shutting_down: row({ stage: 'request', status: 503, error: 'service_unavailable', description: 'The gateway is shutting down.', retryAfter: true, close: true }),
  // RFC 6585 §5. uWebSockets.js offers no header-size limit of its own to configure, so the gateway counts.
  headers_too_large: row({ stage: 'request', status: 431, error: 'request_header_fields_too_large', description: 'The request header block is larger than 16 KiB.', close: true }),
  // RFC 9112 §6.3 (ambiguous framing), §3.2 (Host): answered, then the connection closes.
  bad_request: row({ stage: 'request', status: 400, error: 'invalid_request', description: 'The request is malformed.', close: true }),
  payload_too_large: row({ stage: 'request', status: 413, error: 'payload_too_large', description: 'The request body is too large.', close: true, decision: 'dispatched' }),
  // RFC 9110 §15.5.9: the client stopped sending its body.
  request_timeout: row({ stage: 'request', status: 408, error: 'request_timeout', description: 'The request body was not received in time.', close: true, decision: 'dispatched' }),

  // OpenID Connect Back-Channel Logout 1.0 §2.8 at the gateway's own endpoint (answered before routing, never proxied).
  logout_ok: row({ stage: 'logout', status: 200, error: null, description: 'The logout token was accepted; its tokens are revoked.' }),
  logout_invalid: row({ stage: 'logout', status: 400, error: 'invalid_request', description: 'The logout request is invalid.' }),

  // Path and route (RFC 3986 normalization, README "Paths and headers").
  bad_path: row({ stage: 'route', status: 400, error: 'invalid_request', description: 'The request path is not acceptable.' }),
  not_found: row({ stage: 'route', status: 404, error: 'not_found', description: 'No route matches this path.' }),
  method_not_allowed: row({ stage: 'route', status: 405, error: 'method_not_allowed', description: 'This method is not allowed on this route.' }),

  // Abuse protection (RFC 6585 §4, Retry-After per RFC 9110 §10.2.3).
  rate_limited: row({ stage: 'limit', status: 429, error: 'rate_limited', description: 'Too many requests.', retryAfter: true }),
  token_spraying: row({ stage: 'limit', status: 429, error: 'rate_limited', description: 'Too many requests.', retryAfter: true }),

  // Credentials (RFC 6750 §2.1, §3.1).
  credentials_missing: row({ stage: 'credentials', status: 401, error: 'unauthorized', description: 'A bearer token is required.', challenge: 'realm' }),
  invalid_request: row({ stage: 'credentials', status: 400, error: 'invalid_request', description: 'The Authorization header is malformed.', challenge: 'invalid_request' }),

  // The token (RFC 6750 §3.1 invalid_token; RFC 7519, RFC 8725, RFC 9068).
  malformed: row({ ...TOKEN, description: 'token malformed', negativeCache: true }),
  too_large: row({ ...TOKEN, description: 'token too large' }),
  unknown_issuer: row({ ...TOKEN, description: 'unknown issuer', negativeCache: true }),
  alg_not_allowed: row({ ...TOKEN, description: 'algorithm not allowed', negativeCache: true }),
  bad_signature: row({ ...TOKEN, description: 'signature invalid', negativeCache: true }),
  // Remembered apart, only until a key-set refetch could change the answer (src/authn/verifier.ts).
  unknown_kid: row({ ...TOKEN, description: 'unknown signing key' }),
  expired: row({ ...TOKEN, description: 'token expired', negativeCache: true }),
  // Only a correctly signed token gets this far, and it becomes valid by itself: never remembered.
  not_yet_valid: row({ ...TOKEN, description: 'token not yet valid' }),
  exp_missing: row({ ...TOKEN, description: 'token has no expiry', negativeCache: true }),
  wrong_audience: row({ ...TOKEN, description: 'audience not accepted', negativeCache: true }),
  wrong_typ: row({ ...TOKEN, description: 'token type not accepted', negativeCache: true }),
  crit_unsupported: row({ ...TOKEN, description: 'unsupported critical header', negativeCache: true }),
  claim_invalid: row({ ...TOKEN, description: 'claim invalid', negativeCache: true }),
  sub_missing: row({ ...TOKEN, description: 'token has no subject', negativeCache: true }),
  claim_unrenderable: row({ ...TOKEN, description: 'a claim value is not valid Unicode text', negativeCache: true }),
  // RFC 7800 §3.1: a confirmation method other than RFC 9449's `jkt` (mTLS `x5t#S256`, RFC 8705 §3.1, `jwk`, `kid`)
  // cannot be checked here, and a bound token must never pass as a plain bearer token.
  binding_unsupported: row({ ...TOKEN, description: 'token bound by an unsupported confirmation method', negativeCache: true }),
  // RFC 7662 §2.2: the issuer's introspection endpoint says the token is not active (revoked, expired, unknown).
  inactive: row({ ...TOKEN, description: 'token not active' }),
  // Back-Channel Logout 1.0 §2.7, or an operator's POST /revocations: valid, but refused until it would have expired.
  revoked: row({ ...TOKEN, description: 'token revoked' }),

  // The verifier itself: the gateway's problem, not the token's (503 + Retry-After, never cached).
  verifier_unavailable: row({ stage: 'verifier', status: 503, error: 'service_unavailable', description: 'Token verification is temporarily unavailable; retry later.', retryAfter: true }),
  // RFC 7662: no trustworthy answer from the issuer's introspection endpoint (down, slow, refusing the gateway): never an allow.
  temporarily_unavailable: row({ stage: 'verifier', status: 503, error: 'temporarily_unavailable', description: 'Token introspection is temporarily unavailable; retry later.', retryAfter: true }),
  // RFC 9449 §11.1 with the replay store shared in Redis and Redis away (state.onStoreDown: closed): a proof
  // another instance may have accepted is never let through.
  replay_check_unavailable: row({ stage: 'gateway', status: 503, error: 'temporarily_unavailable', description: 'The DPoP proof replay check is temporarily unavailable; retry later.', retryAfter: true }),

  // DPoP (RFC 9449): one reason per check of §4.3, so the audit line says which failed.
  dpop_bound_as_bearer: row({ ...BINDING, description: 'The access token is bound to a DPoP key; send it with the DPoP scheme and a proof.' }),
  dpop_required: row({ ...BINDING, description: 'This issuer requires DPoP-bound access tokens.' }),
  dpop_token_not_bound: row({ ...BINDING, description: 'The access token is not bound to a DPoP key; send it with the Bearer scheme.' }),
  dpop_proof_missing: row({ ...PROOF, description: 'A DPoP proof is required for this access token.' }),
  dpop_multiple_proofs: row({ ...PROOF, description: 'More than one DPoP proof.' }),
  dpop_too_large: row({ ...PROOF, description: 'The DPoP proof is too large.' }),
  dpop_malformed: row({ ...PROOF, description: 'The DPoP proof is not a well-formed JWT.' }),
  dpop_wrong_typ: row({ ...PROOF, description: 'The DPoP proof typ is not dpop+jwt.' }),
  dpop_alg_not_allowed: row({ ...PROOF, description: 'The DPoP proof algorithm is not allowed.' }),
  dpop_bad_jwk: row({ ...PROOF, description: 'The DPoP proof jwk header is not a usable public key for its algorithm.' }),
  dpop_private_key: row({ ...PROOF, description: 'The DPoP proof jwk header contains a private key.' }),
  dpop_jkt_mismatch: row({ ...PROOF, description: 'The DPoP proof key is not the key the access token is bound to.' }),
  dpop_htm_mismatch: row({ ...PROOF, description: 'The DPoP proof htm does not match the request method.' }),
  dpop_htu_mismatch: row({ ...PROOF, description: 'The DPoP proof htu does not match the request URI.' }),
  dpop_iat_invalid: row({ ...PROOF, description: 'The DPoP proof has no valid iat.' }),
  dpop_iat_out_of_window: row({ ...PROOF, description: 'The DPoP proof iat is too far from the current time.' }),
  dpop_jti_missing: row({ ...PROOF, description: 'The DPoP proof has no jti.' }),
  dpop_jti_too_long: row({ ...PROOF, description: 'The DPoP proof jti is too long.' }),
  dpop_ath_missing: row({ ...PROOF, description: 'The DPoP proof has no ath.' }),
  dpop_ath_mismatch: row({ ...PROOF, description: 'The DPoP proof ath does not match the access token.' }),
  dpop_bad_signature: row({ ...PROOF, description: 'The DPoP proof signature is invalid.' }),
  dpop_replayed: row({ ...PROOF, description: 'The DPoP proof was already used.' }),
  dpop_nonce_missing: row({ ...NONCE, description: 'A DPoP nonce is required; use the one in the DPoP-Nonce header.' }),
  dpop_nonce_invalid: row({ ...NONCE, description: 'The DPoP nonce is not current; use the one in the DPoP-Nonce header.' }),

  // Policy: issuer allowed on the route, MFA (RFC 8176, RFC 9470), roles / scopes / groups (RFC 6750 §3.1).
  issuer_not_allowed: row({ stage: 'policy', status: 401, error: 'invalid_token', description: 'Tokens from this issuer are not accepted on this route.', challenge: 'policy', decision: 'deny' }),
  mfa_required: row({ ...STEP_UP, description: 'Multi-factor authentication is required.' }),
  acr_insufficient: row({ ...STEP_UP, description: 'A stronger authentication is required.' }),
  auth_time_missing: row({ ...STEP_UP, description: 'The access token does not say when the user authenticated (auth_time); a fresh authentication is required.' }),
  auth_too_old: row({ ...STEP_UP, description: 'The authentication is too old for this route; a fresh authentication is required.' }),
  role_missing: row({ ...SCOPE, description: 'The access token lacks a required role.' }),
  scope_missing: row({ ...SCOPE, description: 'The access token lacks a required scope.' }),
  group_missing: row({ ...SCOPE, description: 'The access token lacks a required group.' }),

  // The upstream (RFC 9110 §15.6.3, §15.6.5): the policy let the request through.
  upstream_unavailable: row({ stage: 'upstream', status: 502, error: 'bad_gateway', description: 'The upstream refused or reset the connection.', decision: 'allow' }),
  upstream_timeout: row({ stage: 'upstream', status: 504, error: 'gateway_timeout', description: 'The upstream did not answer in time.', decision: 'allow' }),

  // A bounded queue is full (verifier or upstream pool): 503 rather than an ever longer wait.
  overloaded: row({ stage: 'gateway', status: 503, error: 'service_unavailable', description: 'The gateway is overloaded; retry later.', retryAfter: true }),
  // The client went away, or the gateway failed (a bug: logged, counted, the process keeps serving).
  client_aborted: row({ stage: 'gateway', status: 499, error: null, description: 'The client closed the connection before the answer.', decision: 'dispatched' }),
  internal: row({ stage: 'gateway', status: 500, error: 'internal_error', description: 'The gateway failed to handle this request.', decision: 'dispatched' }),
} as const;

export type Reason = keyof typeof ROWS;

/** The reasons a stage produces. */
export type ReasonOf<S extends ReasonStage> = { [K in Reason]: (typeof ROWS)[K]['stage'] extends S ? K : never }[Reason];

/** Why a token was refused (401 invalid_token). */
export type TokenFailureReason = ReasonOf<'token'>;
/** Why the DPoP stage refused a request (RFC 9449). */
export type DpopReason = ReasonOf<'dpop'>;
/** Why the policy stage refused a valid token. */
export type PolicyReason = ReasonOf<'policy'>;

const DEFAULTS = { negativeCache: false, challenge: 'none', decision: 'deny', retryAfter: false, close: false } as const;

/** Every reason, its row filled in with the defaults (no negative cache, no challenge, deny, keep-alive). */
export const REASONS: { readonly [K in Reason]: ReasonInfo } = Object.freeze(
  Object.fromEntries(Object.entries(ROWS).map(([k, r]) => [k, Object.freeze({ ...DEFAULTS, ...r })])),
) as { readonly [K in Reason]: ReasonInfo };

/** Every reason word, in table order (metric label sets and the README's table use it). */
export const REASON_WORDS: readonly Reason[] = Object.freeze(Object.keys(ROWS) as Reason[]);

const WORDS: ReadonlySet<string> = new Set(REASON_WORDS);

/** True when `word` is in the vocabulary. */
export function isReason(word: string): word is Reason {
  return WORDS.has(word);
}

/** The reason-phrase table for the statuses the gateway itself produces (uWS wants "NNN Text"). */
export const STATUS_LINE: Readonly<Record<number, string>> = Object.freeze({
  200: '200 OK',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  408: '408 Request Timeout',
  413: '413 Payload Too Large',
  429: '429 Too Many Requests',
  431: '431 Request Header Fields Too Large',
  500: '500 Internal Server Error',
  502: '502 Bad Gateway',
  503: '503 Service Unavailable',
  504: '504 Gateway Timeout',
});
