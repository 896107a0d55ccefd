/**
 * Issuer profiles: where each identity provider puts the subject, roles, scopes and
 * groups in its access tokens, and which of its `amr` / `acr` values mean "the user
 * passed MFA". Explicit issuer config (`claims:`, `mfa:`) overrides any value here, key
 * by key (src/config/load.ts `compileIssuer`). docs/issuer-profiles.md shows a sample
 * token per profile and the documentation each value comes from.
 *
 * The MFA evidence here only ever widens what counts as MFA for tokens of that issuer;
 * the RFC 8176 two-category rule and the route's `mfa.amr` / `mfa.acr` apply to every issuer.
 */
export type ProfileName = 'generic' | 'keycloak' | 'okta' | 'auth0' | 'entra';

export interface Profile {
  /** Dotted claim paths (nested look-ups; see claims.ts `claimAt`). */
  readonly claims: { readonly subject: string; readonly roles: string; readonly scopes: string; readonly groups: string };
  /** amr / acr values this IdP emits for a multi-factor login. */
  readonly mfa: { readonly amr: readonly string[]; readonly acr: readonly string[] };
}

const profile = (p: Profile): Profile =>
  Object.freeze({
    claims: Object.freeze({ ...p.claims }),
    mfa: Object.freeze({ amr: Object.freeze([...p.mfa.amr]), acr: Object.freeze([...p.mfa.acr]) }),
  });

export const PROFILES: Readonly<Record<ProfileName, Profile>> = Object.freeze({
  /** RFC 9068 §2.2 claim names; MFA from the route's `mfa:` and the two-category rule only. */
  generic: profile({
    claims: { subject: 'sub', roles: 'roles', scopes: 'scope', groups: 'groups' },
    mfa: { amr: [], acr: [] },
  }),

  /**
   * Realm roles at `realm_access.roles`, `scope` a space-separated string; groups only
   * with a Group Membership mapper (claim name chosen there, `groups` by convention).
   * Keycloak's `acr` is a level of authentication whose meaning is realm configuration
   * (ACR to LoA mapping, LoA conditions in the browser flow): `1` is a full login at the
   * first level, `0` an SSO-cookie login past that level's max age. Which level means
   * MFA cannot be known here, so no acr is implied: set `mfa.acr` (docs/issuer-profiles.md).
   * `amr` comes only from the AMR protocol mapper, with the reference values the realm
   * admin put on each authenticator.
   */
  keycloak: profile({
    claims: { subject: 'sub', roles: 'realm_access.roles', scopes: 'scope', groups: 'groups' },
    mfa: { amr: [], acr: [] },
  }),

  /**
   * Okta custom authorization server: `scp` is an array; Okta has no roles claim of its
   * own, so roles and groups both read the conventional custom `groups` claim. MFA:
   * Okta's predefined acr `urn:okta:loa:2fa:any` (any two factors). Not
   * `urn:okta:loa:2fa:any:ifpossible`, which falls back to one factor for a user without
   * a second one enrolled, nor `phr` / `phrh` (phishing resistance, not a factor count:
   * require them per route with `acr:`). `mfa` in `amr`, as Okta's ID tokens carry it.
   */
  okta: profile({
    claims: { subject: 'sub', roles: 'groups', scopes: 'scp', groups: 'groups' },
    mfa: { amr: ['mfa'], acr: ['urn:okta:loa:2fa:any'] },
  }),

  /**
   * Auth0 API with RBAC and "Add Permissions in the Access Token": `permissions` array;
   * `scope` a space-separated string. `groups` and `roles` are names Auth0 reserves, so
   * real group claims are namespaced custom claims: set `claims.groups`. MFA: Auth0 marks
   * an MFA login with `amr: ["mfa"]` and the PAPE multi-factor acr.
   */
  auth0: profile({
    claims: { subject: 'sub', roles: 'permissions', scopes: 'scope', groups: 'groups' },
    mfa: { amr: ['mfa'], acr: ['http://schemas.openid.net/pape/policies/2007/06/multi-factor'] },
  }),

  /**
   * Microsoft Entra ID: `roles` array (app roles), `scp` a space-separated string,
   * `groups` an array of object ids. `amr` (only in v1.0 access tokens) carries `mfa`, or
   * `ngcmfa` ("equivalent to mfa"). Not `rsa` (proof of an RSA key, also a service's
   * self-signed JWT), `wiaormfa` ("Windows or an MFA credential") or `fed`. Entra's `acr`
   * (`0` / `1`, v1.0 only) says nothing about MFA, so no acr is implied.
   */
  entra: profile({
    claims: { subject: 'sub', roles: 'roles', scopes: 'scp', groups: 'groups' },
    mfa: { amr: ['mfa', 'ngcmfa'], acr: [] },
  }),
});
