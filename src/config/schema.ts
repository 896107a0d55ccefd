import { z } from 'zod';
import { duration, durationSchema } from './duration.js';
import { auditSchema, rateLimitSchema, routeRateLimitSchema } from './observe-schema.js';
import { backchannelLogoutSchema, dpopSchema, identityAssertionSchema, issuerLifecycleKeys, publicOrigin, revocationSchema } from './lifecycle-schema.js';
import { describedAs } from './problems.js';
import { stateSchema } from './state-schema.js';
import { normalizePath } from '../routes/normalize.js';

/**
 * The config file's schema (README, "Put it in front of your API";
 * config/gateway.example.yaml documents every key). Every object is strict: an
 * unknown key is an error, never silently ignored, because a misspelt security key
 * (`roels:`) must not turn into "no requirement". Messages are worded in problems.ts
 * (configErrorMap); `describedAs` names the form of keys whose type alone says too little.
 */

const host = z.string().min(1, 'must not be empty');
const port = z.number().int().min(0).max(65535);
const nonEmptyString = z.string().min(1, 'must not be empty');
const stringList = z.array(nonEmptyString);
const httpUrl = describedAs(
  z.string().refine(
    (s) => {
      try {
        const u = new URL(s);
        return u.protocol === 'http:' || u.protocol === 'https:';
      } catch {
        return false;
      }
    },
    { message: 'must be an http:// or https:// URL' },
  ),
  { form: 'an http:// or https:// URL' },
);

const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;
const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

const pathParametersSchema = z.enum(['reject', 'allow']);

export const tlsSchema = z.strictObject({ cert: nonEmptyString, key: nonEmptyString, passphrase: z.string().optional() });

export const listenSchema = z.strictObject({
  host: host.default('0.0.0.0'),
  port: port.default(8080),
  tls: tlsSchema.optional(),
});

export const adminSchema = z.strictObject({
  host: host.default('127.0.0.1'),
  port: port.default(9901),
  /**
   * A file holding the bearer secret state-changing admin endpoints (POST /reload) ask
   * for; required when `host` is not a loopback address (checks.ts). Default none.
   */
  tokenFile: nonEmptyString.optional(),
});

export const serverSchema = z.strictObject({
  /** `realm` of every Bearer challenge (RFC 6750 §3). */
  realm: describedAs(z.string().regex(/^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,64}$/, 'must be 1-64 printable ASCII characters without " or \\'), {
    form: '1-64 printable ASCII characters without " or \\',
  }).default('mfa-gateway'),
  /** How long SIGTERM waits for in-flight requests; then what is left is aborted (a hard limit). */
  drainTimeout: duration.default('10s'),
  /**
   * Where `start` writes its process id (removed at exit) and `reload` finds the gateway
   * to signal. Default none: no pid file.
   */
  pidFile: nonEmptyString.optional(),
  /** Largest request body the gateway streams upstream (bytes); larger → 413. 0 = no limit. */
  maxBodyBytes: z.number().int().min(0).default(0),
  /**
   * Peers whose `X-Forwarded-For` is trusted (appended to rather than replaced).
   * Exact IPv4/IPv6 addresses or CIDR blocks.
   */
  trustedProxies: z.array(nonEmptyString).default([]),
  /**
   * A raw `;` in a path: `reject` answers 400; `allow` matches each segment without its
   * `;…` parameters, as servlet containers read it (README.md "Paths and headers").
   */
  pathParameters: pathParametersSchema.default('reject'),
  /** Also send an RFC 7239 `Forwarded` header upstream (X-Forwarded-* are always sent). */
  forwardedHeader: z.boolean().default(false),
  /**
   * Request bodies up to this many bytes are read whole before an upstream connection is
   * claimed, so a client trickling its body cannot hold one (nginx's proxy_request_buffering);
   * larger bodies stream. 0 = always stream.
   */
  requestBuffering: z.number().int().min(0).max(16 * 1_048_576).default(65_536),
  /** The origin clients use, when the gateway sits behind another proxy: DPoP `htu` is checked against it (RFC 9449 §4.3). */
  publicOrigin: publicOrigin.optional(),
  /**
   * Front-end threads, each one uWS app on the same port (README "Threads"): `auto` =
   * os.availableParallelism() (or MFA_GATEWAY_THREADS when set); 1 = one event loop.
   */
  threads: z.union([z.literal('auto'), z.number().int().min(1).max(256)]).default('auto'),
  timeouts: z
    .strictObject({
      /** A request body that sends nothing for this long is answered 408 and its upstream request aborted. */
      requestBodyIdle: duration.default('10s'),
    })
    .prefault({}),
});

/** Request header names (RFC 9110 §5.1 token), compared in lower case. */
const headerName = describedAs(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be a header name (RFC 9110 §5.1 token characters)'), {
  form: 'a header name (RFC 9110 §5.1 token characters)',
});

export const headersSchema = z.strictObject({
  /** More request header names that never reach an upstream, on every route. */
  remove: z.array(headerName).default([]),
  /** Names from the gateway's list of override and client-claim headers to forward after all. */
  keep: z.array(headerName).default([]),
});

export const verifierSchema = z.strictObject({
  /** One worker keeps `concurrency` verifications in flight; measured as fast as two on a 2-core machine, at less CPU. */
  threads: z.number().int().min(0).max(64).default(1),
  /** Verifications one worker thread has in flight at once, sent to it as one batch (README "Token verification"). */
  concurrency: z.number().int().min(1).max(1024).default(64),
  maxQueue: z.number().int().min(1).default(1024),
  maxTokenBytes: z.number().int().min(256).max(65536).default(8192),
  cache: z
    .strictObject({
      max: z.number().int().min(1).default(100_000),
      maxTtl: duration.default('5m'),
      negativeTtl: duration.default('10s'),
      negativeMax: z.number().int().min(1).default(10_000),
    })
    .prefault({}),
  jwksCooldown: duration.default('30s'),
  /** Time allowed for one key-set or discovery fetch. */
  jwksTimeout: duration.default('5s'),
  /** Time one verification may take in the worker pool (queue wait included); beyond it, 503. */
  taskTimeout: durationSchema('10ms').default('2s'),
});

const claimPaths = z.strictObject({
  subject: nonEmptyString.optional(),
  roles: nonEmptyString.optional(),
  scopes: nonEmptyString.optional(),
  groups: nonEmptyString.optional(),
});

export const issuerSchema = z.strictObject({
  name: nonEmptyString,
  issuer: nonEmptyString,
  profile: z.enum(['generic', 'keycloak', 'okta', 'auth0', 'entra']).default('generic'),
  discovery: z.boolean().optional(),
  jwksUri: httpUrl.optional(),
  jwksFile: nonEmptyString.optional(),
  audience: z.array(nonEmptyString).min(1, 'must list at least one audience'),
  algorithms: z
    .array(z.string())
    .min(1, 'must list at least one algorithm')
    .default(['RS256', 'ES256', 'EdDSA'])
    .superRefine((algs, ctx) => {
      algs.forEach((a, i) => {
        if (!(ALGORITHMS as readonly string[]).includes(a)) {
          ctx.addIssue({
            code: 'custom',
            path: [i],
            message:
              a === 'none' || a.startsWith('HS')
                ? `${a} is never accepted (RFC 8725 §3.1: no "none", no HMAC with public keys)`
                : `unknown algorithm ${a}; one of ${ALGORITHMS.join(', ')}`,
          });
        }
      });
    }),
  clockTolerance: duration.default('30s'),
  typ: nonEmptyString.optional(),
  claims: claimPaths.prefault({}),
  /** Extra MFA evidence this issuer emits (its profile sets defaults). */
  mfa: z.strictObject({ amr: stringList.optional(), acr: stringList.optional() }).optional(),
  /** DPoP, back-channel logout and introspection of this issuer (lifecycle-schema.ts). */
  ...issuerLifecycleKeys,
});

export const upstreamSchema = z.strictObject({
  url: httpUrl,
  connections: z.number().int().min(1).max(65536).default(128),
  /** Requests that may wait for a free connection before the gateway answers 503. */
  maxQueue: z.number().int().min(0).default(1024),
  timeouts: z
    .strictObject({ connect: duration.default('2s'), headers: duration.default('30s'), body: duration.default('30s') })
    .prefault({}),
});

export const mfaSchema = z.strictObject({
  amr: stringList.default(['mfa']),
  acr: stringList.default([]),
  maxAge: duration.default('12h'),
});

const routeMfaSchema = z.strictObject({ amr: stringList.optional(), acr: stringList.optional(), maxAge: duration.optional() });

export const routeSchema = z.strictObject({
  name: nonEmptyString.optional(),
  path: z
    .string()
    .refine((p) => p.startsWith('/'), { message: 'must start with /' })
    // A route path the request normalizer could never produce would be a route that never matches.
    .refine((p) => !p.startsWith('/') || normalizePath(p) === p, {
      message: 'must be a normalized path (RFC 3986 pchar only; no ;, no %-escapes of unreserved characters, // or dot segments)',
    }),
  methods: z.array(z.enum(HTTP_METHODS)).min(1).optional(),
  upstream: nonEmptyString,
  stripPrefix: z.boolean().default(false),
  auth: z.enum(['none', 'token', 'mfa']).default('mfa'),
  issuers: stringList.optional(),
  roles: stringList.optional(),
  scopes: stringList.optional(),
  groups: stringList.optional(),
  mfa: routeMfaSchema.optional(),
  acr: stringList.optional(),
  /** Whether the client's Authorization header is forwarded upstream. */
  forwardAuthorization: z.boolean().default(true),
  /** Replaces `server.pathParameters` for this route. */
  pathParameters: pathParametersSchema.optional(),
  /** This route's rate limits; each key replaces the global `rateLimit` key of that name (false = none). */
  rateLimit: routeRateLimitSchema.optional(),
});

/** pino's levels, most severe first; `silent` logs nothing. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const logSchema = z.strictObject({
  /**
   * The operational log's level. `--log-level` wins over it; when the file leaves it
   * out, `MFA_GATEWAY_LOG_LEVEL` applies (load.ts), else info.
   */
  level: z.enum(LOG_LEVELS).default('info'),
});

export const identityHeadersSchema = z.strictObject({
  subject: nonEmptyString.default('x-auth-subject'),
  roles: nonEmptyString.default('x-auth-roles'),
  scopes: nonEmptyString.default('x-auth-scopes'),
  groups: nonEmptyString.default('x-auth-groups'),
  amr: nonEmptyString.default('x-auth-amr'),
  acr: nonEmptyString.default('x-auth-acr'),
  issuer: nonEmptyString.default('x-auth-issuer'),
  authTime: nonEmptyString.default('x-auth-time'),
});

export const configSchema = z.strictObject({
  listen: listenSchema.prefault({}),
  admin: adminSchema.prefault({}),
  server: serverSchema.prefault({}),
  verifier: verifierSchema.prefault({}),
  issuers: z.array(issuerSchema).default([]),
  upstreams: describedAs(z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'upstream names use A-Z a-z 0-9 _ . -'), upstreamSchema), {
    form: 'a mapping of upstream names (A-Z a-z 0-9 _ . -) to upstreams, each with at least a url',
  }),
  mfa: mfaSchema.prefault({}),
  routes: z.array(routeSchema).min(1, 'must list at least one route'),
  identityHeaders: identityHeadersSchema.prefault({}),
  headers: headersSchema.prefault({}),
  audit: auditSchema.prefault({}),
  rateLimit: rateLimitSchema.prefault({}),
  log: logSchema.prefault({}),
  dpop: dpopSchema.prefault({}),
  backchannelLogout: backchannelLogoutSchema.prefault({}),
  revocation: revocationSchema.prefault({}),
  identityAssertion: identityAssertionSchema.prefault({}),
  /** Where the state instances share lives: this process, or Redis (state-schema.ts). */
  state: stateSchema.prefault({}),
});

export type RawConfig = z.output<typeof configSchema>;
export type RawIssuer = z.output<typeof issuerSchema>;
export type RawRoute = z.output<typeof routeSchema>;
