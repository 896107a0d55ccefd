/**
 * What the gateway renders from a verified principal once and reuses on every cache
 * hit: the token's audit fingerprint, the audit line's claims part, the identity header
 * values and the signed identity assertions. It hangs on the principal itself, so it
 * lives exactly as long as the cache entry, and it holds nothing a policy reads: the
 * principal's claims stay frozen; only this side object changes.
 *
 * Why not WeakMaps keyed by the principal (what these memos were): V8 keeps each
 * WeakMap entry as an ephemeron, which a major GC revisits until nothing changes, and
 * every object a cached token keeps is one more each marking visits. With 35,000 cached
 * tokens, moving these memos onto the principal took a forced full GC from ~235 to
 * 168-190 ms; fewer objects per token did the rest (bench/README.md, "What a cached
 * token costs a major GC").
 *
 * A symbol, not enumerable, written before the principal is frozen: JSON, `explain`, a
 * test's deep equality and the structured clone that carries a principal between
 * threads (HTML "StructuredSerialize" copies enumerable string keys only) never see it.
 * A principal built without one (by hand, in a test) is rendered afresh each time.
 *
 * A principal gets it as the last key of its object literal (`[MEMO]: newMemo()`, then
 * {@link hideMemo}): V8 then keeps it inside the object like the claims. Added
 * afterwards (Object.defineProperty on the finished object), it would take a second
 * object (a property array) per cached token.
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

/** The memo of a principal, or undefined for one built without it. */
export function memoOf(principal: object): PrincipalMemo | undefined {
  return (principal as { [MEMO]?: PrincipalMemo })[MEMO];
}
