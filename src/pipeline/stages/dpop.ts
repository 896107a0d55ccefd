/**
 * Sender-constrained tokens, RFC 9449 (README "Sender-constrained tokens (DPoP)"). Runs
 * once the token is known valid and not revoked, on the main thread:
 *
 * - a token bound to a key (`cnf.jkt`, §6.1) must come with the DPoP scheme (§7.1; as
 *   `Bearer` it is refused, §7.2) and one `DPoP` proof passing every check of §4.3, the
 *   signature last (src/dpop/proof.ts; the proof key's import is cached by thumbprint);
 *   then its `jti` must be new (§11.1, the replay store, which may answer with a promise;
 *   a shared store that cannot answer makes it 503 `replay_check_unavailable`);
 * - an unbound token with the DPoP scheme is refused (there is no key to hold the proof
 *   to), and so is any unbound token of an issuer with `dpop: required`.
 *
 * Every refusal is 401 with `WWW-Authenticate: DPoP error="…", algs="…"` (§7.1), built
 * once per config; `use_dpop_nonce` answers add `DPoP-Nonce` (§8). An unbound Bearer
 * token of an `optional` issuer (the common case) costs two field reads.
 */
import type { ProofFailureReason } from '../../dpop/proof.js';
import type { DpopReason } from '../../reasons.js';
import { answer, RETRY_SOON, type Answer } from '../answer.js';
import { ReplayUnavailableError } from '../../dpop/replay.js';
import type { RequestContext } from '../context.js';
import { NEXT, type Stage, type StageResult } from '../stage.js';
import { spraying } from './token.js';

export const dpop: Stage = {
  name: 'dpop',
  applies: (route) => route.policy.auth !== 'none',
  run(ctx): StageResult {
    const p = ctx.principal!;
    const state = ctx.state;
    const jkt = p.cnfJkt;
    if (jkt === undefined) {
      if (ctx.dpopScheme) return state.answers.dpop.dpop_token_not_bound;
      if (state.dpop.anyRequired && state.issuerByName.get(p.issuer)!.dpop === 'required') return state.answers.dpop.dpop_required;
      return NEXT;
    }
    if (!ctx.dpopScheme) return state.answers.dpop.dpop_bound_as_bearer;
    const services = ctx.services;
    // The signature check is real work on the main thread: an address blocked for
    // spraying gets none of it (as the token stage's verifications).
    const blocked = services.limits.blocked(ctx.client);
    if (blocked > 0) return spraying(ctx, blocked);
    const nonces = state.issuerByName.get(p.issuer)!.dpopNonce ? services.dpop.nonces : null;
    const window = state.dpop.iatWindowSec;
    const r = services.dpop.verify({
      proof: ctx.dpop,
      method: ctx.method,
      // §4.3 check 9: the URI without query and fragment, as the client addressed it.
      htu: `${state.server.publicOrigin ?? `${state.proto}://${ctx.host ?? ''}`}${ctx.rawPath}`,
      accessToken: ctx.token!,
      expectedJkt: jkt,
      algorithms: state.dpop.algorithms,
      iatWindowSec: window,
      nowMs: services.runtime.now(),
      ...(nonces !== null ? { nonce: nonces } : {}),
    });
    if (!r.ok) return refuse(ctx, r.reason, nonces);
    // §11.1: a proof is accepted once, remembered (per key) while its iat is in the window.
    const first = services.replay.remember(`dpop:${r.jkt}:${r.jti}`, (r.iat + window) * 1000);
    if (first === true) return NEXT;
    if (first === false) return refuse(ctx, 'replayed', null);
    return first.then(
      (fresh) => (fresh ? NEXT : refuse(ctx, 'replayed', null)),
      (err: unknown) => {
        // The shared store is away and state.onStoreDown is closed: 503, never an unchecked proof.
        if (err instanceof ReplayUnavailableError) return RETRY_SOON.replay_check_unavailable!;
        throw err;
      },
    );
  },
};

/** The answer to a failed proof; a nonce failure carries the current nonce (§8.1), other failures count toward spraying. */
function refuse(ctx: RequestContext, reason: ProofFailureReason, nonces: { current(): string } | null): Answer {
  // One reason word per proof check (src/reasons.ts); the type holds the two lists together.
  const word: `dpop_${ProofFailureReason}` & DpopReason = `dpop_${reason}`;
  const a = ctx.state.answers.dpop[word];
  if (reason === 'nonce_missing' || reason === 'nonce_invalid') {
    // The normal first exchange of a client that has no nonce yet: not an attack.
    return nonces === null ? a : answer(a.reason, { challenge: a.challenge, dpopNonce: nonces.current() });
  }
  if (ctx.services.limits.invalidToken(ctx.client)) ctx.services.sprayingBlocked(ctx.client);
  return a;
}
