/**
 * Untrusted decoding of a JWS compact serialization (RFC 7515 §7.1) that is not an
 * access token: a DPoP proof (RFC 9449 §4.2) or a logout token (OpenID Connect
 * Back-Channel Logout 1.0 §2.4). The same rules as the access-token path
 * (src/authn/extract.ts, src/authn/jws.ts): one canonical base64url spelling per segment,
 * UTF-8 JSON objects at most 32 levels deep. Nothing here is trusted before the caller
 * has checked the signature.
 */
import { jwsForm } from '../authn/extract.js';
import { decodeJsonSegment } from '../authn/jws.js';

export interface DecodedCompact {
  readonly header: Record<string, unknown>;
  readonly payload: Record<string, unknown>;
}

/**
 * Why a text is no usable compact JWS: `too_large` (more than `maxChars`, refused before a
 * character is looked at), `malformed` (not three canonical base64url segments, or a header
 * or payload that is not a JSON object).
 */
export type CompactFailure = 'too_large' | 'malformed';

/**
 * Decodes header and payload of a compact JWS. Never throws, whatever the input.
 *
 * @example decodeCompact('eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJhIn0.c2ln', 8192) // { header: { alg: 'ES256' }, payload: { jti: 'a' } }
 * @example decodeCompact('a.b', 8192) // 'malformed'
 */
export function decodeCompact(text: unknown, maxChars: number): DecodedCompact | CompactFailure {
  if (typeof text !== 'string') return 'malformed';
  if (text.length > maxChars) return 'too_large';
  if (jwsForm(text) !== 'jws') return 'malformed';
  const firstDot = text.indexOf('.');
  const secondDot = text.indexOf('.', firstDot + 1);
  const header = decodeJsonSegment(text, 0, firstDot);
  if (header === null) return 'malformed';
  const payload = decodeJsonSegment(text, firstDot + 1, secondDot);
  if (payload === null) return 'malformed';
  return { header, payload };
}

/**
 * A `typ` header value equals `expected` (a media type without `application/`): compared
 * case-insensitively, with or without the `application/` prefix (RFC 7515 §4.1.9).
 *
 * @example typIs('application/DPoP+JWT', 'dpop+jwt') // true
 */
export function typIs(typ: unknown, expected: string): boolean {
  if (typeof typ !== 'string') return false;
  const t = typ.toLowerCase();
  return t === expected || t === `application/${expected}`;
}

/** A JSON number usable as a NumericDate (RFC 7519 §2): finite. */
export function isNumericDate(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}
