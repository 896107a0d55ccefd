/**
 * Untrusted decoding of a JWS compact token's header and payload on the main thread,
 * only to find the issuer (`iss`) and its key (`alg`, `kid`); the worker's jwtVerify
 * checks everything again, signature first.
 */

/**
 * Deepest nesting of objects and arrays a token's header or payload may have; the
 * top-level object is level 1. Real access tokens nest three or four levels
 * (`resource_access.<client>.roles`). JSON.parse itself copes with any depth, but
 * whatever walks the result recursively later (a structured clone across threads,
 * a serializer) overflows the stack somewhere past a few thousand levels, and a
 * 64 KiB token holds 32,000 of them.
 */
export const MAX_JSON_DEPTH = 32;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

/**
 * Whether JSON text nests objects and arrays at most `max` levels deep, without
 * allocating; brackets inside strings (RFC 8259 §7, with `\` escapes) do not count.
 * Text that is not JSON at all is left to JSON.parse.
 *
 * Text with at most `max` opening brackets in all cannot nest deeper, and that is what
 * real tokens are (a handful of brackets in ~1 KB): counted with native `indexOf`
 * calls, it costs a fraction of the character-by-character scan (~5 ns a character on
 * this machine), which runs only when there are more brackets than that.
 *
 * @example jsonDepthWithin('{"a":[1,{"b":"[[["}]}', 3) // true
 * @example jsonDepthWithin('[[[[]]]]', 3) // false
 */
export function jsonDepthWithin(text: string, max: number): boolean {
  let brackets = 0;
  for (let i = text.indexOf('{'); i >= 0 && brackets <= max; i = text.indexOf('{', i + 1)) brackets++;
  for (let i = text.indexOf('['); i >= 0 && brackets <= max; i = text.indexOf('[', i + 1)) brackets++;
  return brackets <= max || depthWithin(text, max);
}

/** jsonDepthWithin's exact answer: one charCode scan that follows strings and escapes. */
function depthWithin(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > max) return false;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      depth--;
    }
  }
  return true;
}

// jose decodes header and claims with a fatal UTF-8 decoder (RFC 7515 §5.2 step 3, RFC
// 7519 §7.2 step 10: the octets must be UTF-8); decoding alike here gives the same answer.
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes the base64url segment [start, end) of `token` into the JSON object it
 * encodes, or null when it is not one: bytes that are not UTF-8, text that is not
 * JSON, JSON that is not an object (RFC 7515 §4, RFC 7519 §7.2), or objects and arrays
 * nested deeper than {@link MAX_JSON_DEPTH}. The caller has checked that the segment
 * is canonical base64url (`jwsForm`).
 */
export function decodeJsonSegment(token: string, start: number, end: number): Record<string, unknown> | null {
  let text: string;
  try {
    text = utf8.decode(Buffer.from(token.slice(start, end), 'base64url'));
  } catch {
    return null;
  }
  if (!jsonDepthWithin(text, MAX_JSON_DEPTH)) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}
