/**
 * What the gateway renders from a verified principal once and reuses on every cache
 * hit: the token's audit fingerprint, the audit line's claims part, the identity header
 * values and the signed identity assertions. It hangs on the principal itself, so it
 * lives exactly as long as the cache entry, and it holds nothing a policy reads: the
 * principal's claims stay frozen; only this side object changes.
 *
 * Why not WeakMaps keyed by the principal (what these memos were): V8 keeps each
 * WeakMap entry as an ephemeron, and a major GC must run a fixpoint over all of them
 * after the ordinary marking. With 35,000 cached tokens and three such WeakMaps, a full
 * GC forced in the built gateway took 204-240 ms, of which 188 ms was
 * `mark.ephemeron.marking` (`--trace-gc-nvp`), plus ~690 ms of background marking; it
 * is what stalled the bench's `fixed-rate` scenario on one core (bench/README.md).
 *
 * A symbol, not enumerable, written before the principal is frozen: JSON, `explain`, a
 * test's deep equality and the structured clone that carries a principal between
 * threads (HTML "StructuredSerialize" copies enumerable string keys only) never see it.
 * A principal built without one (by hand, in a test) is rendered afresh each time.
 *
 * The verifier's principals get it as the last key of their object literal
 * (`[MEMO]: newMemo()`, then {@link hideMemo}): V8 then keeps it inside the object like
 * the claims. Added afterwards ({@link withMemo}), it would take a second object (a
 * property array) per cached token.
 */
export const MEMO: unique symbol = Symbol('mfa-gateway principal memo');

export interface PrincipalMemo {
  /** The token's audit fingerprint (src/observe/audit.ts tokenHash). */
  tokenHash: string | undefined;
  /** The audit line's issuer…token_hash part (src/observe/audit-line.ts). */
  auditPart: string | undefined;
  /** The identity header values, and the rewriter (one per config) that rendered them. */
  identity: readonly string[] | null | undefined;
  identityOwner: object | undefined;
  /** Signed identity assertions by audience, and the signer that signed them. */
  assertions: Map<string, unknown> | undefined;
  assertionsOwner: object | undefined;
}

/** An empty memo, for the `[MEMO]` key of a principal's object literal (then {@link hideMemo}). */
export function newMemo(): PrincipalMemo {
  return { tokenHash: undefined, auditPart: undefined, identity: undefined, identityOwner: undefined, assertions: undefined, assertionsOwner: undefined };
}

/** Makes the `[MEMO]` key of a principal not yet frozen not enumerable; returns the principal. */
export function hideMemo<T extends { [MEMO]: PrincipalMemo }>(principal: T): T {
  Object.defineProperty(principal, MEMO, { enumerable: false });
  return principal;
}

/** Gives a principal built another way (not frozen yet) its empty memo; returns it. */
export function withMemo<T extends object>(principal: T): T {
  Object.defineProperty(principal, MEMO, { value: newMemo(), enumerable: false, writable: false, configurable: false });
  return principal;
}

/** The memo of a principal, or undefined for one built without it. */
export function memoOf(principal: object): PrincipalMemo | undefined {
  return (principal as { [MEMO]?: PrincipalMemo })[MEMO];
}
