/**
 * Compiles a validated config into the gateway state (src/config/state.ts): durations
 * as numbers, claim paths split, routes sorted and indexed, header sets, trusted
 * proxies, every challenge and fixed refusal built, every default already filled in by
 * the schema (defaults live only there). The result is deeply frozen: the pipeline only
 * reads it, and a reload replaces it whole.
 */
import { resolve } from 'node:path';
import type { RawConfig, RawIssuer, RawRoute } from './schema.js';
import { parseDuration } from './duration.js';
import type { CompiledAnswers, CompiledConfig, CompiledIssuer, CompiledRoute, CompiledUpstream, GatewayState, KeySource, MfaPolicy } from './state.js';
import type { CompiledIssuerLifecycle } from './lifecycle-schema.js';
import { REASONS, type DpopReason, type TokenFailureReason } from '../reasons.js';
import { answer } from '../pipeline/answer.js';
import { bearerChallenge } from '../authz/challenge.js';
import { INVALID_REQUEST_DESCRIPTIONS } from '../authn/extract.js';
import { HeaderRewriter } from '../proxy/headers.js';
import { buildRouteTable } from '../routes/table.js';
import { buildBlockList } from '../server/clientip.js';
import { frontThreads } from '../threads/count.js';
import type { ConfigProblem } from './problems.js';
import { PROFILES } from '../authz/profiles.js';
import { parseClaimPath } from '../authz/claims.js';
import { compileObserve } from './observe-schema.js';
import { compileState } from './state-schema.js';
import { compileIssuerLifecycle, compileLifecycle, introspectionIssuerOf } from './lifecycle-schema.js';
import { dpopChallenge } from '../dpop/challenge.js';

export function compileParsed(raw: RawConfig, baseDir: string, warnings: readonly ConfigProblem[]): GatewayState {
  const settings = compileSettings(raw, baseDir, warnings);
  const realm = settings.server.realm;
  return deepFreeze({
    ...settings,
    routeTable: frozen(buildRouteTable(settings.routes)),
    issuerByName: new Map(settings.issuers.map((i) => [i.name, i])),
    issuerByIss: new Map(settings.issuers.map((i) => [i.issuer, i])),
    // The assertion header is the gateway's own: a client-sent copy never passes (README "Identity assertions").
    rewriter: frozen(new HeaderRewriter(settings.identityHeaders, { ...settings.headers, remove: [...settings.headers.remove, settings.assertionHeader] })),
    trusted: settings.server.trustedProxies.length > 0 ? frozen(buildBlockList(settings.server.trustedProxies)) : null,
    answers: compileAnswers(realm, settings.dpop.algorithms),
    body: {
      maxBytes: settings.server.maxBodyBytes,
      bufferBytes: settings.server.requestBuffering,
      idleMs: settings.server.requestBodyIdleMs,
    },
    proto: settings.listen.tls ? 'https' : 'http',
  } satisfies GatewayState);
}

/**
 * The refusals that depend only on the realm: RFC 6750 §3 challenges are built once, so
 * answering a replayed bad token costs no formatting.
 */
function compileAnswers(realm: string, dpopAlgorithms: readonly string[]): CompiledAnswers {
  const tokenFailure = {} as Record<TokenFailureReason, ReturnType<typeof answer>>;
  const dpop = {} as Record<DpopReason, ReturnType<typeof answer>>;
  for (const [reason, info] of Object.entries(REASONS)) {
    if (info.stage === 'dpop') {
      // RFC 9449 §7.1: the DPoP scheme's challenge names the proof algorithms accepted.
      dpop[reason as DpopReason] = answer(reason as DpopReason, { challenge: dpopChallenge({ algs: dpopAlgorithms, error: info.error!, description: info.description }) });
    }
    if (info.stage !== 'token') continue;
    tokenFailure[reason as TokenFailureReason] = answer(reason as TokenFailureReason, {
      challenge: bearerChallenge({ realm, error: 'invalid_token', description: info.description }),
    });
  }
  return {
    // RFC 6750 §3.1: a request with no credentials gets a challenge without an error code.
    credentialsMissing: answer('credentials_missing', { challenge: bearerChallenge({ realm }) }),
    invalidRequest: new Map(
      INVALID_REQUEST_DESCRIPTIONS.map((description) => [
        description,
        answer('invalid_request', { description, challenge: bearerChallenge({ realm, error: 'invalid_request', description }) }),
      ]),
    ),
    tokenFailure,
    dpop,
  };
}

function compileSettings(raw: RawConfig, baseDir: string, warnings: readonly ConfigProblem[]): CompiledConfig {
  const ms = (s: string) => parseDuration(s)!;
  const file = (p: string) => resolve(baseDir, p);
  const issuers = raw.issuers.map((iss) => ({ ...compileIssuer(iss, file, ms), ...compileIssuerLifecycle(iss, baseDir) }));
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
    const route = compileRoute(r, r.name ?? r.path, prefix, mfa, ms, raw.server.pathParameters);
    return { ...route, introspection: route.policy.auth === 'none' ? null : introspectionIssuerOf(route.policy.issuers, issuers) };
  });
  routes.sort((a, b) => b.prefix.length - a.prefix.length);
  const cache = raw.verifier.cache;
  return {
    listen: {
      host: raw.listen.host,
      port: raw.listen.port,
      tls: raw.listen.tls ? { ...raw.listen.tls, cert: file(raw.listen.tls.cert), key: file(raw.listen.tls.key) } : null,
    },
    admin: { host: raw.admin.host, port: raw.admin.port, tokenFile: raw.admin.tokenFile !== undefined ? file(raw.admin.tokenFile) : null },
    server: {
      realm: raw.server.realm,
      drainTimeoutMs: ms(raw.server.drainTimeout),
      pidFile: raw.server.pidFile !== undefined ? file(raw.server.pidFile) : null,
      maxBodyBytes: raw.server.maxBodyBytes,
      trustedProxies: raw.server.trustedProxies,
      requestBuffering: raw.server.requestBuffering,
      requestBodyIdleMs: ms(raw.server.timeouts.requestBodyIdle),
      pathParameters: raw.server.pathParameters,
      publicOrigin: raw.server.publicOrigin === undefined ? null : raw.server.publicOrigin.replace(/\/$/, ''),
      threads: frontThreads(raw.server.threads),
    },
    verifier: {
      threads: raw.verifier.threads,
      concurrency: raw.verifier.concurrency,
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
    ...compileLifecycle(raw, baseDir),
    ...compileState(raw, baseDir),
    log: { level: raw.log.level },
    baseDir,
    warnings,
  };
}

function compileIssuer(iss: RawIssuer, file: (p: string) => string, ms: (s: string) => number): Omit<CompiledIssuer, keyof CompiledIssuerLifecycle> {
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

function compileRoute(r: RawRoute, name: string, prefix: string, mfa: MfaPolicy, ms: (s: string) => number, pathParameters: RawRoute['pathParameters']): Omit<CompiledRoute, 'introspection'> {
  const methods = r.methods ? new Set<string>(r.methods) : null;
  // RFC 9110 §9.3.2: HEAD is allowed wherever GET is.
  if (methods?.has('GET')) methods.add('HEAD');
  const allow = methods ? [...methods].join(', ') : '';
  return {
    name,
    path: r.path,
    prefix,
    methods,
    allow,
    methodNotAllowed: methods ? answer('method_not_allowed', { allowMethods: allow }) : null,
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

/**
 * Freezes one object of a class (a table with a memo of its own, a BlockList) without
 * walking into it; its methods keep working on what it holds.
 */
function frozen<T extends object>(table: T): T {
  Object.freeze(table);
  return table;
}

/**
 * Freezes everything reachable from `value`: objects, arrays, Maps and Sets (their
 * entries stay read-only by type; freezing them stops properties being added), walking
 * into objects that were frozen already (a section compiled elsewhere) too.
 */
function deepFreeze<T>(value: T, seen = new WeakSet<object>()): T {
  if (value === null || typeof value !== 'object' || seen.has(value)) return value;
  seen.add(value);
  Object.freeze(value);
  if (value instanceof Map) for (const [k, v] of value) (deepFreeze(k, seen), deepFreeze(v, seen));
  else if (value instanceof Set) for (const v of value) deepFreeze(v, seen);
  else for (const v of Object.values(value)) deepFreeze(v, seen);
  return value;
}
