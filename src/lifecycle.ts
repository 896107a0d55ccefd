/**
 * The token lifecycle's per-process parts (README "Sender-constrained tokens (DPoP)",
 * "Revocation and back-channel logout", "Opaque tokens (introspection)", "Identity
 * assertions"), built once by src/gateway.ts's startProcess and shared by every front
 * end: the revocation list, the replay store of DPoP proofs and logout tokens, the proof
 * verifier with its key cache and the server nonces, one introspection client per
 * introspecting issuer (each with its answer cache), and the assertion signer (with its
 * cache of signed assertions).
 *
 * Secrets are read here, at start, from the files or environment variables the config
 * names; a secret that cannot be read stops the start with a line that says where the
 * gateway looked, never what it found.
 */
import { readFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import type { GatewayState } from './config/state.js';
import type { Runtime } from './runtime.js';
import type { SharedServices } from './pipeline/services.js';
import { GatewayError } from './errors.js';
import { RevocationList } from './revocation/list.js';
import { MemoryReplayStore } from './dpop/replay.js';
import { ProofVerifier } from './dpop/proof.js';
import { NonceSource } from './dpop/nonce.js';
import { IntrospectionClient, readClientSecret } from './introspection/client.js';
import { AssertionSigner } from './assertion/signer.js';

type LifecycleServices = Pick<SharedServices, 'revocations' | 'replay' | 'dpop' | 'introspection' | 'assertions'>;

export interface Lifecycle {
  readonly services: LifecycleServices;
  /** The list and the local replay store behind `services`, for the shared-state bridge (src/state/). */
  readonly revocationList: RevocationList;
  readonly localReplay: MemoryReplayStore;
  /**
   * The assertion key and the DPoP nonce secret in use (read from their files, or
   * generated at start): front-end threads are given them (src/threads/), so what one
   * thread signs or issues holds on every thread.
   */
  readonly keys: LifecycleKeys;
  /** Stops the revocation sweep and aborts the introspection requests under way. */
  close(): void;
}

export interface LifecycleKeys {
  readonly assertionKey?: KeyObject;
  readonly nonceSecret?: Uint8Array;
}

export interface LifecycleOptions {
  readonly runtime: Runtime;
  /** Keys another thread of this process uses (src/threads/worker.ts): taken instead of reading or generating them. */
  readonly keys?: LifecycleKeys;
  readonly log: (level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown>) => void;
  /** The environment the client secrets are read from (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
}

/** How often expired revocation entries are dropped besides the drops `add` and `list` do. */
const SWEEP_MS = 60_000;

export function buildLifecycle(state: GatewayState, o: LifecycleOptions): Lifecycle {
  const now = o.runtime.now;
  const revocations = new RevocationList({ now, maxTokenLifetimeMs: state.revocation.maxTokenLifetimeMs, max: state.revocation.max });
  const sweep = setInterval(() => revocations.sweep(), SWEEP_MS);
  sweep.unref();

  const introspection = new Map<string, IntrospectionClient>();
  const clients: IntrospectionClient[] = [];
  try {
    for (const [i, issuer] of state.issuers.entries()) {
      const cfg = issuer.introspection;
      if (cfg === null) continue;
      let clientSecret: string;
      try {
        clientSecret = readClientSecret('file' in cfg.secret ? { file: cfg.secret.file } : { env: cfg.secret.env }, o.env ?? process.env);
      } catch (err) {
        throw new GatewayError('INTROSPECTION_SECRET', `issuers[${i}].introspection: ${(err as Error).message}`);
      }
      const client = new IntrospectionClient({
        issuer: { name: issuer.name, issuer: issuer.issuer, claims: issuer.claims },
        ...(cfg.endpoint !== null ? { endpoint: cfg.endpoint } : {}),
        ...(issuer.keys.kind === 'discovery' ? { discoveryUrl: issuer.keys.url } : {}),
        clientId: cfg.clientId,
        clientSecret,
        timeoutMs: cfg.timeoutMs,
        cacheTtlMs: cfg.cacheTtlMs,
        negativeTtlMs: state.verifier.negativeTtlMs,
        maxConcurrent: cfg.maxConcurrent,
        cacheMax: state.verifier.cacheMax,
        // RFC 7662 §2.2 `aud`: a token for another resource server is no token for this gateway.
        audience: issuer.audience,
        clockToleranceSec: issuer.clockToleranceSec,
        now,
        fetch: o.runtime.fetch,
        log: (level, msg, fields) => o.log(level, msg, fields ?? {}),
      });
      clients.push(client);
      introspection.set(issuer.name, client);
    }

    const proofs = new ProofVerifier();
    const nonces = state.issuers.some((i) => i.dpopNonce)
      ? new NonceSource({
          now,
          ...(o.keys?.nonceSecret !== undefined
            ? { secret: o.keys.nonceSecret }
            : state.dpop.nonceSecretFile !== null
              ? { secret: readSecretFile(state.dpop.nonceSecretFile, 'dpop.nonceSecretFile') }
              : {}),
        })
      : null;
    const a = state.identityAssertion;
    let assertions: AssertionSigner | null = null;
    if (a !== null) {
      try {
        const given = o.keys?.assertionKey;
        assertions = new AssertionSigner({ issuer: a.issuer, lifetimeSec: a.lifetimeSec, now, ...(given !== undefined ? { key: given } : a.keyFile !== null ? { keyFile: a.keyFile } : {}) });
      } catch (err) {
        throw new GatewayError('ASSERTION_KEY', `identityAssertion.keyFile: ${(err as Error).message}`);
      }
    }
    const localReplay = new MemoryReplayStore({ now, max: state.dpop.replayMax });
    return {
      revocationList: revocations,
      localReplay,
      keys: {
        ...(assertions !== null ? { assertionKey: assertions.signingKey } : {}),
        ...(nonces !== null ? { nonceSecret: nonces.sharedSecret } : {}),
      },
      services: {
        revocations,
        replay: localReplay,
        dpop: { verify: (input) => proofs.verify(input), nonces },
        introspection,
        assertions,
      },
      close() {
        clearInterval(sweep);
        for (const c of clients) c.close();
      },
    };
  } catch (err) {
    clearInterval(sweep);
    for (const c of clients) c.close();
    throw err;
  }
}

/** A secret of at least 32 bytes from a file; the error names the file, never its content. */
function readSecretFile(file: string, key: string): Uint8Array {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new GatewayError('SECRET_UNREADABLE', `${key}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (bytes.length < 32) throw new GatewayError('SECRET_TOO_SHORT', `${key}: ${file} holds fewer than 32 bytes`);
  return bytes;
}
