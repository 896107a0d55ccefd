/**
 * `mfa-gateway explain` (README, "Explain a decision"): what the gateway would answer one
 * request, stage by stage, without starting a server: "why is this token refused?".
 *
 * It runs the real pipeline: a RequestContext built from plain values
 * (RequestContext.fromValues), the stages of src/pipeline/pipeline.ts in their order,
 * the real verifier (threads 0, its key sets fetched as the gateway fetches them),
 * `decide` in the policy stage, and forward() up to the dispatch, which a stand-in
 * records instead of sending (src/explain/recorder.ts). Each stage's verdict is one
 * line; the token and the policy are broken down check by check (token.ts, and
 * policyBreakdown below, with the rules of src/authz/). The token is never printed:
 * only its length and its `token_hash` (keyed per process, like the audit line's).
 */
import { buildLifecycle } from '../lifecycle.js';
import type { CompiledIssuer, CompiledRoute, GatewayState } from '../config/state.js';
import { createVerifier } from '../authn/verifier.js';
import { KeyStore } from '../authn/jwks.js';
import type { Principal } from '../authz/claims.js';
import { FACTOR_CATEGORY, twoCategories } from '../authz/mfa.js';
import { hasAll, hasAny, missing } from '../authz/rbac.js';
import { createRateLimits } from '../limits/limits.js';
import { createMetrics } from '../observe/metrics.js';
import { tokenHash } from '../observe/audit.js';
import type { Answer } from '../pipeline/answer.js';
import { RequestContext } from '../pipeline/context.js';
import { FRONT_STAGES, ROUTE_STAGES, routeChain } from '../pipeline/pipeline.js';
import type { Services } from '../pipeline/services.js';
import { NEXT, type Stage } from '../pipeline/stage.js';
import { forward } from '../proxy/forward.js';
import { REASONS, type Reason } from '../reasons.js';
import { SYSTEM_RUNTIME, type Runtime } from '../runtime.js';
import { RecordingAnswerer, recordingPools, type RecordedDispatch } from './recorder.js';
import { CHECK_OF, tokenBreakdown, type Check, type KeySetView, type Mark } from './token.js';

export interface ExplainRequest {
  /** Upper case (GET, POST, …). */
  readonly method: string;
  /** The request target: the path, with `?query` when there is one. */
  readonly target: string;
  /** Extra request headers, lower-case names (a Host is added when none is given). */
  readonly headers: readonly (readonly [string, string])[];
  /** Sent as `Authorization: Bearer <token>`. */
  readonly token?: string | undefined;
  /** The peer address (default 127.0.0.1). */
  readonly remote?: string;
}

export interface Explanation {
  /** The report, one line each (no line holds the token). */
  readonly lines: readonly string[];
  /** The request would be sent upstream. */
  readonly allowed: boolean;
  readonly status: number;
  readonly reason: Reason;
}

export interface ExplainOptions {
  /** The clock and network (tests give their own). */
  readonly runtime?: Runtime;
  /** Named in the first line. */
  readonly configFile?: string;
}

const NAME_WIDTH = 16;
const MARK_WIDTH = 4;

/** `name  mark  detail`, the sub-checks of a stage indented under it. */
function row(name: string, mark: Mark | '', detail: string, indent = 0): string {
  const lead = '  '.repeat(indent);
  return `${lead}${name.padEnd(NAME_WIDTH - lead.length)} ${mark.padEnd(MARK_WIDTH)} ${detail}`.trimEnd();
}

const STAGE_NAMES: Readonly<Record<string, string>> = { 'address-limit': 'address limit', 'subject-limit': 'subject limit' };

/** Explains one request against a compiled state. Never throws for what the request holds. */
export async function explain(state: GatewayState, request: ExplainRequest, options: ExplainOptions = {}): Promise<Explanation> {
  const runtime = options.runtime ?? SYSTEM_RUNTIME;
  const nowMs = runtime.now();
  const lines: string[] = [];
  const notes: string[] = [];
  const stop = new AbortController();
  const fetch = memoFetch(runtime.fetch);
  // Warnings become notes under the report; a failed key-set fetch is the key line's to say.
  const log = (level: string, msg: string, fields?: Record<string, unknown>) => {
    if ((level === 'warn' || level === 'error') && msg !== 'key set fetch failed') notes.push(`${msg}${fields?.['error'] ? `: ${String(fields['error'])}` : ''}`);
  };
  // threads 0: the verifier's own task code runs here, on this thread; no timer outlives the run.
  const noTimer = () => ({ cancel() {} });
  const verifier =
    state.issuers.length > 0 ? createVerifier({ ...state, verifier: { ...state.verifier, threads: 0 } }, { now: runtime.now, fetch, log, setTimer: noTimer }) : null;
  const keyViews = new Map<string, Promise<KeySetView>>();
  const keys = (issuer: CompiledIssuer): Promise<KeySetView> => {
    let view = keyViews.get(issuer.name);
    if (view === undefined) {
      view = loadKeys(issuer, state, { now: runtime.now, fetch, signal: stop.signal, log, setTimer: noTimer });
      keyViews.set(issuer.name, view);
    }
    return view;
  };
  let dispatched: RecordedDispatch | null = null;
  const answerer = new RecordingAnswerer();
  // The token lifecycle's parts as the gateway builds them (an empty revocation list, a
  // fresh replay store): explain judges one request as a gateway just started would.
  const lifecycle = buildLifecycle(state, { runtime, log: () => {} });
  const services: Services = {
    ...lifecycle.services,
    log: () => {},
    runtime,
    verifier,
    limits: createRateLimits(state.rateLimit, { now: runtime.now }),
    metrics: createMetrics({ defaultMetrics: false }),
    internalError: (_ctx, err) => notes.push(`internal error: ${(err as Error)?.message ?? String(err)}`),
    sprayingBlocked: () => {},
    pools: recordingPools(state, (d) => (dispatched = d)),
    draining: false,
    finished: () => {},
  };
  const q = request.target.indexOf('?');
  const path = q === -1 ? request.target : request.target.slice(0, q);
  const query = q === -1 || q === request.target.length - 1 ? undefined : request.target.slice(q + 1);
  const headers: [string, string][] = [...request.headers.map(([k, v]) => [k, v] as [string, string])];
  if (!headers.some(([k]) => k === 'host')) headers.unshift(['host', 'localhost']);
  if (request.token !== undefined) headers.push(['authorization', `Bearer ${request.token}`]);
  const ctx = RequestContext.fromValues({ method: request.method, path, query, headers, remote: request.remote ?? '127.0.0.1' }, state, services, answerer);
  answerer.bind(ctx);

  lines.push(`explain: ${ctx.method} ${request.target}${options.configFile ? ` against ${options.configFile}` : ''} at ${new Date(nowMs).toISOString()}`);
  try {
    let refused = false;
    const runStage = async (stage: Stage): Promise<void> => {
      const name = STAGE_NAMES[stage.name] ?? stage.name;
      if (refused) {
        lines.push(row(name, '--', 'not reached'));
        return;
      }
      const breakdown = stage.name === 'token' && ctx.token !== null && ctx.principal === null ? await tokenBreakdown(ctx.token, state, keys, nowMs) : null;
      let result: Awaited<ReturnType<Stage['run']>>;
      try {
        result = await stage.run(ctx);
      } catch (err) {
        notes.push(`internal error in stage ${stage.name}: ${(err as Error)?.message ?? String(err)}`);
        result = { reason: 'internal' };
      }
      if (result !== NEXT) {
        refused = true;
        answerer.answer(result);
      }
      lines.push(row(name, result === NEXT ? 'ok' : 'FAIL', stageDetail(stage.name, ctx, result === NEXT ? null : result, state)));
      if (stage.name === 'token' && ctx.token !== null) lines.push(...tokenLines(ctx, breakdown, result === NEXT ? null : result));
      if (stage.name === 'policy' && ctx.principal !== null) lines.push(...policyBreakdown(ctx.principal, ctx.route!, state, nowMs / 1000).map((c) => row(c.name, c.mark, c.detail, 1)));
    };
    for (const stage of FRONT_STAGES) await runStage(stage);
    const route = ctx.route;
    const chain = route !== null ? routeChain(state, route) : [];
    for (const stage of ROUTE_STAGES) {
      if (route === null || chain.includes(stage)) await runStage(stage);
      else lines.push(row(STAGE_NAMES[stage.name] ?? stage.name, '--', notOnRoute(stage.name, route)));
    }
    if (!refused) {
      forward(ctx);
      lines.push(...forwardLines(ctx, answerer.answered, dispatched));
    } else lines.push(row('forward', '--', 'not reached'));
  } finally {
    stop.abort();
    await verifier?.close();
    lifecycle.close();
  }
  for (const n of notes) lines.push(`note: ${n}`);
  const a = answerer.answered;
  if (a === null && dispatched !== null) {
    lines.push('answer: allow: the request would be sent to the upstream, and its answer passed on (exit 0)');
    return { lines, allowed: true, status: 200, reason: 'ok' };
  }
  const final = a ?? { reason: 'internal' as const };
  lines.push(...answerLines(final, ctx.requestId));
  return { lines, allowed: false, status: REASONS[final.reason].status, reason: final.reason };
}

/** Discovery documents and key sets fetched once per run: the breakdown's key store and the verifier share them. */
function memoFetch(fetch: typeof globalThis.fetch): typeof globalThis.fetch {
  const seen = new Map<string, Promise<Response>>();
  return (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    let got = seen.get(url);
    if (got === undefined) {
      got = fetch(input, init);
      seen.set(url, got);
    }
    return got.then((r) => r.clone());
  };
}

/** The issuer's key set, loaded as the gateway loads it, and where it came from. */
async function loadKeys(
  issuer: CompiledIssuer,
  state: GatewayState,
  o: { now: () => number; fetch: typeof globalThis.fetch; signal: AbortSignal; log: (level: string, msg: string, fields?: Record<string, unknown>) => void; setTimer: () => { cancel(): void } },
): Promise<KeySetView> {
  let from = issuer.keys.kind === 'jwksFile' ? issuer.keys.path : issuer.keys.url;
  let kids: (string | null)[] = [];
  const store = new KeyStore(issuer, {
    now: o.now,
    fetch: o.fetch,
    signal: o.signal,
    setTimer: o.setTimer,
    cooldownMs: state.verifier.jwksCooldownMs,
    timeoutMs: state.verifier.jwksTimeoutMs,
    log: (level, msg, fields) => {
      if (msg === 'key set fetched') from = String(fields?.['url'] ?? fields?.['file'] ?? from);
      else if (msg === 'key set loaded') kids = (fields?.['kids'] as (string | null)[] | undefined) ?? [];
      else o.log(level, msg, fields);
    },
  });
  await store.load();
  return { store, from, kids };
}

function stageDetail(stage: string, ctx: RequestContext, answer: Answer | null, state: GatewayState): string {
  const why = answer === null ? '' : `${answer.description ?? REASONS[answer.reason].description} (${answer.reason})`;
  const route = ctx.route;
  switch (stage) {
    case 'draining':
      return answer ? why : 'not draining';
    case 'framing':
      return answer ? why : `${ctx.headers.length / 2} header${ctx.headers.length === 2 ? '' : 's'}, ${ctx.headerBytes} bytes`;
    case 'body':
      return answer ? why : 'no body (explain sends none)';
    case 'path':
      if (answer) return `${ctx.rawPath} does not normalize (RFC 3986 §6.2.2, README "Paths and headers") (${answer.reason})`;
      return ctx.matchPath === ctx.rawPath ? ctx.matchPath : `${ctx.matchPath} (normalized from ${ctx.rawPath})`;
    case 'route':
      if (answer?.reason === 'not_found') return `no route matches ${ctx.matchPath}; the routes: ${state.routes.map((r) => r.path).join(', ')} (not_found)`;
      if (answer) return `${ctx.rawPath}: a ; in the path, and the route does not allow path parameters (${answer.reason})`;
      return `${route!.name === route!.path ? route!.path : `${route!.name}: path ${route!.path}`}, upstream ${route!.upstream}, auth ${route!.policy.auth}`;
    case 'method':
      return answer ? `${ctx.method} is not allowed; Allow: ${answer.allowMethods ?? ''} (${answer.reason})` : `${ctx.method} (allowed: ${route!.allow || 'every method'})`;
    case 'address-limit':
    case 'subject-limit':
      return answer ? why : 'under the limit (explain counts from zero; a running gateway has its own counters)';
    case 'credentials':
      if (answer) return answer.reason === 'credentials_missing' ? 'no bearer credentials (an Authorization: Bearer header, RFC 6750 §2.1) (credentials_missing)' : why;
      return `a bearer token, ${ctx.token!.length} characters, token_hash ${tokenHash(ctx.token!)}`;
    case 'token':
      if (answer) return why;
      return `valid: issuer ${ctx.principal!.issuer}, subject ${ctx.principal!.subject ?? '(none)'}`;
    case 'policy':
      return answer ? why : 'allowed';
    case 'logout':
      return answer ? why : 'not the back-channel logout endpoint';
    case 'introspection':
      if (answer) return why;
      return ctx.principal !== null ? `introspected: issuer ${ctx.principal.issuer}, subject ${ctx.principal.subject ?? '(none)'}` : 'a JWT: verified by the token stage, not introspected';
    case 'revocation':
      return answer ? why : 'not revoked (explain starts with an empty revocation list; a running gateway has its own)';
    case 'dpop':
      if (answer) return why;
      return ctx.principal?.cnfJkt !== undefined ? 'DPoP proof valid for this request (RFC 9449 §4.3)' : 'the token is not DPoP-bound: a Bearer token (RFC 9449 §7.2)';
    default:
      return answer ? why : '';
  }
}

function notOnRoute(stage: string, route: CompiledRoute): string {
  if (stage === 'address-limit') return 'no per-address limit on this route';
  if (stage === 'subject-limit') return route.policy.auth === 'none' ? 'auth: none (no subject)' : 'no per-subject limit on this route';
  if (route.policy.auth === 'none') return 'auth: none (no token is read)';
  if (stage === 'introspection') return 'no issuer of this route introspects opaque tokens';
  return 'not needed on this route';
}

/** The token's checks, with the verifier's verdict marked where the breakdown did not see it. */
function tokenLines(ctx: RequestContext, breakdown: Awaited<ReturnType<typeof tokenBreakdown>> | null, answer: Answer | null): string[] {
  if (breakdown === null) return [row('cache', 'ok', 'a verified token the cache already holds', 1)];
  const checks = breakdown.checks;
  const verdict = ctx.verdict;
  const out: string[] = [];
  if (answer !== null && verdict !== null && !verdict.ok) {
    const own = checks.find((c) => c.mark === 'FAIL' && c.reason === verdict.reason) ?? checks.find((c) => c.name === CHECK_OF[verdict.reason]);
    if (own !== undefined && own.mark !== 'FAIL') {
      own.mark = 'FAIL';
      own.detail = `${own.detail}; the verifier refused it: ${verdict.reason}`;
    }
  }
  for (const c of checks) out.push(row(c.name, c.mark, c.detail, 1));
  if (answer === null && checks.some((c) => c.mark === 'FAIL')) out.push(row('', '', 'the verifier accepted the token although a check above fails: please report this', 1));
  return out;
}

/** The MFA and role checks of the route for a verified principal, each on its own (decide() stops at the first). */
export function policyBreakdown(p: Principal, route: CompiledRoute, state: GatewayState, nowSec: number): Check[] {
  const policy = route.policy;
  const issuer = state.issuerByName.get(p.issuer)!;
  const out: Check[] = [];
  const push = (name: string, mark: Mark, detail: string) => out.push({ name, mark, detail });
  const list = (xs: readonly string[] | null | undefined) => (xs === null ? '(not a string or list of strings)' : xs === undefined || xs.length === 0 ? '(none)' : xs.join(', '));

  if (policy.issuers === null) push('issuer', 'ok', `${p.issuer} (the route allows every issuer)`);
  else if (policy.issuers.has(p.issuer)) push('issuer', 'ok', `${p.issuer} (allowed: ${[...policy.issuers].join(', ')})`);
  else push('issuer', 'FAIL', `${p.issuer}; the route allows ${[...policy.issuers].join(', ')} (issuer_not_allowed)`);

  if (policy.auth === 'mfa') {
    const authTime = p.authTime === undefined ? '(none)' : `${new Date(p.authTime * 1000).toISOString().replace('.000Z', 'Z')} (${Math.round(nowSec - p.authTime)} s ago)`;
    push('evidence', '--', `amr ${list(p.amr)}; acr ${p.acr ?? '(none)'}; auth_time ${authTime}`);
    push(...mfaCheck(p, route, issuer));
    const required = policy.requiredAcr;
    if (required.length === 0) push('acr', '--', 'the route requires none beyond MFA');
    else if (p.acr !== undefined && required.includes(p.acr)) push('acr', 'ok', `${p.acr} (the route requires one of ${required.join(', ')})`);
    else push('acr', 'FAIL', `${p.acr ?? '(none)'}; the route requires one of ${required.join(', ')} (acr_insufficient)`);
    const max = policy.mfa.maxAgeSec;
    if (p.authTime === undefined) push('max age', 'FAIL', `no auth_time; the route allows logins up to ${max} s old (auth_time_missing)`);
    else if (p.authTime > nowSec + issuer.clockToleranceSec) push('max age', 'FAIL', `auth_time is ${Math.round(p.authTime - nowSec)} s in the future (auth_too_old)`);
    else if (nowSec - p.authTime > max) push('max age', 'FAIL', `authenticated ${Math.round(nowSec - p.authTime)} s ago; the route allows ${max} s (auth_too_old)`);
    else push('max age', 'ok', `authenticated ${Math.max(0, Math.round(nowSec - p.authTime))} s ago; the route allows ${max} s`);
  } else push('mfa', '--', `auth: ${policy.auth} asks for no MFA`);

  if (policy.roles.length === 0) push('roles', '--', 'none required');
  else if (hasAny(p.roles, policy.roles)) push('roles', 'ok', `${list(p.roles)} (one of ${policy.roles.join(', ')} needed)`);
  else push('roles', 'FAIL', `${list(p.roles)}; one of ${policy.roles.join(', ')} needed (role_missing)`);
  if (policy.scopes.length === 0) push('scopes', '--', 'none required');
  else if (hasAll(p.scopes, policy.scopes)) push('scopes', 'ok', `${list(p.scopes)} (all of ${policy.scopes.join(', ')} needed)`);
  else push('scopes', 'FAIL', `${list(p.scopes)}; missing ${missing(p.scopes, policy.scopes).join(', ')} (scope_missing)`);
  if (policy.groups.length === 0) push('groups', '--', 'none required');
  else if (hasAny(p.groups, policy.groups)) push('groups', 'ok', `${list(p.groups)} (one of ${policy.groups.join(', ')} needed)`);
  else push('groups', 'FAIL', `${list(p.groups)}; one of ${policy.groups.join(', ')} needed (group_missing)`);
  return out;
}

const CATEGORY_NAMES: Readonly<Record<number, string>> = { 1: 'know', 2: 'have', 4: 'are' };

/** Which rule of README "What counts as MFA" the token meets (src/authz/mfa.ts mfaSatisfied), or what it lacks. */
function mfaCheck(p: Principal, route: CompiledRoute, issuer: CompiledIssuer): [string, Mark, string] {
  const policy = route.policy;
  const amr = p.amr ?? [];
  const category = (m: string) => CATEGORY_NAMES[FACTOR_CATEGORY.get(m) ?? 0];
  const byRoute = amr.find((m) => policy.mfa.amr.includes(m));
  if (byRoute !== undefined) return ['mfa', 'ok', `amr ${byRoute}, which mfa.amr counts as MFA (${policy.mfa.amr.join(', ')})`];
  const byIssuer = amr.find((m) => issuer.mfaEvidence.amr.includes(m));
  if (byIssuer !== undefined) return ['mfa', 'ok', `amr ${byIssuer}, MFA evidence of issuer ${issuer.name} (profile ${issuer.profile})`];
  if (twoCategories(amr)) {
    const factors = amr.filter((m) => category(m) !== undefined).map((m) => `${m} (${category(m)})`);
    return ['mfa', 'ok', `amr holds factors of two categories (RFC 8176): ${factors.join(', ')}`];
  }
  if (p.acr !== undefined && policy.mfa.acr.includes(p.acr)) return ['mfa', 'ok', `acr ${p.acr}, which mfa.acr counts as MFA`];
  if (p.acr !== undefined && issuer.mfaEvidence.acr.includes(p.acr)) return ['mfa', 'ok', `acr ${p.acr}, MFA evidence of issuer ${issuer.name} (profile ${issuer.profile})`];
  const seen = amr.length === 0 ? 'no amr' : `amr ${amr.map((m) => (category(m) ? `${m} (${category(m)})` : m)).join(', ')}`;
  const counts = [
    `amr ${[...new Set([...policy.mfa.amr, ...issuer.mfaEvidence.amr])].join(', ') || '(none)'}`,
    'factors of two categories',
    ...(policy.mfa.acr.length + issuer.mfaEvidence.acr.length > 0 ? [`acr ${[...policy.mfa.acr, ...issuer.mfaEvidence.acr].join(', ')}`] : []),
  ];
  return ['mfa', 'FAIL', `${seen}, acr ${p.acr ?? '(none)'}: no MFA evidence; MFA is ${counts.join(', or ')} (mfa_required)`];
}

/** The request forward() would send, or its refusal of a claim no header can carry. */
function forwardLines(ctx: RequestContext, answered: Answer | null, d: RecordedDispatch | null): string[] {
  if (answered !== null || d === null) return [row('forward', 'FAIL', answered ? `${REASONS[answered.reason].description} (${answered.reason})` : 'nothing was sent')];
  const out = [row('forward', 'ok', `${String(d.options.method)} ${d.upstream.origin}${String(d.options.path)} (upstream ${d.upstream.name})`)];
  const flat = (d.options.headers ?? []) as string[];
  const identity = new Set(Object.values(ctx.state.identityHeaders));
  const others: string[] = [];
  let first = true;
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!;
    if (identity.has(name)) {
      out.push(row(first ? 'identity' : '', '', `${name}: ${flat[i + 1]!}`, 1));
      first = false;
    }
    else if (name === 'authorization') out.push(row('authorization', '', "the client's bearer token is forwarded (forwardAuthorization: true)", 1));
    else others.push(name);
  }
  if (ctx.route!.policy.auth !== 'none' && !ctx.route!.forwardAuthorization) out.push(row('authorization', '', 'not forwarded (forwardAuthorization: false)', 1));
  out.push(row('headers', '', others.join(', '), 1));
  return out;
}

/** The refusal as the client would see it: status, the headers that explain it, the JSON body. */
function answerLines(a: Answer, requestId: string): string[] {
  const info = REASONS[a.reason];
  const out = [`answer: ${info.status} ${a.reason} (the gateway refuses the request; exit 1)`];
  if (a.challenge !== undefined) out.push(`  www-authenticate: ${a.challenge}`);
  if (a.retryAfter !== undefined) out.push(`  retry-after: ${a.retryAfter}`);
  if (a.allowMethods !== undefined) out.push(`  allow: ${a.allowMethods}`);
  out.push(`  body: ${JSON.stringify({ error: info.error, error_description: a.description ?? info.description, request_id: requestId })}`);
  return out;
}
