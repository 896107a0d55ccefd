import { resolve } from 'node:path';
import { z } from 'zod';
import { durationSchema, parseDuration } from './duration.js';
import { describedAs } from './problems.js';

/**
 * `state:` where the state several gateway instances must agree on lives (README
 * "Running several instances"): rate-limit and spraying counts, spraying blocks, the
 * revocation list and used DPoP proofs. `memory` keeps it in this process (one instance);
 * `redis` shares it through one Redis server.
 *
 * The Redis password is never inline except as part of `url` (RFC 3986 §3.2.1 userinfo,
 * which `check --print` redacts): `passwordFile` or `passwordEnv` name where the gateway
 * reads it at start, so no log line can ever show it.
 *
 * Like observe-schema.ts, this file never imports schema.ts (which imports it).
 */

const nonEmptyString = z.string().min(1, 'must not be empty');

const envName = describedAs(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name (letters, digits and _)'), {
  form: 'an environment variable name (letters, digits and _)',
});

function isRedisUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'redis:' || u.protocol === 'rediss:') && u.hostname !== '';
  } catch {
    return false;
  }
}

const redisUrl = describedAs(z.string().refine(isRedisUrl, { message: 'must be a redis:// or rediss:// (TLS) URL with a host' }), {
  form: 'a redis:// or rediss:// URL such as redis://127.0.0.1:6379',
});

export const redisSchema = z.strictObject({
  /** `redis://[user:password@]host[:port][/db]`; `rediss://` for TLS. */
  url: redisUrl.default('redis://127.0.0.1:6379'),
  /** A file holding the password (one line); at most one of the URL's password, passwordFile, passwordEnv. */
  passwordFile: nonEmptyString.optional(),
  /** An environment variable holding the password. */
  passwordEnv: envName.optional(),
  /** Every key the gateway writes starts with it, so gateways of several deployments can share one Redis. */
  keyPrefix: z.string().regex(/^[\x21-\x7e]{0,64}$/, 'must be up to 64 visible ASCII characters').default('mfa-gateway:'),
  /** How long a connection attempt may take. */
  connectTimeout: durationSchema('100ms').default('2s'),
  /** How long one command may take before it counts as failed (and Redis as down). */
  commandTimeout: durationSchema('10ms').default('500ms'),
  /** TLS to Redis (also on with a rediss:// URL): the CA that signs the server's certificate, and a client certificate. */
  tls: z
    .strictObject({
      ca: nonEmptyString.optional(),
      cert: nonEmptyString.optional(),
      key: nonEmptyString.optional(),
      /** The name the server's certificate must carry (default: the URL's host). */
      servername: nonEmptyString.optional(),
    })
    .optional(),
});

export const stateSchema = z.strictObject({
  /** `memory`: this process only; `redis`: shared by every instance using the same Redis and keyPrefix. */
  store: z.enum(['memory', 'redis']).default('memory'),
  /** How often counts are sent to Redis and the totals read back (Kong's sync_rate). */
  syncInterval: durationSchema('10ms').default('250ms'),
  /** With Redis down, a DPoP proof is refused 503 (`closed`) or accepted on this instance's replay check alone (`open`). */
  onStoreDown: z.enum(['closed', 'open']).default('closed'),
  redis: redisSchema.prefault({}),
});

export type RawState = z.output<typeof stateSchema>;

// --- compiled form -------------------------------------------------------------------

export interface CompiledRedis {
  readonly url: string;
  /** Where the password is read at start; null: the URL's (or none). */
  readonly password: { readonly file: string } | { readonly env: string } | null;
  readonly keyPrefix: string;
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
  /** null: plain TCP (unless the URL is rediss://, then TLS with the system's CAs). */
  readonly tls: { readonly ca: string | null; readonly cert: string | null; readonly key: string | null; readonly servername: string | null } | null;
}

export interface CompiledState {
  readonly store: 'memory' | 'redis';
  readonly syncIntervalMs: number;
  readonly onStoreDown: 'closed' | 'open';
  /** null with `store: memory`. */
  readonly redis: CompiledRedis | null;
}

const ms = (s: string): number => parseDuration(s)!;

export function compileState(raw: { readonly state: RawState }, baseDir: string): { readonly state: CompiledState } {
  const s = raw.state;
  const r = s.redis;
  const file = (p: string | undefined): string | null => (p === undefined ? null : resolve(baseDir, p));
  return {
    state: {
      store: s.store,
      syncIntervalMs: ms(s.syncInterval),
      onStoreDown: s.onStoreDown,
      redis:
        s.store === 'memory'
          ? null
          : {
              url: r.url,
              password: r.passwordFile !== undefined ? { file: file(r.passwordFile)! } : r.passwordEnv !== undefined ? { env: r.passwordEnv } : null,
              keyPrefix: r.keyPrefix,
              connectTimeoutMs: ms(r.connectTimeout),
              commandTimeoutMs: ms(r.commandTimeout),
              tls: r.tls === undefined ? null : { ca: file(r.tls.ca), cert: file(r.tls.cert), key: file(r.tls.key), servername: r.tls.servername ?? null },
            },
    },
  };
}

type Loose = Record<string, unknown>;
const obj = (v: unknown): Loose => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Loose) : {});

/**
 * Checks across keys that the schema cannot express, in the `path: message` form of
 * checks.ts; `checkFile(path, value)` reports a missing file. Reads the raw data
 * defensively (it runs when the schema failed too).
 */
export function stateCrossChecks(data: unknown, checkFile: (path: string, p: unknown) => void): { path: string; message: string }[] {
  const problems: { path: string; message: string }[] = [];
  const root = obj(data);
  // The key moved when counts became shareable: say where it went rather than "unknown key".
  if (obj(root['rateLimit'])['store'] !== undefined) {
    problems.push({ path: 'rateLimit.store', message: 'is replaced by state.store (state: { store: memory | redis }); move the setting there' });
  }
  const redis = obj(obj(root['state'])['redis']);
  let inUrl = false;
  if (typeof redis['url'] === 'string' && isRedisUrl(redis['url'])) inUrl = new URL(redis['url']).password !== '';
  const sources = [inUrl, redis['passwordFile'] !== undefined, redis['passwordEnv'] !== undefined].filter(Boolean).length;
  if (sources > 1) problems.push({ path: 'state.redis', message: 'give the password one way only: in url, passwordFile or passwordEnv' });
  checkFile('state.redis.passwordFile', redis['passwordFile']);
  const tls = obj(redis['tls']);
  for (const k of ['ca', 'cert', 'key']) checkFile(`state.redis.tls.${k}`, tls[k]);
  if ((tls['cert'] === undefined) !== (tls['key'] === undefined)) problems.push({ path: 'state.redis.tls', message: 'cert and key go together (a client certificate and its private key)' });
  return problems;
}
