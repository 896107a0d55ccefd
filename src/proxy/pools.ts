import { Pool } from 'undici';
import type { CompiledUpstream } from '../config/state.js';

/**
 * One undici Pool per upstream (keep-alive, bounded connections). undici's own queue
 * has no limit, so each upstream counts its requests in
 * flight and the gateway answers 503 rather than queue past `connections + maxQueue`.
 */
export class UpstreamPool {
  readonly pool: Pool;
  inFlight = 0;
  private readonly limit: number;

  constructor(readonly upstream: CompiledUpstream) {
    this.limit = upstream.connections + upstream.maxQueue;
    this.pool = new Pool(upstream.origin, {
      connections: upstream.connections,
      pipelining: 1,
      connect: { timeout: upstream.connectTimeoutMs },
      headersTimeout: upstream.headersTimeoutMs,
      bodyTimeout: upstream.bodyTimeoutMs,
      keepAliveTimeout: 4_000,
      // undici trusts an upstream's `Keep-Alive: timeout=N` hint minus this margin (2 s by
      // default): against a server that advertises 2 s or less every request would open
      // a new connection. One second still avoids racing the server's own close.
      keepAliveTimeoutThreshold: 1_000,
      // Bodies are streamed through; the gateway never needs more than a chunk at a time.
      maxResponseSize: -1,
    });
  }

  /** Claims a slot; false when the bounded queue is full (→ 503). */
  acquire(): boolean {
    if (this.inFlight >= this.limit) return false;
    this.inFlight++;
    return true;
  }

  release(): void {
    this.inFlight--;
  }

  stats(): { connected: number; pending: number; running: number; size: number; inFlight: number } {
    const s = this.pool.stats;
    return { connected: s.connected, pending: s.pending, running: s.running, size: s.size, inFlight: this.inFlight };
  }
}

export class UpstreamPools {
  private readonly byName = new Map<string, UpstreamPool>();

  constructor(upstreams: ReadonlyMap<string, CompiledUpstream>) {
    for (const [name, u] of upstreams) this.byName.set(name, new UpstreamPool(u));
  }

  get(name: string): UpstreamPool {
    const p = this.byName.get(name);
    if (!p) throw new Error(`no pool for upstream ${name}`); // config compile guarantees this never happens
    return p;
  }

  entries(): IterableIterator<[string, UpstreamPool]> {
    return this.byName.entries();
  }

  async close(): Promise<void> {
    await Promise.all([...this.byName.values()].map((p) => p.pool.close().catch(() => p.pool.destroy())));
  }
}
