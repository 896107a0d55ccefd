/**
 * Resource-server nonces for DPoP proofs (RFC 9449 §8, §9): the server sends a
 * `DPoP-Nonce` header, and a proof must carry a recent one in its `nonce` claim, which
 * limits how long a proof made in advance (on a device the attacker controls for a
 * moment) stays usable.
 *
 * No nonce is stored. A nonce is an HMAC-SHA256 of a time slot's number under a secret
 * key, valid during its slot and the next one: checking it is recomputing one or two
 * HMACs (each computed once per slot and kept). A random key per process is the
 * default; instances behind one load balancer share `secret`, so a nonce one issues the
 * others accept.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { NonceCheck } from './proof.js';

export interface NonceSourceOptions {
  /** Milliseconds since the epoch. */
  readonly now: () => number;
  /** Length of a slot, ms (default 60 s): a nonce is accepted for one to two slots. */
  readonly slotMs?: number;
  /** At least 32 bytes shared by every instance; default: 32 random bytes per process. */
  readonly secret?: Uint8Array;
}

/** 128 bits of the HMAC, base64url: only NQCHAR characters (RFC 9449 §8.1). */
const NONCE_CHARS = 22;

export class NonceSource implements NonceCheck {
  private readonly now: () => number;
  private readonly slotMs: number;
  private readonly secret: Uint8Array;
  private slot = Number.NaN;
  private currentNonce = '';
  private previousNonce = '';

  /** The secret, for the front-end threads (src/threads/main.ts): a nonce one thread issues passes on every thread. */
  get sharedSecret(): Uint8Array {
    return this.secret;
  }

  constructor(options: NonceSourceOptions) {
    this.now = options.now;
    this.slotMs = options.slotMs ?? 60_000;
    if (!(this.slotMs >= 1000)) throw new RangeError('slotMs must be at least 1000');
    if (options.secret !== undefined && options.secret.byteLength < 32) throw new RangeError('secret must be at least 32 bytes');
    this.secret = options.secret ?? randomBytes(32);
  }

  /** The value for a `DPoP-Nonce` response header now. */
  current(): string {
    this.advance();
    return this.currentNonce;
  }

  /** Whether a proof's `nonce` was issued in this slot or the previous one. */
  check(value: string): boolean {
    if (value.length !== NONCE_CHARS) return false;
    this.advance();
    return value === this.currentNonce || value === this.previousNonce;
  }

  private advance(): void {
    const slot = Math.floor(this.now() / this.slotMs);
    if (slot === this.slot) return;
    this.previousNonce = slot === this.slot + 1 ? this.currentNonce : this.nonceFor(slot - 1);
    this.currentNonce = this.nonceFor(slot);
    this.slot = slot;
  }

  private nonceFor(slot: number): string {
    return createHmac('sha256', this.secret).update(`dpop-nonce:${slot}`).digest('base64url').slice(0, NONCE_CHARS);
  }
}
