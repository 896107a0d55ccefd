/**
 * Walks the config schema for the message tests: every key path it has, and configs
 * with one value replaced, built on a valid config that has every optional section.
 */
import { tmpdir } from 'node:os';
import { ConfigError, compileConfig } from '../../../src/config/load.js';

interface Node {
  _zod: { def: { type: string; innerType?: Node; in?: Node; element?: Node; shape?: Record<string, Node>; valueType?: Node; options?: Node[] } };
}

export type Path = readonly (string | number)[];

/** Every path in the schema: objects, lists and records, and their leaves (lists at index 0, records at key "x"). */
export function schemaPaths(schema: unknown): Path[] {
  const out = new Map<string, Path>();
  const walk = (node: Node, path: Path, depth: number): void => {
    if (depth > 12) return;
    const def = node._zod.def;
    if (def.innerType) return walk(def.innerType, path, depth + 1);
    if (def.type === 'pipe' && def.in) return walk(def.in, path, depth + 1);
    out.set(JSON.stringify(path), path);
    if (def.type === 'object') for (const [k, v] of Object.entries(def.shape ?? {})) walk(v, [...path, k], depth + 1);
    if (def.type === 'array' && def.element) walk(def.element, [...path, 0], depth + 1);
    if (def.type === 'record' && def.valueType) walk(def.valueType, [...path, 'x'], depth + 1);
    if (def.type === 'union') for (const o of def.options ?? []) walk(o, path, depth + 1);
  };
  walk(schema as Node, [], 0);
  return [...out.values()];
}

/** A valid config with every optional section present, so each path lands inside real data. */
export const FULL_CONFIG = {
  listen: { host: '127.0.0.1', port: 0 },
  admin: { host: '127.0.0.1', port: 0 },
  server: { trustedProxies: ['10.0.0.0/8'], timeouts: { requestBodyIdle: '5s' } },
  verifier: { cache: { max: 10 } },
  issuers: [
    { name: 'corp', issuer: 'https://idp.example', jwksUri: 'https://idp.example/keys', audience: ['a'], claims: { roles: 'roles' }, mfa: { amr: ['mfa'] } },
  ],
  upstreams: { x: { url: 'http://127.0.0.1:1', timeouts: { connect: '1s' } } },
  mfa: { amr: ['mfa'] },
  routes: [{ path: '/', upstream: 'x', methods: ['GET'], mfa: { maxAge: '1h' }, rateLimit: { address: { points: 1, duration: '1s' } } }],
  identityHeaders: {},
  headers: { remove: ['x-a'] },
  audit: { enabled: false },
  rateLimit: { address: { points: 1, duration: '1s' }, spraying: { enabled: true } },
  log: { level: 'info' },
};

/** A deep copy of `base` with the value at `path` replaced (undefined: removed), creating what is missing. */
export function withValue(base: unknown, path: Path, value: unknown): unknown {
  const root = structuredClone(base) as Record<string | number, unknown>;
  if (path.length === 0) return value;
  let cur: Record<string | number, unknown> = root;
  for (let i = 0; i < path.length - 1; i++) {
    const seg = path[i]!;
    let next = cur[seg];
    if (next === null || typeof next !== 'object') {
      next = typeof path[i + 1] === 'number' ? [] : {};
      cur[seg] = next;
    }
    cur = next as Record<string | number, unknown>;
  }
  const last = path.at(-1)!;
  if (value === undefined) delete cur[last];
  else cur[last] = value;
  return root;
}

/** The problems of a config as `path: message` lines ([] when it compiles). */
export function problemsOf(data: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    compileConfig(data, tmpdir(), env);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`);
    throw err;
  }
}

/**
 * zod's own wording (its English locale), which must never reach a user: every config
 * message is in the project's words (src/config/problems.ts).
 */
export const ZOD_WORDING =
  /Invalid input|Invalid option|Invalid string|Invalid key|Invalid element|Invalid union|Too small|Too big|Unrecognized key|received (string|number|boolean|array|object|undefined|null)|expected (string|number|int|boolean|array|object|record|nonoptional)\b|must be a (array|object|int|record|union)\b|to (be|have) [<>]=|[<>]=\d/;

/** Every problem `compile` throws as `path: message` ([] when it compiles). */
export function problemLines(compile: () => unknown): string[] {
  try {
    compile();
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`);
    throw err;
  }
}
