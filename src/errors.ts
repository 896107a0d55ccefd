/**
 * The one table of gateway answers. Every error the gateway sends is one of these
 * codes; the status and the public message live here and nowhere else, so the
 * response body, the audit line and the metrics all speak the same vocabulary
 * (as undici's `UND_ERR_*` codes and Fastify's error table do).
 *
 * `error` in the JSON body is the OAuth error code where RFC 6750 §3.1 / RFC 9470 §3
 * define one, so that OAuth client libraries can branch on it.
 */
export const ERRORS = {
  bad_path: { status: 400, error: 'invalid_request', message: 'The request path is not acceptable.' },
  bad_request: { status: 400, error: 'invalid_request', message: 'The request is malformed.' },
  not_found: { status: 404, error: 'not_found', message: 'No route matches this path.' },
  method_not_allowed: { status: 405, error: 'method_not_allowed', message: 'This method is not allowed on this route.' },
  // RFC 6750 §3.1: two Authorization headers or an empty bearer token.
  invalid_request: { status: 400, error: 'invalid_request', message: 'The Authorization header is malformed.' },
  // RFC 6750 §3.1: no credentials at all → no error code in the challenge.
  credentials_missing: { status: 401, error: 'unauthorized', message: 'A bearer token is required.' },
  invalid_token: { status: 401, error: 'invalid_token', message: 'The access token is invalid.' },
  insufficient_user_authentication: {
    status: 401,
    error: 'insufficient_user_authentication',
    message: 'A stronger or more recent authentication is required.',
  },
  insufficient_scope: { status: 403, error: 'insufficient_scope', message: 'The access token lacks a required role, scope or group.' },
  // RFC 6585 §5. uWS offers no header-size limit of its own to configure, so the gateway counts.
  headers_too_large: { status: 431, error: 'request_header_fields_too_large', message: 'The request header block is larger than 16 KiB.' },
  payload_too_large: { status: 413, error: 'payload_too_large', message: 'The request body is too large.' },
  // RFC 9110 §15.5.9: the client stopped sending its body.
  request_timeout: { status: 408, error: 'request_timeout', message: 'The request body was not received in time.' },
  rate_limited: { status: 429, error: 'rate_limited', message: 'Too many requests.' },
  upstream_unavailable: { status: 502, error: 'bad_gateway', message: 'The upstream refused or reset the connection.' },
  upstream_error: { status: 502, error: 'bad_gateway', message: 'The upstream answered with an invalid response.' },
  overloaded: { status: 503, error: 'service_unavailable', message: 'The gateway is overloaded; retry later.' },
  verifier_unavailable: { status: 503, error: 'service_unavailable', message: 'Token verification is temporarily unavailable; retry later.' },
  shutting_down: { status: 503, error: 'service_unavailable', message: 'The gateway is shutting down.' },
  upstream_timeout: { status: 504, error: 'gateway_timeout', message: 'The upstream did not answer in time.' },
  internal: { status: 500, error: 'internal_error', message: 'The gateway failed to handle this request.' },
} as const satisfies Record<string, { status: number; error: string; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

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

/** Error with a stable code, for failures inside the gateway (config, startup). */
export class GatewayError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GatewayError';
    this.code = code;
  }
}
