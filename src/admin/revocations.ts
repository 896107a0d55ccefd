/**
 * The operator's incident-response endpoints on the admin listener (README "Revocation
 * and back-channel logout"): `POST /revocations` with `{"issuer", "sub" | "sid" | "jti"}`
 * refuses that subject's, session's or token's tokens issued up to now (201 and the
 * entry); `DELETE /revocations` with the same body lifts it (204, or 404 when there was
 * none); `GET /revocations` lists the entries. The two that change state are `mutates`:
 * they need the admin token whenever one is configured (src/server/admin.ts).
 */
import type { AdminReply, AdminRequest, AdminRoute } from '../server/admin.js';
import type { Revocations } from '../pipeline/services.js';
import { MAX_VALUE_CHARS, REVOCATION_KINDS, type RevocationKind } from '../revocation/list.js';

export interface RevocationSources {
  readonly revocations: Revocations;
  /** The issuer config names of the state in force (an entry must name one). */
  issuers(): ReadonlySet<string>;
}

const bad = (description: string): AdminReply => ({ status: 400, body: { error: 'invalid_request', error_description: description } });

/** The entry a request body names, or the 400 that says what is wrong with it. */
function parse(req: AdminRequest, issuers: ReadonlySet<string>): { issuer: string; kind: RevocationKind; value: string } | AdminReply {
  if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) return bad('The body must be JSON (Content-Type: application/json).');
  let body: unknown;
  try {
    body = JSON.parse(req.body.toString('utf8'));
  } catch {
    return bad('The body is not JSON.');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return bad('The body must be a JSON object: {"issuer": "…", "sub" | "sid" | "jti": "…"}.');
  const b = body as Record<string, unknown>;
  const unknown = Object.keys(b).filter((k) => k !== 'issuer' && !(REVOCATION_KINDS as readonly string[]).includes(k));
  if (unknown.length > 0) return bad(`Unknown member ${JSON.stringify(unknown[0])}; the members are issuer and one of sub, sid, jti.`);
  const issuer = b['issuer'];
  if (typeof issuer !== 'string' || !issuers.has(issuer)) return bad(`issuer must be the name of a configured issuer: one of ${[...issuers].join(', ') || '(none)'}.`);
  const kinds = REVOCATION_KINDS.filter((k) => b[k] !== undefined);
  if (kinds.length !== 1) return bad('Name exactly one of sub, sid, jti.');
  const kind = kinds[0]!;
  const value = b[kind];
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_VALUE_CHARS) return bad(`${kind} must be a string of 1 to ${MAX_VALUE_CHARS} characters.`);
  return { issuer, kind, value };
}

export function revocationRoutes(s: RevocationSources): AdminRoute[] {
  /** A state-changing endpoint whose body names one entry. */
  const changing = (method: 'post' | 'delete', act: (e: { issuer: string; kind: RevocationKind; value: string }) => AdminReply): AdminRoute => ({
    method,
    path: '/revocations',
    mutates: true,
    handle(req) {
      const p = parse(req, s.issuers());
      return 'status' in p ? p : act(p);
    },
  });
  return [
    changing('post', (e) => ({ status: 201, body: s.revocations.add(e, 'admin') })),
    changing('delete', (e) =>
      s.revocations.remove(e.issuer, e.kind, e.value, 'admin') ? { status: 204, body: '' } : { status: 404, body: { error: 'not_found', error_description: 'No such revocation.' } },
    ),
    { method: 'get', path: '/revocations', mutates: false, handle: () => ({ status: 200, body: s.revocations.list() }) },
  ];
}
