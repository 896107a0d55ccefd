/**
 * `WWW-Authenticate: Bearer …` values (RFC 6750 §3, RFC 9470 §3).
 *
 * Every auth-param value is sent as a quoted-string (RFC 9110 §11.2, §5.6.4):
 * `"` and `\` are escaped with a backslash, and anything a header field value cannot
 * carry safely (control characters including HTAB, DEL, non-ASCII) becomes `?`, which
 * also keeps `error_description` inside RFC 6750 §3's %x20-7E. No config text or message
 * can split a header or smuggle a second one.
 */

/** The auth-params of one Bearer challenge; absent or empty values are left out. */
export interface BearerChallengeParams {
  /** RFC 6750 §3: the protection space. */
  realm?: string;
  /** RFC 6750 §3.1 / RFC 9470 §3 error code; left out when the request had no credentials. */
  error?: string;
  description?: string;
  /** RFC 6750 §3: space-separated scope values the resource needs. */
  scope?: string;
  /** RFC 9470 §3: space-separated acr values, any of which satisfies the resource. */
  acrValues?: string;
  /** RFC 9470 §3: the largest acceptable age of the authentication, in seconds. */
  maxAge?: number;
}

/**
 * Builds a Bearer challenge. Parameter order is fixed (realm, error, error_description,
 * scope, acr_values, max_age), so equal inputs give byte-equal headers.
 *
 * @example
 * bearerChallenge({ realm: 'api', error: 'insufficient_user_authentication',
 *   description: 'A more recent authentication is required.', maxAge: 300 })
 * // Bearer realm="api", error="insufficient_user_authentication",
 * //   error_description="A more recent authentication is required.", max_age="300"
 */
export function bearerChallenge(p: BearerChallengeParams): string {
  const params: string[] = [];
  const add = (name: string, value: string | undefined) => {
    if (value !== undefined && value !== '') params.push(`${name}=${quote(value)}`);
  };
  add('realm', p.realm);
  add('error', p.error);
  add('error_description', p.description);
  add('scope', p.scope);
  add('acr_values', p.acrValues);
  if (p.maxAge !== undefined && Number.isFinite(p.maxAge)) {
    // RFC 9470 §3: a non-negative number of seconds.
    add('max_age', String(Math.max(0, Math.floor(p.maxAge))));
  }
  return params.length === 0 ? 'Bearer' : `Bearer ${params.join(', ')}`;
}

/** RFC 9110 §5.6.4 quoted-string; characters qdtext cannot hold safely become `?`. */
function quote(value: string): string {
  // Fast path: the usual value needs neither escaping nor replacement.
  if (/^[\x20\x21\x23-\x5b\x5d-\x7e]*$/.test(value)) return `"${value}"`;
  let out = '"';
  for (const ch of value) {
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (ch >= ' ' && ch <= '~') out += ch;
    else out += '?';
  }
  return `${out}"`;
}
