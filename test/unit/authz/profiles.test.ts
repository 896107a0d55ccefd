import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { PROFILES, type ProfileName } from '../../../src/authz/profiles.js';
import { compileConfig } from '../../../src/config/load.js';

function compileIssuer(extra: Record<string, unknown>) {
  const c = compileConfig(
    {
      upstreams: { u: { url: 'http://127.0.0.1:1' } },
      issuers: [{ name: 'i', issuer: 'https://idp.example', jwksUri: 'https://idp.example/keys', audience: ['api'], ...extra }],
      routes: [{ path: '/', upstream: 'u' }],
    },
    tmpdir(),
  );
  return c.issuers[0]!;
}

describe('issuer profiles', () => {
  it.each<[ProfileName, { subject: string[]; roles: string[]; scopes: string[]; groups: string[] }, { amr: string[]; acr: string[] }]>([
    ['generic', { subject: ['sub'], roles: ['roles'], scopes: ['scope'], groups: ['groups'] }, { amr: [], acr: [] }],
    ['keycloak', { subject: ['sub'], roles: ['realm_access', 'roles'], scopes: ['scope'], groups: ['groups'] }, { amr: [], acr: [] }],
    ['okta', { subject: ['sub'], roles: ['groups'], scopes: ['scp'], groups: ['groups'] }, { amr: ['mfa'], acr: ['urn:okta:loa:2fa:any'] }],
    [
      'auth0',
      { subject: ['sub'], roles: ['permissions'], scopes: ['scope'], groups: ['groups'] },
      { amr: ['mfa'], acr: ['http://schemas.openid.net/pape/policies/2007/06/multi-factor'] },
    ],
    ['entra', { subject: ['sub'], roles: ['roles'], scopes: ['scp'], groups: ['groups'] }, { amr: ['mfa', 'ngcmfa'], acr: [] }],
  ])('%s: claim paths and MFA evidence as compiled', (profile, claims, mfa) => {
    const issuer = compileIssuer({ profile });
    expect(issuer.profile).toBe(profile);
    expect(issuer.claims).toEqual(claims);
    expect(issuer.mfaEvidence).toEqual(mfa);
  });

  it('defaults to generic', () => {
    expect(compileIssuer({}).profile).toBe('generic');
    expect(compileIssuer({}).mfaEvidence).toEqual({ amr: [], acr: [] });
  });

  it('lets explicit claims: and mfa: override the profile key by key', () => {
    const issuer = compileIssuer({
      profile: 'entra',
      claims: { subject: 'oid', groups: 'wids' },
      mfa: { acr: ['c1'] },
    });
    expect(issuer.claims).toEqual({ subject: ['oid'], roles: ['roles'], scopes: ['scp'], groups: ['wids'] });
    // amr not given: the profile's stays; acr given: it replaces the profile's.
    expect(issuer.mfaEvidence).toEqual({ amr: ['mfa', 'ngcmfa'], acr: ['c1'] });
    expect(compileIssuer({ profile: 'okta', mfa: { amr: [] } }).mfaEvidence).toEqual({ amr: [], acr: ['urn:okta:loa:2fa:any'] });
  });

  it('is frozen all the way down', () => {
    expect(Object.isFrozen(PROFILES)).toBe(true);
    for (const p of Object.values(PROFILES)) {
      expect(Object.isFrozen(p.claims)).toBe(true);
      expect(Object.isFrozen(p.mfa.amr)).toBe(true);
      expect(Object.isFrozen(p.mfa.acr)).toBe(true);
    }
  });
});
