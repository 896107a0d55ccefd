/**
 * Checks a config needs beyond its schema: references between sections, duplicates,
 * files, header names. They read the raw data defensively, so they run even when the
 * schema failed and one `check` run lists everything that is wrong. Also the warnings:
 * settings that are valid but will not do what they seem to.
 */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { isIP } from 'node:net';
import { identityHeadersSchema } from './schema.js';
import { observeCrossChecks } from './observe-schema.js';
import { lifecycleCrossChecks } from './lifecycle-schema.js';
import { stateCrossChecks } from './state-schema.js';
import type { ConfigProblem } from './problems.js';
import { GATEWAY_OWNED, HOP_BY_HOP, KEEPABLE } from '../proxy/headers.js';
import { isLoopbackHost, readTokenFile } from '../admin/token.js';

type Loose = Record<string, unknown>;
const obj = (v: unknown): Loose => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Loose) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * Checks that need more than one key: references between sections, duplicates and
 * files. They read the raw data defensively, so they run even when the schema failed.
 */
export function crossChecks(data: unknown, baseDir: string): ConfigProblem[] {
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
  problems.push(...adminTokenChecks(admin, baseDir));
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
    // Names that are no header name at all are the schema's to report.
    if (typeof n === 'string' && TOKEN.test(n) && !KEEPABLE.has(n.toLowerCase())) {
      problems.push({
        path: `headers.keep[${i}]`,
        message: `${n} cannot be kept; only these can: ${[...KEEPABLE].join(', ')} (hop-by-hop, identity and gateway-set headers never pass)`,
      });
    }
  });
  problems.push(...identityHeaderChecks(obj(root['identityHeaders'])));
  problems.push(...observeCrossChecks(data));
  problems.push(...lifecycleCrossChecks(data, checkFile, (name) => assertionHeaderProblem(name, obj(root['identityHeaders']))));
  problems.push(...stateCrossChecks(data, checkFile));
  return problems;
}

/**
 * The admin token rule (README "Admin listener"): an admin listener other machines can
 * reach needs `admin.tokenFile`, since its POST /reload changes what the gateway lets
 * through; a configured token file must hold a usable secret.
 */
function adminTokenChecks(admin: Loose, baseDir: string): ConfigProblem[] {
  const host = str(admin['host']) ?? '127.0.0.1';
  const file = str(admin['tokenFile']);
  if (file === undefined || file === '') {
    if (admin['tokenFile'] === undefined && !isLoopbackHost(host)) {
      return [{ path: 'admin.tokenFile', message: `is required when admin.host (${host}) is not a loopback address: state-changing admin endpoints (POST /reload) need a bearer secret` }];
    }
    return []; // a tokenFile of the wrong type is the schema's to report
  }
  const read = readTokenFile(resolve(baseDir, file));
  return 'problem' in read ? [{ path: 'admin.tokenFile', message: read.problem }] : [];
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

/** Why the identity assertion cannot travel in header `name` (lower case), or null when it can. */
function assertionHeaderProblem(name: string, identityHeaders: Record<string, unknown>): string | null {
  if (RESERVED_NAMES.has(name)) return `${name} is a header the gateway or HTTP itself controls; choose another name`;
  for (const [key, fallback] of Object.entries(IDENTITY_DEFAULTS)) {
    const identity = str(identityHeaders[key]) ?? fallback;
    if (identity.toLowerCase() === name) return `same header name as identityHeaders.${key}`;
  }
  return null;
}

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
    if (!TOKEN.test(name)) problems.push({ path: at, message: "must be a header name: an RFC 9110 §5.1 token (letters, digits and ! # $ % & ' * + - . ^ ` | ~)" });
    else if (name.includes('_')) {
      const example = name.replaceAll('_', '-').split('-').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('-');
      problems.push({ path: at, message: `must not contain "_" (CGI, PHP and Django read ${name} and ${example} as the same variable)` });
    }
    if (TOKEN.test(name) && RESERVED_NAMES.has(name.toLowerCase())) {
      problems.push({ path: at, message: `${name} is a header the gateway or HTTP itself controls; choose another name (e.g. x-auth-${key.toLowerCase()})` });
    }
    const lower = name.toLowerCase();
    const first = byName.get(lower);
    if (first !== undefined) problems.push({ path: at, message: `same header name as identityHeaders.${first}` });
    else byName.set(lower, key);
  }
  return problems;
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

export function warningsFor(data: unknown): ConfigProblem[] {
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

