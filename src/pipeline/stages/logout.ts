/**
 * The gateway's OpenID Connect Back-Channel Logout 1.0 endpoint (README "Revocation and
 * back-channel logout"), `backchannelLogout.path` on the public listener. It is answered
 * here, before routing, whatever route would match the path: a logout is the gateway's
 * own business and is never proxied.
 *
 * §2.5: the OP POSTs `logout_token` as application/x-www-form-urlencoded. The token is
 * validated per §2.6 (src/revocation/logout-token.ts) with the keys of the issuer its
 * `iss` names, its `jti` remembered against replay until `exp`, and turned into
 * revocation entries (§2.7: the session's or the user's tokens issued up to the logout).
 * §2.8: 200 with an empty body on success, 400 `{"error":"invalid_request"}` otherwise;
 * `Cache-Control: no-store` on both (the Responder writes it on every answer).
 */
import type { Readable } from 'node:stream';
import { decodeCompact } from '../../jwt/compact.js';
import { keyStoreSelector, MAX_LOGOUT_TOKEN_CHARS, revocationsForLogout, validateLogoutToken } from '../../revocation/logout-token.js';
import type { RequestBody } from '../../proxy/request-body.js';
import { answer, PLAIN, type Answer } from '../answer.js';
import type { RequestContext } from '../context.js';
import { NEXT, type Stage } from '../stage.js';
import { spraying } from './token.js';
import { ReplayUnavailableError } from '../../dpop/replay.js';

/** A form body holding one logout token and its name; anything larger is refused unread. */
const MAX_FORM_BYTES = MAX_LOGOUT_TOKEN_CHARS + 1024;

const ONLY_POST = answer('method_not_allowed', { allowMethods: 'POST' });
const invalid = (description: string): Answer => answer('logout_invalid', { description });
const NOT_A_FORM = invalid('A logout request is a POST of application/x-www-form-urlencoded (Back-Channel Logout 1.0 §2.5).');
const NO_TOKEN = invalid('The logout request has no logout_token.');
const TOO_LARGE = invalid('The logout request body is too large.');
const UNKNOWN_ISSUER = invalid('The logout token issuer is not accepted.');
const REPLAYED = invalid('The logout token was already used.');
const NO_KEYS = invalid('The issuer of the logout token has no key set loaded.');

export const logout: Stage = {
  name: 'logout',
  run(ctx) {
    const path = ctx.state.logoutPath;
    if (path === null || ctx.matchPath !== path) return NEXT;
    if (ctx.method !== 'POST') return ONLY_POST;
    if (!/^application\/x-www-form-urlencoded\s*(;|$)/i.test(header(ctx, 'content-type') ?? '')) return NOT_A_FORM;
    if (ctx.body === null) return NO_TOKEN;
    // Every refused logout token costs a signature check: a sprayer's get none (as tokens).
    const blocked = ctx.services.limits.blocked(ctx.client);
    if (blocked > 0) return spraying(ctx, blocked);
    return readBody(ctx.body, MAX_FORM_BYTES).then((form) => (form === null ? TOO_LARGE : logoutWith(ctx, new URLSearchParams(form.toString('utf8')))));
  },
};

async function logoutWith(ctx: RequestContext, form: URLSearchParams): Promise<Answer> {
  const token = form.get('logout_token');
  if (token === null || token === '') return NO_TOKEN;
  const state = ctx.state;
  const services = ctx.services;
  // Only to pick the issuer whose keys and rules apply; validateLogoutToken trusts nothing of it.
  const decoded = decodeCompact(token, MAX_LOGOUT_TOKEN_CHARS);
  const iss = typeof decoded === 'string' ? undefined : decoded.payload['iss'];
  const issuer = typeof iss === 'string' ? state.issuerByIss.get(iss) : undefined;
  if (issuer === undefined) return refused(ctx, UNKNOWN_ISSUER, 'wrong_issuer');
  const remote = services.verifier?.keySelector?.(issuer.name);
  const keys = remote === undefined ? services.verifier?.keys?.(issuer.name) : undefined;
  if (remote === undefined && keys === undefined) return NO_KEYS;
  const lt = await validateLogoutToken(token, {
    issuerName: issuer.name,
    issuer: issuer.issuer,
    audiences: issuer.logoutAudience,
    algorithms: issuer.algorithms,
    selectKey: remote ?? keyStoreSelector(keys!),
    nowMs: services.runtime.now(),
    clockToleranceSec: issuer.clockToleranceSec,
  });
  if (!lt.ok) return refused(ctx, invalid(lt.description), lt.reason);
  // §2.6 step 8: a logout token is used once; remembered until it expires by itself.
  let fresh: boolean;
  try {
    fresh = await services.replay.remember(`logout:${issuer.name}:${lt.jti}`, (lt.exp + issuer.clockToleranceSec) * 1000);
  } catch (err) {
    // A shared replay store that is away: the logout goes through on this instance's own
    // replay check. A replayed logout token can only revoke again, never let anything in.
    if (!(err instanceof ReplayUnavailableError)) throw err;
    fresh = true;
  }
  if (!fresh) return refused(ctx, REPLAYED, 'replayed');
  const entries = revocationsForLogout(lt, issuer.logoutScope).map((e) => services.revocations.add(e));
  services.log('info', 'back-channel logout', { request_id: ctx.requestId, issuer: issuer.name, revoked: entries.map((e) => e.kind) });
  return PLAIN.logout_ok;
}

/** A 400, logged with the rule the token broke (never its text), and counted toward spraying. */
function refused(ctx: RequestContext, a: Answer, reason: string): Answer {
  ctx.services.log('warn', 'back-channel logout refused', { request_id: ctx.requestId, reason });
  if (ctx.services.limits.invalidToken(ctx.client)) ctx.services.sprayingBlocked(ctx.client);
  return a;
}

/** The first value of a request header (lower-case name). */
function header(ctx: RequestContext, name: string): string | undefined {
  const h = ctx.headers;
  for (let i = 0; i < h.length; i += 2) if (h[i] === name) return h[i + 1];
  return undefined;
}

/** The whole body, or null when it is larger than `max` bytes (what follows is not kept). */
function readBody(body: RequestBody, max: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    body.whenReady(() => {
      const b = body.dispatchBody();
      if (Buffer.isBuffer(b)) return resolve(b.length > max ? null : b);
      const stream = b as Readable;
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('data', (c: Buffer) => {
        size += c.length;
        if (size > max) {
          stream.destroy();
          resolve(null);
        } else chunks.push(c);
      });
      stream.once('end', () => resolve(Buffer.concat(chunks)));
      stream.once('error', reject);
    });
  });
}
