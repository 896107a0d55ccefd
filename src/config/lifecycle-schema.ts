import { resolve } from 'node:path';
import { z } from 'zod';
import { durationSchema, parseDuration } from './duration.js';
import { describedAs } from './problems.js';
import { normalizePath } from '../routes/normalize.js';
import { DPOP_ALGORITHMS } from '../dpop/proof.js';

/**
 * Config keys of the token lifecycle (README "Sender-constrained tokens (DPoP)",
 * "Revocation and back-channel logout", "Opaque tokens (introspection)", "Identity
 * assertions"): DPoP (RFC 9449), OpenID Connect Back-Channel Logout 1.0 and the
 * revocation list, RFC 7662 introspection, and the gateway's signed identity assertion.
 * schema.ts adds these as keys of its own strict objects; `compileLifecycle` and
 * `compileIssuerLifecycle` turn the parsed values into their frozen runtime form.
 *
 * Secrets (the introspection client secret, the nonce secret, the assertion key) are
 * never inline: the config names a file or an environment variable, and the gateway
 * reads it at start (src/gateway.ts), so `check --print` and every log line can only
 * ever show where a secret is, never what it is.
 *
 * Like observe-schema.ts, this file never imports schema.ts (which imports it).
 */

const nonEmptyString = z.string().min(1, 'must not be empty');

/** An environment variable name (POSIX: letters, digits, `_`, not starting with a digit). */
const envName = describedAs(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name (letters, digits and _)'), {
  form: 'an environment variable name (letters, digits and _)',
});

/** A header name an upstream reads: RFC 9110 §5.1 token characters, no `_` (checks.ts says why). */
const headerName = describedAs(z.string().regex(/^[!#$%&'*+.^`|~0-9A-Za-z-]+$/, 'must be a header name (RFC 9110 §5.1 token characters, no _)'), {
  form: 'a header name (RFC 9110 §5.1 token characters, no _)',
});

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

const httpUrl = describedAs(z.string().refine(isHttpUrl, { message: 'must be an http:// or https:// URL' }), { form: 'an http:// or https:// URL' });

/**
 * `server.publicOrigin`: the scheme, host and port clients use (RFC 6454 origin), for the
 * DPoP `htu` check behind another proxy (RFC 9449 §4.3 check 9).
 */
export const publicOrigin = describedAs(
  z.string().refine((s) => isHttpUrl(s) && new URL(s).origin === s.replace(/\/$/, ''), {
    message: 'must be an origin: http(s)://host[:port], without path, query or fragment',
  }),
  { form: 'an origin such as https://api.example.com' },
);

/** `issuers[].introspection` (RFC 7662): how opaque tokens of this issuer are checked. */
export const introspectionSchema = z.strictObject({
  /** Default: the discovery document's `introspection_endpoint` (RFC 8414 §2). */
  endpoint: httpUrl.optional(),
  /** The gateway's client_id at the issuer (client_secret_basic, RFC 7662 §2.1). */
  clientId: nonEmptyString,
  /** A file holding the client secret (one line). Exactly one of clientSecretFile, clientSecretEnv. */
  clientSecretFile: nonEmptyString.optional(),
  /** An environment variable holding the client secret. */
  clientSecretEnv: envName.optional(),
  /** Longest wait for an answer, a wait for a free slot included; beyond it, 503. */
  timeout: durationSchema('100ms').default('2s'),
  /** An active answer is reused for at most this long (never past the token's `exp`). */
  cacheTtl: durationSchema('1s').default('1m'),
  /** Requests to the endpoint at once, at most; more wait (up to 4× this many) within `timeout`. */
  maxConcurrent: z.number().int().min(1).max(1024).default(16),
});

/** The lifecycle keys of one issuer, spread into schema.ts's issuerSchema. */
export const issuerLifecycleKeys = {
  /** `required`: a token without `cnf.jkt` is refused; `optional`: DPoP-bound tokens need a proof, others pass as Bearer. */
  dpop: z.enum(['optional', 'required']).default('optional'),
  /** Server nonces (RFC 9449 §8): a proof must carry a recent `DPoP-Nonce` of this gateway. */
  dpopNonce: z.boolean().default(false),
  /** `aud` values a logout token may carry (the gateway's client_id at the OP); default: `audience`. */
  logoutAudience: z.array(nonEmptyString).min(1, 'must list at least one audience').optional(),
  /** What a logout revokes: the session's tokens (`sid`; `sub` when the OP names no session), or every token of the user. */
  logoutScope: z.enum(['session', 'subject']).default('session'),
  introspection: introspectionSchema.optional(),
};

/** `dpop:` the proof checks shared by every issuer (RFC 9449 §4.3, §11.1). */
export const dpopSchema = z.strictObject({
  /** Proof algorithms accepted, as `algs` in the challenge (§7.1): asymmetric only. */
  algorithms: z
    .array(z.enum(DPOP_ALGORITHMS as [string, ...string[]]))
    .min(1, 'must list at least one algorithm')
    .default(['ES256', 'ES384', 'EdDSA', 'PS256', 'RS256']),
  /** How far a proof's `iat` may be from now, either way (§11.1: proofs are short-lived). */
  iatWindow: durationSchema('1s').default('1m'),
  /** Proofs (their `jti`) remembered against replay, at most (the oldest dropped first). */
  replayMax: z.number().int().min(1000).max(10_000_000).default(100_000),
  /** A file of at least 32 bytes every instance shares, so a nonce one issues the others accept; default: random per process. */
  nonceSecretFile: nonEmptyString.optional(),
});

/** A route-style path: normalized, so the one spelling requests are compared in. */
const gatewayPath = z
  .string()
  .refine((p) => p.startsWith('/'), { message: 'must start with /' })
  .refine((p) => !p.startsWith('/') || normalizePath(p) === p, { message: 'must be a normalized path (RFC 3986 pchar only, no ;, //, dot segments or %-escapes of unreserved characters)' });

/** `backchannelLogout:` the gateway's OpenID Connect Back-Channel Logout 1.0 endpoint on the public listener. */
export const backchannelLogoutSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** Answered by the gateway itself before routing: never proxied. */
  path: gatewayPath.default('/.well-known/mfa-gateway/backchannel-logout'),
});

/** `revocation:` the list of revoked sessions, subjects and tokens (logout, POST /revocations). */
export const revocationSchema = z.strictObject({
  /** Entries kept at most; a full list drops the entries closest to their expiry first. */
  max: z.number().int().min(100).max(10_000_000).default(100_000),
  /** An entry lives this long after its cutoff: set it to at least the longest access-token lifetime of any issuer. */
  maxTokenLifetime: durationSchema('1m').default('24h'),
});

/** `identityAssertion:` a short-lived JWT the gateway signs for each allowed request. */
export const identityAssertionSchema = z.strictObject({
  enabled: z.boolean().default(false),
  /** The request header it travels in; a client-sent copy is always removed. */
  header: headerName.default('x-mfa-gateway-assertion'),
  /** `iss` of every assertion. */
  issuer: nonEmptyString.default('mfa-gateway'),
  /** An EC P-256 private key (PEM PKCS#8, SEC1, or a JWK with `d`); default: a key generated at start. */
  keyFile: nonEmptyString.optional(),
  /** Lifetime of one assertion (never longer than the access token's). */
  lifetime: durationSchema('1s').default('1m'),
});

export type RawIntrospection = z.output<typeof introspectionSchema>;
const issuerLifecycleObject = z.object(issuerLifecycleKeys);
type RawIssuerLifecycle = z.output<typeof issuerLifecycleObject>;

// --- compiled form -------------------------------------------------------------------

export interface CompiledIntrospection {
  /** null: from discovery. */
  readonly endpoint: string | null;
  readonly clientId: string;
  /** Where the secret is read at start (an absolute file path, or an environment variable). */
  readonly secret: { readonly file: string } | { readonly env: string };
  readonly timeoutMs: number;
  readonly cacheTtlMs: number;
  readonly maxConcurrent: number;
}

/** What compileIssuerLifecycle adds to a CompiledIssuer. */
export interface CompiledIssuerLifecycle {
  readonly dpop: 'optional' | 'required';
  readonly dpopNonce: boolean;
  readonly logoutAudience: readonly string[];
  readonly logoutScope: 'session' | 'subject';
  readonly introspection: CompiledIntrospection | null;
}

export interface CompiledDpop {
  readonly algorithms: readonly string[];
  readonly iatWindowSec: number;
  readonly replayMax: number;
  readonly nonceSecretFile: string | null;
  /** Some issuer has `dpop: required` (the DPoP stage then looks the issuer up for unbound tokens). */
  readonly anyRequired: boolean;
}

export interface CompiledAssertion {
  readonly header: string;
  readonly issuer: string;
  readonly keyFile: string | null;
  readonly lifetimeSec: number;
}

export interface CompiledLifecycle {
  readonly dpop: CompiledDpop;
  /** The back-channel logout path; null when the endpoint is off. */
  readonly logoutPath: string | null;
  readonly revocation: { readonly max: number; readonly maxTokenLifetimeMs: number };
  /** null when `identityAssertion.enabled` is false. */
  readonly identityAssertion: CompiledAssertion | null;
  /** The request header that carries the assertion: stripped from every client request, enabled or not. */
  readonly assertionHeader: string;
}

const ms = (s: string): number => parseDuration(s)!;

export function compileIssuerLifecycle(iss: RawIssuerLifecycle & { readonly audience: readonly string[] }, baseDir: string): CompiledIssuerLifecycle {
  const i = iss.introspection;
  return {
    dpop: iss.dpop,
    dpopNonce: iss.dpopNonce,
    logoutAudience: iss.logoutAudience ?? iss.audience,
    logoutScope: iss.logoutScope,
    introspection:
      i === undefined
        ? null
        : {
            endpoint: i.endpoint ?? null,
            clientId: i.clientId,
            secret: i.clientSecretFile !== undefined ? { file: resolve(baseDir, i.clientSecretFile) } : { env: i.clientSecretEnv ?? '' },
            timeoutMs: ms(i.timeout),
            cacheTtlMs: ms(i.cacheTtl),
            maxConcurrent: i.maxConcurrent,
          },
  };
}

/** The parts of the parsed config compileLifecycle reads. */
export interface RawLifecycleInput {
  readonly dpop: z.output<typeof dpopSchema>;
  readonly backchannelLogout: z.output<typeof backchannelLogoutSchema>;
  readonly revocation: z.output<typeof revocationSchema>;
  readonly identityAssertion: z.output<typeof identityAssertionSchema>;
  readonly issuers: readonly { readonly dpop: 'optional' | 'required' }[];
}

export function compileLifecycle(raw: RawLifecycleInput, baseDir: string): CompiledLifecycle {
  const a = raw.identityAssertion;
  return {
    dpop: {
      algorithms: raw.dpop.algorithms,
      iatWindowSec: Math.floor(ms(raw.dpop.iatWindow) / 1000),
      replayMax: raw.dpop.replayMax,
      nonceSecretFile: raw.dpop.nonceSecretFile === undefined ? null : resolve(baseDir, raw.dpop.nonceSecretFile),
      anyRequired: raw.issuers.some((i) => i.dpop === 'required'),
    },
    logoutPath: raw.backchannelLogout.enabled ? raw.backchannelLogout.path : null,
    revocation: { max: raw.revocation.max, maxTokenLifetimeMs: ms(raw.revocation.maxTokenLifetime) },
    identityAssertion: a.enabled
      ? { header: a.header.toLowerCase(), issuer: a.issuer, keyFile: a.keyFile === undefined ? null : resolve(baseDir, a.keyFile), lifetimeSec: Math.floor(ms(a.lifetime) / 1000) }
      : null,
    assertionHeader: a.header.toLowerCase(),
  };
}

/**
 * The issuer (config name) whose introspection endpoint a route's opaque tokens go to:
 * the one issuer with `introspection` among those the route allows, or null. (`check`
 * refuses a route that allows two: lifecycleCrossChecks.)
 */
export function introspectionIssuerOf(allowed: ReadonlySet<string> | null, issuers: readonly { readonly name: string; readonly introspection: unknown }[]): string | null {
  const found = issuers.filter((i) => i.introspection !== null && (allowed === null || allowed.has(i.name)));
  return found.length === 1 ? found[0]!.name : null;
}

type Loose = Record<string, unknown>;
const obj = (v: unknown): Loose => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Loose) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/**
 * Checks across keys that the schema cannot express, in the `path: message` form of
 * checks.ts. Reads the raw data defensively (it runs when the schema failed too).
 * `checkFile(path, value)` reports a missing file (checks.ts owns the wording).
 */
export function lifecycleCrossChecks(data: unknown, checkFile: (path: string, p: unknown) => void, reservedHeader: (name: string) => string | null): { path: string; message: string }[] {
  const problems: { path: string; message: string }[] = [];
  const root = obj(data);
  const issuers = arr(root['issuers']).map(obj);
  const introspecting: string[] = [];
  issuers.forEach((iss, i) => {
    const intro = iss['introspection'];
    if (intro === undefined) return;
    const at = `issuers[${i}].introspection`;
    const o = obj(intro);
    if ((o['clientSecretFile'] === undefined) === (o['clientSecretEnv'] === undefined)) {
      problems.push({ path: at, message: 'needs exactly one of clientSecretFile, clientSecretEnv (a secret is never written into the config)' });
    }
    checkFile(`${at}.clientSecretFile`, o['clientSecretFile']);
    if (typeof iss['name'] === 'string') introspecting.push(iss['name']);
  });
  // RFC 7662 §2.1: an opaque token is sent to an introspection endpoint, which learns it: it
  // must go to exactly one issuer, never to every issuer in turn.
  if (introspecting.length > 1) {
    arr(root['routes']).map(obj).forEach((r, i) => {
      if ((r['auth'] ?? 'mfa') === 'none') return;
      const allowed = Array.isArray(r['issuers']) ? introspecting.filter((n) => (r['issuers'] as unknown[]).includes(n)) : introspecting;
      if (allowed.length > 1) {
        problems.push({
          path: `routes[${i}].issuers`,
          message: `an opaque token on this route could go to ${allowed.length} issuers with introspection (${allowed.join(', ')}); list at most one of them in issuers`,
        });
      }
    });
  }
  checkFile('dpop.nonceSecretFile', obj(root['dpop'])['nonceSecretFile']);
  const assertion = obj(root['identityAssertion']);
  checkFile('identityAssertion.keyFile', assertion['keyFile']);
  if (typeof assertion['header'] === 'string') {
    const why = reservedHeader(assertion['header'].toLowerCase());
    if (why !== null) problems.push({ path: 'identityAssertion.header', message: why });
  }
  return problems;
}
