/**
 * A front-end thread's verifier (README "Threads"): its own token cache and
 * single flight, in front of the main thread's verifier (the Piscina pool and the key
 * sets, one per process), which it asks over the thread's MessagePort on a miss.
 */
import type { JWK } from 'jose';
import type { GatewayState } from '../config/state.js';
import { sealPrincipal } from '../authz/claims.js';
import { cacheLimits, TokenCache } from '../authn/cache.js';
import { tokenFailure } from '../authn/failures.js';
import { singleFlight } from '../authn/single-flight.js';
import type { Verifier, VerifierReconfiguration, VerifyResult } from '../authn/types.js';
import type { ToThread } from './protocol.js';

const UNAVAILABLE = tokenFailure('verifier_unavailable');

export class RemoteVerifier implements Verifier {
  private cache: TokenCache;
  private readonly pending = new Map<string, Promise<VerifyResult>>();

  constructor(
    private readonly state: () => GatewayState,
    private readonly ask: (token: string) => Promise<ToThread>,
    private readonly askKey: (issuer: string, alg: string, kid: string | undefined) => Promise<ToThread>,
    private readonly now: () => number = Date.now,
  ) {
    this.cache = this.newCache();
  }

  lookup(token: string): VerifyResult | undefined {
    return this.cache.lookup(token);
  }

  verify(token: string): Promise<VerifyResult> {
    const cached = this.cache.lookup(token);
    if (cached !== undefined) return Promise.resolve(cached);
    // Concurrent misses for one token on this thread share one question to the main thread.
    const cache = this.cache;
    return singleFlight(this.pending, token, () =>
      this.ask(token).then((m) => (m.t === 'verified' ? this.keep(cache, token, m.result) : UNAVAILABLE)),
    );
  }

  /** Logout tokens (Back-Channel Logout 1.0 §2.6) are checked against the main thread's key sets. */
  keySelector(issuer: string): ((alg: string, kid: string | undefined) => Promise<JWK | undefined>) | undefined {
    if (!this.state().issuerByName.has(issuer)) return undefined;
    return (alg, kid) => this.askKey(issuer, alg, kid).then((m) => (m.t === 'key' && m.jwk !== null ? m.jwk : undefined));
  }

  inflight(token: string): boolean {
    return this.pending.has(token);
  }

  /** A reload replaced or removed issuers (or resized the cache): what this thread cached goes. */
  clear(): void {
    this.cache = this.newCache();
    this.pending.clear();
  }

  async start(): Promise<void> {}

  readiness(): ReturnType<Verifier['readiness']> {
    return { ready: true, issuers: {}, pool: { ok: true } };
  }

  reconfigure(): Promise<VerifierReconfiguration> {
    return Promise.reject(new Error('a front-end thread follows the main thread\'s verifier'));
  }

  async close(): Promise<void> {}

  /** The main thread's answer, cached here as the main thread cached it (a cache swapped by clear() meanwhile is left alone). */
  private keep(cache: TokenCache, token: string, r: VerifyResult): VerifyResult {
    const current = cache === this.cache;
    if (!r.ok) return current ? cache.remember(token, Object.freeze(r)) : r;
    const principal = sealPrincipal(r.principal);
    if (!current) return { ok: true, principal };
    return cache.accept(token, principal, this.state().issuerByName.get(principal.issuer)?.clockToleranceSec ?? 0);
  }

  private newCache(): TokenCache {
    return new TokenCache(cacheLimits(this.state().verifier), this.now);
  }
}
