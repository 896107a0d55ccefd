import { describe, expect, it } from 'vitest';
import { buildBlockList, clientAddress, isTrusted } from '../../../src/server/clientip.js';

const trusted = buildBlockList(['10.0.0.0/8', '192.168.1.1', 'fd00::/8', '::1']);

describe('buildBlockList', () => {
  it('takes addresses and CIDR blocks of both families', () => {
    expect(trusted.check('10.200.3.4', 'ipv4')).toBe(true);
    expect(trusted.check('192.168.1.1', 'ipv4')).toBe(true);
    expect(trusted.check('192.168.1.2', 'ipv4')).toBe(false);
    expect(trusted.check('fd12::1', 'ipv6')).toBe(true);
    expect(trusted.check('::1', 'ipv6')).toBe(true);
    expect(trusted.check('2001:db8::1', 'ipv6')).toBe(false);
  });

  it('isTrusted answers for both families and IPv4-mapped IPv6, the same when asked again', () => {
    for (let i = 0; i < 2; i++) {
      expect(isTrusted(trusted, '10.1.1.1')).toBe(true);
      expect(isTrusted(trusted, '::ffff:10.1.1.1')).toBe(true);
      expect(isTrusted(trusted, 'fd00::1')).toBe(true);
      expect(isTrusted(trusted, '8.8.8.8')).toBe(false);
      expect(isTrusted(trusted, '2001:db8::1')).toBe(false);
    }
  });

  it('throws on an entry that is not an address', () => {
    expect(() => buildBlockList(['proxy.internal'])).toThrow(TypeError);
  });
});

describe('clientAddress', () => {
  it('is the socket peer when no proxies are trusted or no X-Forwarded-For came', () => {
    expect(clientAddress('203.0.113.7', '6.6.6.6', null)).toBe('203.0.113.7');
    expect(clientAddress('10.0.0.5', undefined, trusted)).toBe('10.0.0.5');
  });

  it('ignores a spoofed X-Forwarded-For from an untrusted peer', () => {
    expect(clientAddress('203.0.113.7', '10.0.0.1', trusted)).toBe('203.0.113.7');
    expect(clientAddress('203.0.113.7', '1.2.3.4, 192.168.1.1', trusted)).toBe('203.0.113.7');
    expect(clientAddress('2001:db8::7', '::1', trusted)).toBe('2001:db8::7');
  });

  it('takes the right-most untrusted address behind a trusted proxy, whatever the client wrote further left', () => {
    expect(clientAddress('10.0.0.5', '198.51.100.9', trusted)).toBe('198.51.100.9');
    // The client sent `X-Forwarded-For: 6.6.6.6`; the proxy appended the real address.
    expect(clientAddress('10.0.0.5', '6.6.6.6, 198.51.100.9', trusted)).toBe('198.51.100.9');
    // A chain of trusted proxies.
    expect(clientAddress('10.0.0.5', '6.6.6.6, 198.51.100.9, 192.168.1.1, 10.9.9.9', trusted)).toBe('198.51.100.9');
    // Several X-Forwarded-For field lines, joined by the pipeline.
    expect(clientAddress('10.0.0.5', '6.6.6.6, 198.51.100.9, 10.1.1.1', trusted)).toBe('198.51.100.9');
    // The client pretending to be a trusted proxy does not help it: its own address is the one appended.
    expect(clientAddress('10.0.0.5', '10.0.0.1, 198.51.100.9', trusted)).toBe('198.51.100.9');
  });

  it('answers the left-most address when every hop is trusted', () => {
    expect(clientAddress('10.0.0.5', '10.1.1.1, 10.2.2.2', trusted)).toBe('10.1.1.1');
  });

  it('ends the walk at a malformed element and answers the peer', () => {
    expect(clientAddress('10.0.0.5', '198.51.100.9, unknown', trusted)).toBe('10.0.0.5');
    expect(clientAddress('10.0.0.5', '198.51.100.9, 999.1.1.1', trusted)).toBe('10.0.0.5');
    expect(clientAddress('10.0.0.5', '6.6.6.6, garbage, 10.1.1.1', trusted)).toBe('10.0.0.5');
    expect(clientAddress('10.0.0.5', '01.2.3.4', trusted)).toBe('10.0.0.5');
    expect(clientAddress('10.0.0.5', '[2001:db8::1', trusted)).toBe('10.0.0.5');
    expect(clientAddress('10.0.0.5', 'fe80::1%eth0', trusted)).toBe('10.0.0.5');
  });

  it('skips empty list elements and surrounding whitespace', () => {
    expect(clientAddress('10.0.0.5', ' 198.51.100.9 ,, ', trusted)).toBe('198.51.100.9');
    expect(clientAddress('10.0.0.5', '', trusted)).toBe('10.0.0.5');
  });

  it('reads ports and brackets, and gives IPv6 its canonical text', () => {
    expect(clientAddress('10.0.0.5', '198.51.100.9:50123', trusted)).toBe('198.51.100.9');
    expect(clientAddress('10.0.0.5', '[2001:DB8:0:0::7]:443', trusted)).toBe('2001:db8::7');
    expect(clientAddress('10.0.0.5', '[2001:db8::7]', trusted)).toBe('2001:db8::7');
    expect(clientAddress('10.0.0.5', '2001:0db8:0000::0007', trusted)).toBe('2001:db8::7');
    expect(clientAddress('10.0.0.5', '::ffff:198.51.100.9', trusted)).toBe('198.51.100.9');
  });

  it('trusts IPv6 proxies and IPv4 proxies seen through IPv4-mapped addresses', () => {
    expect(clientAddress('fd00::10', '2001:db8::7', trusted)).toBe('2001:db8::7');
    expect(clientAddress('::1', '198.51.100.9, fd00::20', trusted)).toBe('198.51.100.9');
    expect(clientAddress('::ffff:10.0.0.5', '198.51.100.9', trusted)).toBe('198.51.100.9');
    // An IPv4-mapped element inside a trusted range is trusted too.
    expect(clientAddress('10.0.0.5', '198.51.100.9, ::ffff:10.3.3.3', trusted)).toBe('198.51.100.9');
  });

  it('gives the same answer when asked again (the trust memo is per list)', () => {
    const other = buildBlockList(['203.0.113.0/24']);
    for (let i = 0; i < 3; i++) {
      expect(clientAddress('203.0.113.7', '198.51.100.9', trusted)).toBe('203.0.113.7');
      expect(clientAddress('203.0.113.7', '198.51.100.9', other)).toBe('198.51.100.9');
    }
    // Well past the memo's size, answers stay right.
    for (let i = 0; i < 5000; i++) clientAddress(`172.16.${i >> 8}.${i & 255}`, '1.1.1.1', trusted);
    expect(clientAddress('10.0.0.5', '198.51.100.9', trusted)).toBe('198.51.100.9');
    expect(clientAddress('172.16.0.1', '198.51.100.9', trusted)).toBe('172.16.0.1');
  });
});
