import { Pool } from 'undici';
import type { CompiledUpstream } from '../config/state.js';
import { sameSettings } from '../config/same.js';

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
  /**
   * Pools of upstreams a reload removed: still found by name, for requests that arrived
   * under the old config and have not been sent yet, until closeRetired().
   */
  private readonly removed = new Map<string, UpstreamPool>();
  /** Pools a reload replaced (their upstream's settings changed), closed by closeRetired(). */
  private replaced: UpstreamPool[] = [];

  constructor(upstreams: ReadonlyMap<string, CompiledUpstream>) {
    for (const [name, u] of upstreams) this.byName.set(name, new UpstreamPool(u));
  }

  get(name: string): UpstreamPool {
    const p = this.byName.get(name) ?? this.removed.get(name);
    if (!p) throw new Error(`no pool for upstream ${name}`); // config compile guarantees this never happens
    return p;
  }

  entries(): IterableIterator<[string, UpstreamPool]> {
    return this.byName.entries();
  }

  /**
   * Follows a new set of upstreams (a reload, src/reload.ts): a pool whose upstream's
   * settings did not change is kept with its connections; a changed upstream gets a new
   * pool at once (requests sent from now on use it); the old pools, and those of removed
   * upstreams, stay open until closeRetired(), which the front end calls when no request
   * that arrived before the reload is left.
   */
  reconfigure(upstreams: ReadonlyMap<string, CompiledUpstream>): { kept: string[]; replaced: string[]; added: string[]; removed: string[] } {
    const out = { kept: [] as string[], replaced: [] as string[], added: [] as string[], removed: [] as string[] };
    for (const [name, u] of upstreams) {
      const old = this.byName.get(name);
      if (old !== undefined && sameSettings(old.upstream, u)) {
        out.kept.push(name);
        continue;
      }
      const gone = old ?? this.removed.get(name);
      if (gone !== undefined) this.replaced.push(gone);
      this.removed.delete(name);
      this.byName.set(name, new UpstreamPool(u));
      (old === undefined ? out.added : out.replaced).push(name);
    }
    for (const [name, pool] of this.byName) {
      if (upstreams.has(name)) continue;
      this.byName.delete(name);
      this.removed.set(name, pool);
      out.removed.push(name);
    }
    return out;
  }

  /** Closes the pools reloads took out of use, each once the requests it runs are done (undici's close). */
  async closeRetired(): Promise<void> {
    const retired = [...this.replaced, ...this.removed.values()];
    this.replaced = [];
    this.removed.clear();
    await Promise.all(retired.map((p) => p.pool.close().catch(() => p.pool.destroy())));
  }

  /**
   * Closes every pool: gracefully (undici waits for the requests it runs), or, with
   * `hard`, at once, failing whatever is still running (the end of a drain that timed out).
   */
  async close(hard = false): Promise<void> {
    const all = [...this.byName.values(), ...this.replaced, ...this.removed.values()];
    await Promise.all(all.map((p) => (hard ? p.pool.destroy() : p.pool.close()).catch(() => p.pool.destroy())));
  }
}
