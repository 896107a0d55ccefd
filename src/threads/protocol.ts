/**
 * The messages between the main thread and the front-end threads (README "Threads").
 * Everything here is structured-cloneable (HTML standard, "StructuredSerialize"): a
 * GatewayState is not, so a thread compiles the effective raw config itself.
 */
import type { JWK } from 'jose';
import type { RawConfig } from '../config/schema.js';
import type { VerifyResult } from '../authn/types.js';
import type { LifecycleKeys } from '../lifecycle.js';
import type { RevocationEntry, RevocationInput, RevocationKind } from '../revocation/list.js';

/** What a thread starts from (its `workerData`). */
export interface ThreadData {
  readonly index: number;
  readonly threads: number;
  /** The effective raw config in force, and the folder its relative paths are read from. */
  readonly effective: RawConfig;
  readonly baseDir: string;
  /** The public port, resolved by the main thread (port 0 becomes one port for all). */
  readonly port: number;
  /** The main thread's audit token-hash key (src/observe/audit.ts reads it). */
  readonly tokenHashKey: Uint8Array;
  /** The revocation list at the thread's start. */
  readonly revocations: readonly RevocationEntry[];
  /** The main thread's assertion key and DPoP nonce secret (a KeyObject crosses threads as it is). */
  readonly keys: LifecycleKeys;
  /** One Int32 slot per thread: the requests in flight on it, refreshed every 100 ms (the main thread's inFlight()). */
  readonly inFlight: SharedArrayBuffer;
  /** A log level the CLI fixed (`--log-level`), or null. */
  readonly fixedLogLevel: string | null;
}

/** One count for the limit hub: store key, delta, when its window ends (ms since the epoch). */
export type SyncTriple = readonly [string, number, number];

export type ToMain =
  | { readonly t: 'listening' }
  | { readonly t: 'failed'; readonly error: string; readonly code: string | null }
  | { readonly t: 'log'; readonly line: string }
  | { readonly t: 'audit'; readonly text: string; readonly count: number }
  | { readonly t: 'verify'; readonly id: number; readonly token: string }
  | { readonly t: 'key'; readonly id: number; readonly issuer: string; readonly alg: string; readonly kid: string | undefined }
  | { readonly t: 'sync'; readonly id: number; readonly items: readonly SyncTriple[] }
  | { readonly t: 'block'; readonly key: string; readonly until: number }
  | { readonly t: 'revoke'; readonly input: RevocationInput }
  | { readonly t: 'unrevoke'; readonly issuer: string; readonly kind: RevocationKind; readonly value: string }
  | { readonly t: 'replay'; readonly id: number; readonly jti: string; readonly until: number }
  | { readonly t: 'metrics'; readonly id: number; readonly json: unknown[] }
  | { readonly t: 'drained'; readonly left: number };

export type ToThread =
  | { readonly t: 'verified'; readonly id: number; readonly result: VerifyResult }
  | { readonly t: 'key'; readonly id: number; readonly jwk: JWK | null }
  | { readonly t: 'totals'; readonly id: number; readonly totals: readonly number[] | null }
  | { readonly t: 'block'; readonly key: string; readonly until: number }
  | { readonly t: 'revocation'; readonly op: 'add' | 'remove'; readonly entry: RevocationEntry }
  | { readonly t: 'replayed'; readonly id: number; readonly fresh: boolean }
  | { readonly t: 'replayed'; readonly id: number; readonly unavailable: string }
  | { readonly t: 'replayed'; readonly id: number; readonly error: string }
  | { readonly t: 'metrics'; readonly id: number }
  | { readonly t: 'reload'; readonly effective: RawConfig; readonly dropTokens: boolean }
  | { readonly t: 'drain'; readonly limitMs: number };
