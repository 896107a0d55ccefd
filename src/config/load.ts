import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isIP } from 'node:net';
import YAML from 'yaml';
import type { z } from 'zod';
import { configSchema, identityHeadersSchema, type RawConfig, type RawIssuer, type RawRoute } from './schema.js';
import { parseDuration } from './duration.js';
import type { CompiledConfig, CompiledIssuer, CompiledRoute, CompiledUpstream, KeySource, MfaPolicy } from './types.js';
import { PROFILES } from '../authz/profiles.js';
import { parseClaimPath } from '../authz/claims.js';
import { compileObserve, observeCrossChecks } from './observe-schema.js';
import { GATEWAY_OWNED, HOP_BY_HOP, KEEPABLE } from '../proxy/headers.js';

/** One problem with a config file, as `path.to.key: what is wrong` (DESIGN.md, `check`). */
export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
}

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(readonly problems: readonly ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
  }
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.path || '(root)'}: ${p.message}`;
}

function pathText(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let cur = data;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[seg];
  }
  return cur;
}

function zodProblems(error: z.ZodError, data: unknown): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: pathText([...issue.path, key]), message: 'unknown key' });
    } else if (issue.code === 'invalid_type') {
      const missing = valueAt(data, issue.path) === undefined;
      out.push({ path: pathText(issue.path), message: missing ? `is required (${issue.expected})` : `must be a ${issue.expected}` });
    } else {
      out.push({ path: pathText(issue.path), message: issue.message });
    }
  }
  return out;
}

/** Reads and parses a YAML or JSON file (JSON is YAML 1.2, but a `.json` file is parsed strictly). */
export function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '(file)', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }]);
  }
  try {
    if (file.endsWith('.json')) return JSON.parse(text);
    const doc = YAML.parseDocument(text, { uniqueKeys: true, prettyErrors: false });
    if (doc.errors.length > 0) {
      throw new ConfigError(doc.errors.map((e) => ({ path: '(file)', message: `YAML: ${e.message.split('\n')[0]}` })));
    }
    return doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError([{ path: '(file)', message: `cannot parse ${file}: ${(err as Error).message.split('\n')[0]}` }]);
  }
}

/** Loads, validates and compiles a config file. Throws ConfigError listing every problem. */
export function loadConfig(file: string): CompiledConfig {
  const abs = resolve(file);
  return compileConfig(readConfigFile(abs), dirname(abs));
}

/** Validates raw config data and compiles it into the frozen runtime table. */
export function compileConfig(data: unknown, baseDir: string): CompiledConfig {
  const parsed = configSchema.safeParse(data ?? {});
  // Schema problems and cross-reference problems are listed together, so one
  // `check` run shows everything that is wrong (DESIGN.md, `check`).
  const problems = [...(parsed.success ? [] : zodProblems(parsed.error, data)), ...crossChecks(data, baseDir)];
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  return compileParsed(parsed.data, baseDir, warningsFor(data));
}

/**
 * uWebSockets.js 20.30 buffers at most 4 KiB of a request head that arrives in more than
 * one read, and drops the connection beyond that without an answer. On a real network
 * (1,500-byte MTU) any head larger than one segment arrives in pieces, so a token much
 * over 3.5 KiB cannot arrive whole, whatever maxTokenBytes allows.
 */
export const FRAGMENTED_HEAD_LIMIT = 4096;
/** Room the rest of a typical head needs (request line, Host, User-Agent, Accept, "Authorization: Bearer "). */
const HEAD_OVERHEAD = 512;

function warningsFor(data: unknown): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const set = obj(obj(data)['verifier'])['maxTokenBytes'];
  if (typeof set === 'number' && set > FRAGMENTED_HEAD_LIMIT - HEAD_OVERHEAD) {
    out.push({
      path: 'verifier.maxTokenBytes',
      message:
        `${set} is more than the front end can take when a request head arrives in several TCP segments ` +
        `(uWebSockets.js buffers ${FRAGMENTED_HEAD_LIMIT} bytes of a fragmented head): over a real network, tokens longer ` +
        `than about ${FRAGMENTED_HEAD_LIMIT - HEAD_OVERHEAD} bytes are dropped without an answer (README, known limitations)`,
    });
  }
  return out;
}

type Loose = Record<string, unknown>;
const obj = (v: unknown): Loose => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Loose) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * Checks that need more than one key: references between sections, duplicates and
 * files. They read the raw data defensively, so they run even when the schema failed.
 */
function crossChecks(data: unknown, baseDir: string): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const root = obj(data);
  const checkFile = (path: string, p: unknown) => {
    if (typeof p !== 'string' || p === '') return;
    const f = resolve(baseDir, p);
    if (!existsSync(f)) problems.push({ path, message: `file not found: ${f}` });
    else if (!statSync(f).isFile()) problems.push({ path, message: `not a file: ${f}` });
  };

  const listen = obj(root['listen']);
  const admin = obj(root['admin']);
  const tls = obj(listen['tls']);
  checkFile('listen.tls.cert', tls['cert']);
  checkFile('listen.tls.key', tls['key']);
  const lp = listen['port'] ?? 8080;
  if (lp !== 0 && lp === (admin['port'] ?? 9901) && (listen['host'] ?? '0.0.0.0') === (admin['host'] ?? '127.0.0.1')) {
    problems.push({ path: 'admin.port', message: 'must differ from listen.port (the admin listener is never proxied)' });
  }
  arr(obj(root['server'])['trustedProxies']).forEach((p, i) => {
    const [addr, bits, extra] = String(p).split('/');
    const fam = isIP(addr ?? '');
    const max = fam === 6 ? 128 : 32;
    if (!fam || extra !== undefined || (bits !== undefined && !(/^\d+$/.test(bits) && Number(bits) <= max))) {
      problems.push({ path: `server.trustedProxies[${i}]`, message: 'must be an IP address or CIDR block' });
    }
  });

  const issuers = arr(root['issuers']).map(obj);
  const issuerNames = new Set<string>();
  issuers.forEach((iss, i) => {
    const at = `issuers[${i}]`;
    const name = str(iss['name']);
    if (name !== undefined) {
      if (issuerNames.has(name)) problems.push({ path: `${at}.name`, message: `duplicate issuer name ${name}` });
      issuerNames.add(name);
    }
    const issuer = str(iss['issuer']);
    if (issuer !== undefined && issuers.findIndex((o) => o['issuer'] === issuer) !== i) {
      problems.push({ path: `${at}.issuer`, message: `issuer ${issuer} is configured twice` });
    }
    const sources = [iss['discovery'] === true, iss['jwksUri'] !== undefined, iss['jwksFile'] !== undefined].filter(Boolean).length;
    if (sources !== 1) problems.push({ path: at, message: 'needs exactly one of discovery: true, jwksUri, jwksFile' });
    if (iss['discovery'] === true && issuer !== undefined && !/^https?:\/\//.test(issuer)) {
      problems.push({ path: `${at}.issuer`, message: 'discovery needs an http(s) issuer URL' });
    }
    checkFile(`${at}.jwksFile`, iss['jwksFile']);
  });

  const upstreams = obj(root['upstreams']);
  for (const [name, u] of Object.entries(upstreams)) {
    const url = str(obj(u)['url']);
    if (url && /^https?:\/\//.test(url)) {
      try {
        const parsedUrl = new URL(url);
        if (parsedUrl.search || parsedUrl.hash) problems.push({ path: `upstreams.${name}.url`, message: 'must not have a query or fragment' });
      } catch {
        /* the schema reports it */
      }
    }
  }

  const seenPaths = new Map<string, number>();
  const seenNames = new Set<string>();
  arr(root['routes']).map(obj).forEach((r, i) => {
    const at = `routes[${i}]`;
    const path = str(r['path']);
    if (path !== undefined) {
      const prefix = path.endsWith('/') ? path.slice(0, -1) : path;
      const prev = seenPaths.get(prefix);
      if (prev !== undefined) problems.push({ path: `${at}.path`, message: `duplicate route path (same as routes[${prev}])` });
      else seenPaths.set(prefix, i);
    }
    const name = str(r['name']);
    if (name !== undefined) {
      if (seenNames.has(name)) problems.push({ path: `${at}.name`, message: `duplicate route name ${name}` });
      seenNames.add(name);
    }
    const up = str(r['upstream']);
    if (up !== undefined && !Object.prototype.hasOwnProperty.call(upstreams, up)) {
      problems.push({ path: `${at}.upstream`, message: `unknown upstream ${up}; one of ${Object.keys(upstreams).join(', ') || '(none)'}` });
    }
    arr(r['issuers']).forEach((n, j) => {
      if (typeof n === 'string' && !issuerNames.has(n)) problems.push({ path: `${at}.issuers[${j}]`, message: `unknown issuer ${n}` });
    });
    const auth = r['auth'] ?? 'mfa';
    if (auth !== 'none' && issuers.length === 0) {
      problems.push({ path: `${at}.auth`, message: `auth: ${String(auth)} needs at least one entry in issuers` });
    }
    if (auth !== 'mfa' && (r['mfa'] !== undefined || r['acr'] !== undefined)) {
      problems.push({ path: `${at}.auth`, message: 'mfa / acr requirements need auth: mfa' });
    }
    if (auth === 'none' && (r['roles'] || r['scopes'] || r['groups'] || r['issuers'])) {
      problems.push({ path: `${at}.auth`, message: 'roles / scopes / groups / issuers need auth: token or mfa' });
    }
  });
  const headers = obj(root['headers']);
  arr(headers['keep']).forEach((n, i) => {
    if (typeof n === 'string' && !KEEPABLE.has(n.toLowerCase())) {
      problems.push({
        path: `headers.keep[${i}]`,
        message: `${n} cannot be kept; only these can: ${[...KEEPABLE].join(', ')} (hop-by-hop, identity and gateway-set headers never pass)`,
      });
    }
  });
  problems.push(...identityHeaderChecks(obj(root['identityHeaders'])));
  problems.push(...observeCrossChecks(data));
  return problems;
}

/**
 * Names an identity header must not take: hop-by-hop headers (RFC 9110 §7.6.1), the
 * headers the gateway sets itself, and the framing and credential headers of the request.
 */
const RESERVED_NAMES: ReadonlySet<string> = new Set([
  ...HOP_BY_HOP,
  ...GATEWAY_OWNED.gatewaySet,
  'authorization',
  'content-length',
  'content-type',
  'cookie',
]);

/** RFC 9110 §5.1: field-name = token; token = 1*tchar. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const IDENTITY_DEFAULTS: Readonly<Record<string, string>> = identityHeadersSchema.parse({});

/**
 * Identity header names an upstream reads unambiguously: RFC 9110 §5.1 tokens, no
 * `_` (CGI-style stacks map both `_` and `-` to `_`, RFC 3875 §4.1.18, so `x_auth_user`
 * would alias a client-sent `X-Auth-User` that the gateway does not strip), and no
 * two keys sharing a name (compared case-insensitively, as header names are).
 */
function identityHeaderChecks(raw: Record<string, unknown>): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const byName = new Map<string, string>();
  for (const [key, fallback] of Object.entries(IDENTITY_DEFAULTS)) {
    const at = `identityHeaders.${key}`;
    const name = raw[key] === undefined ? fallback : str(raw[key]);
    if (name === undefined || name === '') continue; // the schema reports it
    if (name.includes('_')) {
      const example = name.replaceAll('_', '-').split('-').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('-');
      problems.push({ path: at, message: `must not contain "_" (CGI, PHP and Django read ${name} and ${example} as the same variable)` });
    }
    if (!TOKEN.test(name)) problems.push({ path: at, message: "must be a header name: an RFC 9110 §5.1 token (letters, digits and ! # $ % & ' * + - . ^ ` | ~)" });
    else if (RESERVED_NAMES.has(name.toLowerCase())) {
      problems.push({ path: at, message: `${name} is a header the gateway or HTTP itself controls; choose another name (e.g. x-auth-${key.toLowerCase()})` });
    }
    const lower = name.toLowerCase();
    const first = byName.get(lower);
    if (first !== undefined) problems.push({ path: at, message: `same header name as identityHeaders.${first}` });
    else byName.set(lower, key);
  }
  return problems;
}

function compileParsed(raw: RawConfig, baseDir: string, warnings: readonly ConfigProblem[]): CompiledConfig {
  const ms = (s: string) => parseDuration(s)!;
  const file = (p: string) => resolve(baseDir, p);
  const issuers = raw.issuers.map((iss) => compileIssuer(iss, file, ms));
  const upstreams = new Map<string, CompiledUpstream>();
  for (const [name, u] of Object.entries(raw.upstreams)) {
    const url = new URL(u.url);
    upstreams.set(name, {
      name,
      origin: url.origin,
      basePath: url.pathname.replace(/\/+$/, ''),
      connections: u.connections,
      maxQueue: u.maxQueue,
      connectTimeoutMs: ms(u.timeouts.connect),
      headersTimeoutMs: ms(u.timeouts.headers),
      bodyTimeoutMs: ms(u.timeouts.body),
    });
  }
  const mfa: MfaPolicy = { amr: raw.mfa.amr, acr: raw.mfa.acr, maxAgeSec: Math.floor(ms(raw.mfa.maxAge) / 1000) };
  const routes = raw.routes.map((r) => {
    const prefix = r.path.endsWith('/') ? r.path.slice(0, -1) : r.path;
    return compileRoute(r, r.name ?? r.path, prefix, mfa, ms, raw.server.pathParameters);
  });
  routes.sort((a, b) => b.prefix.length - a.prefix.length);
  const cache = raw.verifier.cache;
  return deepFreeze({
    listen: {
      host: raw.listen.host,
      port: raw.listen.port,
      tls: raw.listen.tls ? { ...raw.listen.tls, cert: file(raw.listen.tls.cert), key: file(raw.listen.tls.key) } : null,
    },
    admin: { host: raw.admin.host, port: raw.admin.port },
    server: {
      realm: raw.server.realm,
      drainTimeoutMs: ms(raw.server.drainTimeout),
      maxBodyBytes: raw.server.maxBodyBytes,
      trustedProxies: raw.server.trustedProxies,
      requestBuffering: raw.server.requestBuffering,
      requestBodyIdleMs: ms(raw.server.timeouts.requestBodyIdle),
      pathParameters: raw.server.pathParameters,
    },
    verifier: {
      threads: raw.verifier.threads,
      maxQueue: raw.verifier.maxQueue,
      maxTokenBytes: raw.verifier.maxTokenBytes,
      cacheMax: cache.max,
      cacheMaxTtlMs: ms(cache.maxTtl),
      negativeTtlMs: ms(cache.negativeTtl),
      negativeMax: cache.negativeMax,
      jwksCooldownMs: ms(raw.verifier.jwksCooldown),
      jwksTimeoutMs: ms(raw.verifier.jwksTimeout),
      taskTimeoutMs: ms(raw.verifier.taskTimeout),
    },
    issuers,
    upstreams,
    mfa,
    routes,
    identityHeaders: Object.fromEntries(
      Object.entries(raw.identityHeaders).map(([k, v]) => [k, v.toLowerCase()]),
    ) as unknown as CompiledConfig['identityHeaders'],
    headers: {
      remove: raw.headers.remove.map((n) => n.toLowerCase()),
      keep: raw.headers.keep.map((n) => n.toLowerCase()),
      forwarded: raw.server.forwardedHeader,
    },
    ...compileObserve(raw, baseDir),
    baseDir,
    warnings,
  });
}

function compileIssuer(iss: RawIssuer, file: (p: string) => string, ms: (s: string) => number): CompiledIssuer {
  const profile = PROFILES[iss.profile];
  const keys: KeySource = iss.jwksFile
    ? { kind: 'jwksFile', path: file(iss.jwksFile) }
    : iss.jwksUri
      ? { kind: 'jwksUri', url: iss.jwksUri }
      : // OIDC Discovery 1.0 §4: the issuer's path is kept, `/.well-known/openid-configuration` appended.
        { kind: 'discovery', url: `${iss.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration` };
  // `\.` escapes a literal dot, so namespaced claims (Auth0: `https://example\.com/roles`) stay addressable.
  const split = parseClaimPath;
  const typ = iss.typ ? iss.typ.toLowerCase().replace(/^application\//, '') : null;
  return {
    name: iss.name,
    issuer: iss.issuer,
    profile: iss.profile,
    keys,
    audience: iss.audience,
    algorithms: iss.algorithms,
    clockToleranceSec: Math.floor(ms(iss.clockTolerance) / 1000),
    typ,
    claims: {
      subject: split(iss.claims.subject ?? profile.claims.subject),
      roles: split(iss.claims.roles ?? profile.claims.roles),
      scopes: split(iss.claims.scopes ?? profile.claims.scopes),
      groups: split(iss.claims.groups ?? profile.claims.groups),
    },
    mfaEvidence: { amr: iss.mfa?.amr ?? profile.mfa.amr, acr: iss.mfa?.acr ?? profile.mfa.acr },
  };
}

function compileRoute(r: RawRoute, name: string, prefix: string, mfa: MfaPolicy, ms: (s: string) => number, pathParameters: RawRoute['pathParameters']): CompiledRoute {
  const methods = r.methods ? new Set<string>(r.methods) : null;
  // RFC 9110 §9.3.2: HEAD is allowed wherever GET is.
  if (methods?.has('GET')) methods.add('HEAD');
  return {
    name,
    path: r.path,
    prefix,
    methods,
    allow: methods ? [...methods].join(', ') : '',
    upstream: r.upstream,
    stripPrefix: r.stripPrefix,
    forwardAuthorization: r.forwardAuthorization,
    allowPathParameters: (r.pathParameters ?? pathParameters) === 'allow',
    policy: {
      auth: r.auth,
      issuers: r.issuers ? new Set(r.issuers) : null,
      roles: r.roles ?? [],
      scopes: r.scopes ?? [],
      groups: r.groups ?? [],
      mfa: {
        amr: r.mfa?.amr ?? mfa.amr,
        acr: r.mfa?.acr ?? mfa.acr,
        maxAgeSec: r.mfa?.maxAge !== undefined ? Math.floor(ms(r.mfa.maxAge) / 1000) : mfa.maxAgeSec,
      },
      requiredAcr: r.acr ?? [],
    },
  };
}

/** Freezes plain objects and arrays recursively (Maps and Sets are left as they are: read-only by type). */
function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    if (value instanceof Map) for (const v of value.values()) deepFreeze(v);
    else if (!(value instanceof Set)) for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
