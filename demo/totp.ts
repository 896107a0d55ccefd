import { generate, generateURI, verify } from 'otplib';

/** RFC 6238 §4.1 time step: the 30 s every authenticator app uses. */
export const TOTP_PERIOD_SEC = 30;

/** The TOTP code for `secret` at `nowMs` (6 digits, SHA-1: what authenticator apps expect). */
export function totpCode(secret: string, nowMs: number): Promise<string> {
  return generate({ secret, epoch: Math.floor(nowMs / 1000), period: TOTP_PERIOD_SEC });
}

/** The `otpauth://totp/…` URI an authenticator app imports (the Key Uri Format). */
export function otpauthUri(secret: string, account: string, issuer = 'mfa-gateway demo'): string {
  return generateURI({ issuer, label: account, secret, period: TOTP_PERIOD_SEC });
}

export type TotpOutcome = 'ok' | 'invalid' | 'replayed';

/**
 * Checks TOTP codes and refuses a code whose time step was already used by the
 * same account: RFC 6238 §5.2 says a verifier must not accept the second attempt
 * of a valid OTP. One step of clock drift either way is accepted (RFC 6238 §5.2,
 * §6). Memory is bounded by the number of accounts.
 */
export class TotpVerifier {
  readonly #lastStep = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  async check(accountId: string, secret: string, code: string): Promise<TotpOutcome> {
    if (!/^\d{6}$/.test(code)) return 'invalid';
    const result = await verify({
      secret,
      token: code,
      epoch: Math.floor(this.now() / 1000),
      period: TOTP_PERIOD_SEC,
      epochTolerance: TOTP_PERIOD_SEC,
    });
    if (!result.valid) return 'invalid';
    // The TOTP result carries the matched time step (otplib's union type also covers HOTP).
    const step = (result as { timeStep?: number }).timeStep;
    if (typeof step !== 'number') return 'invalid';
    const last = this.#lastStep.get(accountId);
    if (last !== undefined && step <= last) return 'replayed';
    this.#lastStep.set(accountId, step);
    return 'ok';
  }
}
