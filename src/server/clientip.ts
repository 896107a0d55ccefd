import { BlockList, SocketAddress, isIP } from 'node:net';

/**
 * Builds the trusted-proxy list from config entries: exact IPv4 / IPv6 addresses or
 * CIDR blocks (`10.0.0.0/8`, `fd00::/8`). Entries were validated at load time; one
 * that is not an address throws here (a programming error, not a config problem).
 *
 * @example const trusted = buildBlockList(['10.0.0.0/8', '::1']);
 */
export function buildBlockList(list: readonly string[]): BlockList {
  const bl = new BlockList();
  for (const entry of list) {
    const slash = entry.indexOf('/');
    const addr = slash === -1 ? entry : entry.slice(0, slash);
    const family = isIP(addr);
    if (family === 0) throw new TypeError(`not an IP address or CIDR block: ${entry}`);
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (slash === -1) bl.addAddress(addr, type);
    else bl.addSubnet(addr, Number(entry.slice(slash + 1)), type);
  }
  return bl;
}

/**
 * BlockList.check builds a SocketAddress on every call (about 1.2 µs measured here,
 * against about 50 ns for two Map look-ups), and a gateway sees the same few
 * peers again and again: answers are remembered per list, at most MEMO_MAX
 * addresses (the memo starts over when full). Lists must not change after their
 * first use; buildBlockList's never do.
 */
const MEMO_MAX = 4096;
const memos = new WeakMap<BlockList, Map<string, boolean>>();

/** Whether `addr` is in the trusted list; memoized (use it for every peer check on the hot path). */
export function isTrusted(trusted: BlockList, addr: string): boolean {
  let memo = memos.get(trusted);
  if (memo === undefined) memos.set(trusted, (memo = new Map()));
  let yes = memo.get(addr);
  if (yes === undefined) {
    // An IPv4 address checked as 'ipv6' also matches its IPv4-mapped form, and the reverse.
    yes = trusted.check(addr, addr.includes(':') ? 'ipv6' : 'ipv4');
    if (memo.size >= MEMO_MAX) memo.clear();
    memo.set(addr, yes);
  }
  return yes;
}

/**
 * One X-Forwarded-For element as an address, or null when it is not one. Accepts
 * what proxies write in practice: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
 * `[2001:db8::1]` and `[2001:db8::1]:443`. IPv6 is returned in its canonical
 * RFC 5952 text, and IPv4-mapped IPv6 as plain IPv4 (as the pipeline does for
 * the socket peer), so one client has one spelling for rate-limit keys.
 */
function parseElement(raw: string): string | null {
  let s = raw.trim();
  if (s.length === 0 || s.length > 64) return null;
  if (s.charCodeAt(0) === 0x5b /* [ */) {
    const end = s.indexOf(']');
    if (end === -1) return null;
    const rest = s.slice(end + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return null;
    s = s.slice(1, end);
    if (isIP(s) !== 6) return null;
  } else {
    const colon = s.indexOf(':');
    if (colon !== -1 && colon === s.lastIndexOf(':')) {
      // One colon: IPv4 with a port.
      if (!/^\d{1,5}$/.test(s.slice(colon + 1))) return null;
      s = s.slice(0, colon);
      if (isIP(s) !== 4) return null;
      return s;
    }
    const family = isIP(s);
    if (family === 4) return s;
    if (family !== 6) return null;
  }
  // A zone index (`fe80::1%eth0`) names an interface of the proxy's host, not a client.
  if (s.includes('%')) return null;
  const canonical = new SocketAddress({ address: s, family: 'ipv6' }).address;
  if (canonical.startsWith('::ffff:') && canonical.includes('.')) return canonical.slice(7);
  return canonical;
}

/**
 * The client's address: the socket peer, or, when the peer is a trusted proxy, the
 * right-most X-Forwarded-For address that is not itself a trusted proxy.
 *
 * Walking from the right matters: every proxy appends the address it received the
 * request from, so only the elements added by trusted proxies can be believed;
 * anything further left was written by the client (RFC 7239 §5.2 and §8.3 make
 * the same point for `Forwarded`). A malformed element ends the walk and the peer
 * is answered: the chain of trust is broken there, and an element to its left
 * could have been written by anyone. When every element is trusted, the left-most
 * one is the origin.
 *
 * @param peer the socket's remote address (IPv4-mapped IPv6 already unwrapped)
 * @param xff every X-Forwarded-For field line, joined with `, `
 * @param trusted the trusted proxies, or null when none are configured
 * @example clientAddress('10.0.0.5', '6.6.6.6, 203.0.113.9', buildBlockList(['10.0.0.0/8'])) === '203.0.113.9'
 */
export function clientAddress(peer: string, xff: string | undefined, trusted: BlockList | null): string {
  if (trusted === null || xff === undefined || !isTrusted(trusted, peer)) return peer;
  let end = xff.length;
  let last: string | null = null;
  // Bounded by the header's length (the pipeline caps the header block at 16 KiB).
  while (end > 0) {
    const comma = xff.lastIndexOf(',', end - 1);
    const element = xff.slice(comma + 1, end);
    end = comma === -1 ? 0 : comma;
    if (element.trim().length === 0) continue; // `a,,b` or a trailing comma: empty list elements (RFC 9110 §5.6.1)
    const addr = parseElement(element);
    if (addr === null) return peer;
    if (!isTrusted(trusted, addr)) return addr;
    last = addr;
  }
  return last ?? peer;
}
