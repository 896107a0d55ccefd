/**
 * Issuer profiles: where each identity provider puts roles, scopes and groups, and
 * which of its `amr` / `acr` values mean "the user passed MFA". Explicit issuer config
 * (`claims:`, `mfa:`) overrides any value here.
 */
export type ProfileName = 'generic' | 'keycloak' | 'okta' | 'auth0' | 'entra';

export interface Profile {
  readonly claims: { readonly subject: string; readonly roles: string; readonly scopes: string; readonly groups: string };
  /** amr / acr values this IdP emits for a multi-factor login. */
  readonly mfa: { readonly amr: readonly string[]; readonly acr: readonly string[] };
}

export const PROFILES: Readonly<Record<ProfileName, Profile>> = Object.freeze({
  generic: { claims: { subject: 'sub', roles: 'roles', scopes: 'scope', groups: 'groups' }, mfa: { amr: [], acr: [] } },
  keycloak: {
    claims: { subject: 'sub', roles: 'realm_access.roles', scopes: 'scope', groups: 'groups' },
    mfa: { amr: [], acr: [] },
  },
  okta: { claims: { subject: 'sub', roles: 'groups', scopes: 'scp', groups: 'groups' }, mfa: { amr: [], acr: [] } },
  auth0: { claims: { subject: 'sub', roles: 'permissions', scopes: 'scope', groups: 'groups' }, mfa: { amr: [], acr: [] } },
  entra: { claims: { subject: 'sub', roles: 'roles', scopes: 'scp', groups: 'groups' }, mfa: { amr: [], acr: [] } },
});
