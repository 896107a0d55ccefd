/**
 * The admin token: the bearer secret that state-changing admin endpoints (POST /reload,
 * and the revocations to come) ask for (README, "Admin listener"). It lives in a file
 * (`admin.tokenFile`) so it is never part of the config text, a process listing or
 * `check --print`.
 */
import { readFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';

/** Shorter secrets are refused: the admin token guards a config reload. */
export const ADMIN_TOKEN_MIN_CHARS = 16;

/**
 * True for an address only this machine can reach: `localhost`, 127.0.0.0/8 and `::1`
 * (RFC 1122 §3.2.1.3, RFC 4291 §2.5.3), also as IPv4-mapped IPv6. `0.0.0.0` and `::`
 * listen on every address, so they are not loopback.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return true;
  const family = isIP(h);
  return family !== 0 && LOOPBACK.check(h, family === 4 ? 'ipv4' : 'ipv6');
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/**
 * The secret in a token file, or why it cannot be used: the file's text without its
 * trailing line break, at least ADMIN_TOKEN_MIN_CHARS visible ASCII characters (it is
 * compared with what follows `Bearer ` in a header, RFC 6750 §2.1). The message never
 * quotes the file's content.
 */
export function readTokenFile(file: string): { token: string } | { problem: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { problem: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` };
  }
  const token = text.replace(/\r?\n$/, '');
  if (!/^[\x21-\x7e]*$/.test(token)) return { problem: `${file} must hold one line of visible ASCII characters (no spaces), the secret itself` };
  if (token.length < ADMIN_TOKEN_MIN_CHARS) {
    return { problem: `${file} holds ${token.length} characters; the admin token needs at least ${ADMIN_TOKEN_MIN_CHARS} (e.g. openssl rand -hex 32 > ${file})` };
  }
  return { token };
}
