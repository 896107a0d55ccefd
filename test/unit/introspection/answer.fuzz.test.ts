/**
 * Introspection answers on arbitrary input (property-based): any status, media type and
 * body gives one of the three failure reasons or a principal, never a throw, and a
 * principal only for an answer that says `active: true` with `sub`, a future `exp`, an
 * access-token type and no other issuer. A fixed seed in the normal run; FUZZ_RUNS and
 * FUZZ_SEED run a longer campaign.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseClaimPath } from '../../../src/authz/claims.js';
import { readIntrospectionAnswer } from '../../../src/introspection/client.js';

const RUNS = Number.parseInt(process.env['FUZZ_RUNS'] ?? '', 10) || 2000;
const SEED = process.env['FUZZ_SEED'] ? Number.parseInt(process.env['FUZZ_SEED'], 10) : 42;
const LIMIT_MS = Math.max(15_000, RUNS * 3);

const NOW_SEC = 1_800_000_000;
const ISS = 'https://idp.example.com';
const issuer = { name: 'corp', issuer: ISS, claims: { subject: parseClaimPath('sub'), roles: parseClaimPath('roles'), scopes: parseClaimPath('scope'), groups: parseClaimPath('groups') } };

const member = fc.record(
  {
    active: fc.constantFrom<unknown>(true, false, 'true', 1, null),
    sub: fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.constant(null)),
    exp: fc.oneof(fc.integer({ min: NOW_SEC - 100, max: NOW_SEC + 100 }), fc.string({ maxLength: 4 }), fc.double()),
    iss: fc.constantFrom<unknown>(ISS, 'https://x', 5),
    token_type: fc.constantFrom<unknown>('Bearer', 'DPoP', 'dpop', 'refresh_token', 7),
    nbf: fc.integer({ min: NOW_SEC - 100, max: NOW_SEC + 100 }),
    roles: fc.jsonValue({ maxDepth: 2 }),
    scope: fc.jsonValue({ maxDepth: 1 }),
  },
  { requiredKeys: [] },
);

describe('readIntrospectionAnswer (property-based)', () => {
  it(
    'never throws, and admits only what RFC 7662 §2.2 and the gateway rules admit',
    () => {
      const body = fc.oneof(
        member.map((m) => JSON.stringify(m)),
        // A good answer with some members replaced: most stay good, some break one rule.
        member.map((m) => JSON.stringify({ active: true, sub: 'alice', exp: NOW_SEC + 50, token_type: 'Bearer', ...m })),
        fc.string({ maxLength: 200 }),
        fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
      );
      let admitted = 0;
      fc.assert(
        fc.property(fc.constantFrom(200, 200, 200, 401, 404, 500), fc.constantFrom('application/json', 'text/plain', null), body, (status, type, text) => {
          const r = readIntrospectionAnswer(status, type, text, { issuer, nowMs: NOW_SEC * 1000, clockToleranceSec: 0, requireTokenType: true });
          expect(['inactive', 'invalid_response', 'unavailable', undefined]).toContain(r.ok ? undefined : r.reason);
          if (r.ok) {
            const c = JSON.parse(text) as Record<string, unknown>;
            expect(status).toBe(200);
            expect(type).toBe('application/json');
            expect(c['active']).toBe(true);
            expect(typeof c['sub'] === 'string' && c['sub'].length > 0).toBe(true);
            expect(typeof c['exp'] === 'number' && c['exp'] > NOW_SEC).toBe(true);
            expect(['bearer', 'dpop']).toContain(String(c['token_type']).toLowerCase());
            expect(c['iss'] === undefined || c['iss'] === ISS).toBe(true);
            expect(c['nbf'] === undefined || (c['nbf'] as number) <= NOW_SEC).toBe(true);
            expect(r.principal.subject).toBe(c['sub']);
            admitted++;
          }
        }),
        { seed: SEED, numRuns: RUNS },
      );
      // The property above says something only if some answers were admitted.
      expect(admitted).toBeGreaterThan(0);
    },
    LIMIT_MS,
  );
});
