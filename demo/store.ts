import { LRUCache } from 'lru-cache';

/**
 * oidc-provider's storage adapter interface (sessions, interactions, codes,
 * grants, tokens), kept in memory for the demo. Unlike the library's built-in
 * quick-start adapter (which warns on every start) this one is explicit about what
 * it is: bounded by count and by each entry's own expiry, and gone when the demo
 * stops, which is what a demo wants.
 */
type Payload = Record<string, unknown> & { grantId?: string; uid?: string; userCode?: string; consumed?: number };

/** Models whose entries belong to a grant and die with it (revokeByGrantId). */
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

export interface DemoStore {
  /** The `adapter` option of oidc-provider: one adapter per model name. */
  readonly adapter: (model: string) => DemoAdapter;
  readonly size: () => number;
  /** Removes the sessions in which some client was given the session id `sid`; how many. */
  readonly destroySessionsWithSid: (sid: string) => number;
}

export interface DemoAdapter {
  upsert(id: string, payload: Payload, expiresIn?: number): Promise<void>;
  find(id: string): Promise<Payload | undefined>;
  findByUid(uid: string): Promise<Payload | undefined>;
  findByUserCode(userCode: string): Promise<Payload | undefined>;
  consume(id: string): Promise<void>;
  destroy(id: string): Promise<void>;
  revokeByGrantId(grantId: string): Promise<void>;
}

/** A store shared by every model of one provider; `max` entries at most. */
export function createDemoStore(max = 10_000): DemoStore {
  const entries = new LRUCache<string, Payload>({ max });
  // Secondary indexes point at primary keys; a stale pointer just finds nothing.
  const byUid = new LRUCache<string, string>({ max });
  const byUserCode = new LRUCache<string, string>({ max });
  const byGrant = new LRUCache<string, Set<string>>({ max });
  const epoch = () => Math.floor(Date.now() / 1000);

  const adapter = (model: string): DemoAdapter => {
    const key = (id: string) => `${model}:${id}`;
    return {
      async upsert(id, payload, expiresIn) {
        const ttl = typeof expiresIn === 'number' && expiresIn > 0 ? { ttl: expiresIn * 1000 } : {};
        entries.set(key(id), payload, ttl);
        if (model === 'Session' && typeof payload.uid === 'string') byUid.set(payload.uid, key(id), ttl);
        if (typeof payload.userCode === 'string') byUserCode.set(payload.userCode, key(id), ttl);
        if (GRANTABLE.has(model) && typeof payload.grantId === 'string') {
          const members = byGrant.get(payload.grantId) ?? new Set<string>();
          members.add(key(id));
          byGrant.set(payload.grantId, members);
        }
      },
      async find(id) {
        return entries.get(key(id));
      },
      async findByUid(uid) {
        const k = byUid.get(uid);
        return k === undefined ? undefined : entries.get(k);
      },
      async findByUserCode(userCode) {
        const k = byUserCode.get(userCode);
        return k === undefined ? undefined : entries.get(k);
      },
      async consume(id) {
        const p = entries.get(key(id));
        if (p) p.consumed = epoch();
      },
      async destroy(id) {
        entries.delete(key(id));
      },
      async revokeByGrantId(grantId) {
        for (const k of byGrant.get(grantId) ?? []) entries.delete(k);
        byGrant.delete(grantId);
      },
    };
  };
  const destroySessionsWithSid = (sid: string): number => {
    let n = 0;
    for (const [k, payload] of entries.entries()) {
      if (!k.startsWith('Session:')) continue;
      const authorizations = (payload['authorizations'] ?? {}) as Record<string, { sid?: unknown }>;
      if (!Object.values(authorizations).some((a) => a?.sid === sid)) continue;
      entries.delete(k);
      n++;
    }
    return n;
  };
  return { adapter, size: () => entries.size, destroySessionsWithSid };
}
