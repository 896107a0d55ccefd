import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * The demo identity provider's accounts. Fixed on purpose: the quick start prints
 * them, and a fixed TOTP secret lets an authenticator app keep working across
 * demo restarts. Nothing here is a secret: this is a loopback-only demo.
 */
export interface DemoAccount {
  /** `sub` of the tokens. */
  readonly id: string;
  readonly username: string;
  readonly password: string;
  readonly name: string;
  /** The `roles` claim (the gateway's generic issuer profile reads `roles`). */
  readonly roles: readonly string[];
  /** Base32 TOTP secret (RFC 6238); null = no second factor enrolled. */
  readonly totpSecret: string | null;
}

/** 20 random bytes in Base32 (RFC 4226 §4 asks for at least 128 bits; 160 is the usual size). */
export const DEMO_TOTP_SECRET = 'FCR2CMKIIBHMD5FXJRC67CQ5CLKJONSR';

/** The demo accounts; `totpSecret` replaces alice's secret (DEMO_TOTP_SECRET by default). */
export function demoAccounts(options: { totpSecret?: string } = {}): readonly DemoAccount[] {
  return Object.freeze([
    Object.freeze({
      id: 'alice',
      username: 'alice',
      password: 'wonderland',
      name: 'Alice Liddell',
      roles: Object.freeze(['reader', 'admin']),
      totpSecret: options.totpSecret ?? DEMO_TOTP_SECRET,
    }),
    Object.freeze({
      id: 'bob',
      username: 'bob',
      password: 'builder',
      name: 'Bob Builder',
      roles: Object.freeze(['reader']),
      totpSecret: null,
    }),
  ]);
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Compares passwords in constant time (hashing first makes the lengths equal). */
export function passwordMatches(expected: string, given: string): boolean {
  return timingSafeEqual(digest(expected), digest(given));
}
