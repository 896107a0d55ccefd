import type { BlockList } from 'node:net';
import type { CompiledAudit, CompiledRateLimit } from './observe-schema.js';
import type { HeaderRewriter, HeaderRules } from '../proxy/headers.js';
import type { RouteTable } from '../routes/table.js';
import type { Answer } from '../pipeline/answer.js';
import type { DpopReason, TokenFailureReason } from '../reasons.js';
import type { LogLevel } from './schema.js';
import type { CompiledIssuerLifecycle, CompiledLifecycle } from './lifecycle-schema.js';
import type { CompiledState } from './state-schema.js';

/**
 * The compiled gateway state: everything a request reads, built once from a validated
 * config file (src/config/compile.ts) and deeply frozen. Durations are numbers here,
 * claim paths are split, challenges and refusals are built; nothing on the request path
 * parses config text again. A request keeps the state it started with, so a reload can
 * replace the whole state in one step (docs/architecture.md, "State").
 */

export type AuthMode = 'none' | 'token' | 'mfa';

/** A dotted claim path, split once at load time (`realm_access.roles` → ['realm_access', 'roles']). */
export type ClaimPath = readonly string[];

export interface MfaPolicy {
  /** Any of these in `amr` satisfies MFA (RFC 8176). */
  readonly amr: readonly string[];
  /** Any of these `acr` values also satisfies MFA. */
  readonly acr: readonly string[];
  /** `auth_time` must be at most this old, in seconds. */
  readonly maxAgeSec: number;
}

export interface RoutePolicy {
  readonly auth: AuthMode;
  /** Issuer names allowed on the route; null = every configured issuer. */
  readonly issuers: ReadonlySet<string> | null;
  readonly roles: readonly string[]; // any-of
  readonly scopes: readonly string[]; // all-of
  readonly groups: readonly string[]; // any-of
  /** Global `mfa` with the route's `mfa` keys replacing those of the same name. */
  readonly mfa: MfaPolicy;
  /** The route's own required `acr` values (step-up), on top of MFA; empty = none. */
  readonly requiredAcr: readonly string[];
}

export interface CompiledRoute {
  readonly name: string;
  /** The path as configured (e.g. `/orders/`). */
  readonly path: string;
  /** The path without a trailing slash (`/orders`); `''` for the root route `/`. */
  readonly prefix: string;
  readonly methods: ReadonlySet<string> | null;
  /** Value of the `Allow` header for a 405. */
  readonly allow: string;
  readonly upstream: string;
  readonly stripPrefix: boolean;
  readonly forwardAuthorization: boolean;
  /** A path with `;` parameters may use this route (its `pathParameters`, else `server.pathParameters`, is `allow`). */
  readonly allowPathParameters: boolean;
  readonly policy: RoutePolicy;
  /** The 405 of this route, with its `Allow` (null when every method is allowed). */
  readonly methodNotAllowed: Answer | null;
  /** The issuer (config name) that introspects this route's opaque tokens (RFC 7662); null: none does. */
  readonly introspection: string | null;
}

export type KeySource =
  | { readonly kind: 'discovery'; readonly url: string }
  | { readonly kind: 'jwksUri'; readonly url: string }
  | { readonly kind: 'jwksFile'; readonly path: string };

/** An issuer; its DPoP, logout and introspection settings are in CompiledIssuerLifecycle (lifecycle-schema.ts). */
export interface CompiledIssuer extends CompiledIssuerLifecycle {
  readonly name: string;
  /** Exact match with the token's `iss`. */
  readonly issuer: string;
  readonly profile: 'generic' | 'keycloak' | 'okta' | 'auth0' | 'entra';
  readonly keys: KeySource;
  readonly audience: readonly string[];
  readonly algorithms: readonly string[];
  readonly clockToleranceSec: number;
  /** Required `typ`, normalized: lower case, without `application/` (RFC 9068 §2.1, RFC 7515 §4.1.9). */
  readonly typ: string | null;
  readonly claims: {
    readonly subject: ClaimPath;
    readonly roles: ClaimPath;
    readonly scopes: ClaimPath;
    readonly groups: ClaimPath;
  };
  /** MFA evidence this issuer emits besides the route's policy (from its profile or config). */
  readonly mfaEvidence: { readonly amr: readonly string[]; readonly acr: readonly string[] };
}

export interface CompiledUpstream {
  readonly name: string;
  readonly origin: string;
  /** Path prefix of the upstream URL, without a trailing slash ('' for none). */
  readonly basePath: string;
  readonly connections: number;
  readonly maxQueue: number;
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
}

export interface IdentityHeaderNames {
  readonly subject: string;
  readonly roles: string;
  readonly scopes: string;
  readonly groups: string;
  readonly amr: string;
  readonly acr: string;
  readonly issuer: string;
  readonly authTime: string;
}

/** The settings; the token-lifecycle ones (dpop, logoutPath, revocation, identityAssertion) are in CompiledLifecycle. */
export interface CompiledConfig extends CompiledLifecycle {
  readonly listen: { readonly host: string; readonly port: number; readonly tls: { readonly cert: string; readonly key: string; readonly passphrase?: string } | null };
  readonly admin: {
    readonly host: string;
    readonly port: number;
    /** The admin token's file (absolute); null when none is configured. */
    readonly tokenFile: string | null;
  };
  readonly server: {
    readonly realm: string;
    readonly drainTimeoutMs: number;
    /** `server.pidFile` (absolute), or null. */
    readonly pidFile: string | null;
    readonly maxBodyBytes: number;
    readonly trustedProxies: readonly string[];
    readonly pathParameters: 'reject' | 'allow';
    readonly requestBuffering: number;
    readonly requestBodyIdleMs: number;
    /** `server.publicOrigin` (DPoP `htu`), or null: scheme + Host of each request. */
    readonly publicOrigin: string | null;
    /** `server.threads` resolved (`auto`: src/threads/count.ts): front-end threads, 1 = the main loop alone. */
    readonly threads: number;
  };
  readonly verifier: {
    readonly threads: number;
    /** Verifications each worker thread runs at once. */
    readonly concurrency: number;
    readonly maxQueue: number;
    readonly maxTokenBytes: number;
    readonly cacheMax: number;
    readonly cacheMaxTtlMs: number;
    readonly negativeTtlMs: number;
    readonly negativeMax: number;
    readonly jwksCooldownMs: number;
    readonly jwksTimeoutMs: number;
    /** Longest a pool verification may take before it is abandoned (503). */
    readonly taskTimeoutMs: number;
  };
  readonly issuers: readonly CompiledIssuer[];
  readonly upstreams: ReadonlyMap<string, CompiledUpstream>;
  readonly mfa: MfaPolicy;
  /** Routes sorted by prefix length, longest first. */
  readonly routes: readonly CompiledRoute[];
  readonly identityHeaders: IdentityHeaderNames;
  /** Request headers removed or kept beyond the defaults (src/proxy/headers.ts GATEWAY_OWNED). */
  readonly headers: HeaderRules;
  readonly audit: CompiledAudit;
  readonly rateLimit: CompiledRateLimit;
  /** `state.*`: where the state instances share lives (state-schema.ts). */
  readonly state: CompiledState;
  /** The operational log's level (`log.level`, else MFA_GATEWAY_LOG_LEVEL, else info; `--log-level` wins over it). */
  readonly log: { readonly level: LogLevel };
  /** Directory of the config file; relative file paths in it were resolved against it. */
  readonly baseDir: string;
  /** Settings that are valid but will not do what they seem to (`check` prints them; `start` logs them). */
  readonly warnings: readonly { readonly path: string; readonly message: string }[];
}

/** How request bodies are read (README "Paths and headers", src/proxy/request-body.ts). */
export interface BodyLimits {
  /** Largest body accepted at all (413 beyond it); 0 = no limit. */
  readonly maxBytes: number;
  /** Bodies up to this size are read whole before the upstream request starts; 0 = always stream. */
  readonly bufferBytes: number;
  /** Longest silence of the client while it sends its body (408 after it). */
  readonly idleMs: number;
}

/** Refusals that depend only on the config, built once (RFC 6750 §3 challenges with this realm). */
export interface CompiledAnswers {
  /** No credentials: the bare `Bearer realm="…"` (RFC 6750 §3.1). */
  readonly credentialsMissing: Answer;
  /** `invalid_request` with its description, one per description the extractor gives. */
  readonly invalidRequest: ReadonlyMap<string, Answer>;
  /** `invalid_token` with its description, one per token failure reason. */
  readonly tokenFailure: { readonly [K in TokenFailureReason]: Answer };
  /** The DPoP refusals (RFC 9449 §7.1), each with `WWW-Authenticate: DPoP error="…", algs="…"`. */
  readonly dpop: { readonly [K in DpopReason]: Answer };
}

/** The whole compiled state: the config's settings and the tables built from them. */
export interface GatewayState extends CompiledConfig {
  readonly routeTable: RouteTable;
  readonly issuerByName: ReadonlyMap<string, CompiledIssuer>;
  /** By the exact `iss` value (the token names its issuer). */
  readonly issuerByIss: ReadonlyMap<string, CompiledIssuer>;
  /** Request header rewriting: what never passes, what is added (src/proxy/headers.ts). */
  readonly rewriter: HeaderRewriter;
  /** `server.trustedProxies` as a BlockList; null when none. */
  readonly trusted: BlockList | null;
  readonly answers: CompiledAnswers;
  readonly body: BodyLimits;
  /** Scheme of the public listener (X-Forwarded-Proto). */
  readonly proto: 'http' | 'https';
}
