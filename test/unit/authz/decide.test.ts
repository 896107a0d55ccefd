import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { principalFrom, type Principal } from '../../../src/authz/claims.js';
import { ALLOW, decide, type Deny, type DenyReason } from '../../../src/authz/decide.js';
import { compileConfig } from '../../../src/config/load.js';
import type { CompiledIssuer, RoutePolicy } from '../../../src/config/state.js';

// The policies come from compileConfig, so the global `mfa` / route `mfa` merge and the
// issuer profile merge of src/config/load.ts are exercised, not re-typed here.
const NOW = 1_700_000_000;
const REALM = 'mfa-gateway';
const iss = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  issuer: `https://${name}.idp.example`,
  jwksUri: `https://${name}.idp.example/keys`,
  audience: ['api'],
  ...extra,
});
const config = compileConfig(
  {
    upstreams: { u: { url: 'http://127.0.0.1:1' } },
    issuers: [
      iss('corp', { claims: { roles: 'realm_access.roles' } }),
      iss('other'),
      iss('entra', { profile: 'entra' }),
      iss('okta', { profile: 'okta' }),
      iss('auth0', { profile: 'auth0' }),
      iss('keycloak', { profile: 'keycloak' }),
      iss('kc-gold', { profile: 'keycloak', mfa: { acr: ['gold'] } }),
      iss('kc-client', { profile: 'keycloak', claims: { roles: 'resource_access.orders-api.roles' } }),
      iss('entra-no-amr', { profile: 'entra', mfa: { amr: [] } }),
    ],
    mfa: { amr: ['mfa'], acr: ['urn:example:mfa'], maxAge: '1h' },
    routes: [
      { path: '/none/', upstream: 'u', auth: 'none' },
      { path: '/mfa/', upstream: 'u' },
      { path: '/plain/', upstream: 'u', mfa: { acr: [] } },
      { path: '/hwk/', upstream: 'u', mfa: { amr: ['hwk'] } },
      { path: '/refunds/', upstream: 'u', mfa: { maxAge: '5m' }, acr: ['phrh', 'phr'] },
      { path: '/token/', upstream: 'u', auth: 'token', roles: ['orders.reader'] },
      { path: '/rbac/', upstream: 'u', auth: 'token', roles: ['orders.reader'], scopes: ['orders:read'] },
      {
        path: '/orders/',
        upstream: 'u',
        issuers: ['corp'],
        roles: ['orders.reader', 'orders.admin'],
        scopes: ['orders:read', 'orders:write'],
        groups: ['ops', 'sre'],
      },
    ],
  },
  tmpdir(),
);

function policy(path: string): RoutePolicy {
  const r = config.routes.find((x) => x.path === path);
  if (!r) throw new Error(`no route ${path}`);
  return r.policy;
}
function issuer(name: string): CompiledIssuer {
  const i = config.issuers.find((x) => x.name === name);
  if (!i) throw new Error(`no issuer ${name}`);
  return i;
}

/** A token that passes every route for `corp`; rows patch it (undefined removes a claim). */
const BASE: Record<string, unknown> = {
  sub: 'alice',
  exp: NOW + 600,
  amr: ['pwd', 'otp'],
  auth_time: NOW - 60,
  realm_access: { roles: ['orders.reader'] },
  roles: ['orders.reader'],
  permissions: ['orders.reader'],
  scope: 'openid orders:read orders:write',
  scp: 'orders:read orders:write',
  groups: ['ops'],
};
function principal(issuerName: string, patch: Record<string, unknown> = {}): Principal {
  const payload: Record<string, unknown> = { iss: issuer(issuerName).issuer, ...BASE, ...patch };
  for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
  const p = principalFrom(payload, issuer(issuerName));
  if (typeof p === 'string') throw new Error(`the test payload was refused: ${p}`);
  return p;
}

const R = `Bearer realm="${REALM}"`;
const UA = `${R}, error="insufficient_user_authentication"`;
const MFA = 'error_description="Multi-factor authentication is required."';
const OLD = (s: number) => `error_description="The authentication is older than the ${s} seconds this route allows; a fresh authentication is required."`;
const NO_TIME = 'error_description="The access token does not say when the user authenticated (auth_time); a fresh authentication is required."';
const FUTURE = 'error_description="The authentication time (auth_time) is in the future; a fresh authentication is required."';
const STEP_UP = 'error_description="A stronger authentication is required (acr phrh or phr)."';
const SCOPE = `${R}, error="insufficient_scope"`;
const ROLES = 'error_description="The access token lacks a required role (one of orders.reader, orders.admin)."';
const ROLES_BAD = 'error_description="The roles claim of the access token is not a string or an array of strings."';
const GROUPS = 'error_description="The access token lacks a required group (one of ops, sre)."';
const GROUPS_BAD = 'error_description="The groups claim of the access token is not a string or an array of strings."';
const ISSUER = `${R}, error="invalid_token", error_description="Tokens from this issuer are not accepted on this route."`;

type Want = 'allow' | [status: 401 | 403, reason: DenyReason, challenge: string];
interface Row {
  name: string;
  route: string;
  issuer?: string;
  claims?: Record<string, unknown>;
  now?: number;
  want: Want;
}
const ua = (reason: DenyReason, challenge: string): Want => [401, reason, challenge];
const forbidden = (reason: DenyReason, challenge: string): Want => [403, reason, challenge];

const rows: Row[] = [
  // --- MFA from amr (RFC 8176) -------------------------------------------------------
  { name: 'amr mfa (global mfa.amr)', route: '/mfa/', claims: { amr: ['mfa'] }, want: 'allow' },
  { name: 'two categories: pwd + otp (know + have)', route: '/mfa/', claims: { amr: ['pwd', 'otp'] }, want: 'allow' },
  { name: 'two categories: pwd + fpt (know + are)', route: '/mfa/', claims: { amr: ['pwd', 'fpt'] }, want: 'allow' },
  { name: 'two categories: hwk + face (have + are)', route: '/mfa/', claims: { amr: ['hwk', 'face'] }, want: 'allow' },
  { name: 'two categories: kba + sc', route: '/mfa/', claims: { amr: ['kba', 'sc'] }, want: 'allow' },
  { name: 'pwd only', route: '/mfa/', claims: { amr: ['pwd'] }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  { name: 'pwd + pin: one category twice', route: '/mfa/', claims: { amr: ['pwd', 'pin'] }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  { name: 'otp + sms + hwk: one category thrice', route: '/mfa/', claims: { amr: ['otp', 'sms', 'hwk'] }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  { name: 'pwd + pop: pop names no category', route: '/mfa/', claims: { amr: ['pwd', 'pop'] }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  { name: 'amr values are case-sensitive', route: '/mfa/', claims: { amr: ['MFA', 'PWD', 'OTP'] }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  { name: 'empty amr', route: '/mfa/', claims: { amr: [] }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  { name: 'amr as a string counts as absent', route: '/mfa/', claims: { amr: 'mfa' }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  { name: 'amr with a non-string counts as absent', route: '/mfa/', claims: { amr: ['mfa', 1] }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  { name: 'amr absent', route: '/mfa/', claims: { amr: undefined }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  // --- MFA from acr --------------------------------------------------------------------
  { name: 'no amr, acr in global mfa.acr', route: '/mfa/', claims: { amr: undefined, acr: 'urn:example:mfa' }, want: 'allow' },
  { name: 'no amr, an acr that is not MFA', route: '/mfa/', claims: { amr: ['pwd'], acr: 'basic' }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  { name: 'route acr [] replaces global: no acr_values at all', route: '/plain/', claims: { amr: ['pwd'] }, want: ua('mfa_required', `${UA}, ${MFA}`) },
  { name: 'route acr [] replaces global: the global acr no longer counts', route: '/plain/', claims: { amr: undefined, acr: 'urn:example:mfa' }, want: ua('mfa_required', `${UA}, ${MFA}`) },
  // --- route mfa.amr replaces the global one; issuer evidence still counts -------------
  { name: 'route amr [hwk]: hwk alone is MFA there', route: '/hwk/', claims: { amr: ['hwk'] }, want: 'allow' },
  { name: 'route amr [hwk]: mfa no longer counts for a generic issuer', route: '/hwk/', claims: { amr: ['mfa'] }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  { name: 'route amr [hwk]: the entra profile still counts mfa', route: '/hwk/', issuer: 'entra', claims: { amr: ['mfa'] }, want: 'allow' },
  // --- auth_time against maxAge (global 1h, clock tolerance 30s) -----------------------
  { name: 'auth_time missing', route: '/mfa/', claims: { auth_time: undefined }, want: ua('auth_time_missing', `${UA}, ${NO_TIME}, acr_values="urn:example:mfa", max_age="3600"`) },
  { name: 'auth_time not a number', route: '/mfa/', claims: { auth_time: String(NOW) }, want: ua('auth_time_missing', `${UA}, ${NO_TIME}, acr_values="urn:example:mfa", max_age="3600"`) },
  { name: 'auth_time exactly maxAge old', route: '/mfa/', claims: { auth_time: NOW - 3600 }, want: 'allow' },
  { name: 'auth_time one second past maxAge', route: '/mfa/', claims: { auth_time: NOW - 3601 }, want: ua('auth_too_old', `${UA}, ${OLD(3600)}, acr_values="urn:example:mfa", max_age="3600"`) },
  { name: 'half a second past maxAge (fractional now)', route: '/mfa/', claims: { auth_time: NOW - 3600 }, now: NOW + 0.5, want: ua('auth_too_old', `${UA}, ${OLD(3600)}, acr_values="urn:example:mfa", max_age="3600"`) },
  { name: 'auth_time 30s ahead: within clock tolerance', route: '/mfa/', claims: { auth_time: NOW + 30 }, want: 'allow' },
  { name: 'auth_time 31s ahead: beyond clock tolerance', route: '/mfa/', claims: { auth_time: NOW + 31 }, want: ua('auth_too_old', `${UA}, ${FUTURE}, acr_values="urn:example:mfa", max_age="3600"`) },
  { name: 'too old, no acr alternatives: max_age only', route: '/plain/', claims: { auth_time: NOW - 4000 }, want: ua('auth_too_old', `${UA}, ${OLD(3600)}, max_age="3600"`) },
  // --- step-up route: mfa.maxAge 5m replaces 1h, acr [phrh, phr] required ---------------
  { name: 'step-up: phr, fresh', route: '/refunds/', claims: { acr: 'phr', auth_time: NOW - 300 }, want: 'allow' },
  { name: 'step-up: phrh', route: '/refunds/', claims: { acr: 'phrh' }, want: 'allow' },
  { name: 'step-up: maxAge 5m is max_age="300"', route: '/refunds/', claims: { acr: 'phr', auth_time: NOW - 301 }, want: ua('auth_too_old', `${UA}, ${OLD(300)}, acr_values="phrh phr", max_age="300"`) },
  { name: 'step-up: auth_time missing', route: '/refunds/', claims: { acr: 'phr', auth_time: undefined }, want: ua('auth_time_missing', `${UA}, ${NO_TIME}, acr_values="phrh phr", max_age="300"`) },
  { name: 'step-up: an acr that is not required', route: '/refunds/', claims: { acr: 'basic' }, want: ua('acr_insufficient', `${UA}, ${STEP_UP}, acr_values="phrh phr"`) },
  { name: 'step-up: the global MFA acr is not the required one', route: '/refunds/', claims: { acr: 'urn:example:mfa' }, want: ua('acr_insufficient', `${UA}, ${STEP_UP}, acr_values="phrh phr"`) },
  { name: 'step-up: acr missing', route: '/refunds/', claims: { acr: undefined }, want: ua('acr_insufficient', `${UA}, ${STEP_UP}, acr_values="phrh phr"`) },
  { name: 'step-up: required acr but no MFA; MFA is judged first', route: '/refunds/', claims: { acr: 'phrh', amr: ['hwk'] }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="phrh phr"`) },
  { name: 'a step-up acr is not required elsewhere', route: '/mfa/', claims: { acr: 'phr' }, want: 'allow' },
  // --- auth: token skips MFA, keeps RBAC ------------------------------------------------
  { name: 'token route: password only, no auth_time', route: '/token/', claims: { amr: ['pwd'], auth_time: undefined }, want: 'allow' },
  { name: 'token route: role missing', route: '/token/', claims: { amr: ['pwd'], realm_access: undefined, roles: ['billing'] }, want: forbidden('role_missing', `${SCOPE}, error_description="The access token lacks a required role (one of orders.reader)."`) },
  { name: 'none route: nothing is checked', route: '/none/', claims: { amr: undefined, roles: 1 }, want: 'allow' },
  // --- issuers on the route -------------------------------------------------------------
  { name: 'issuer allowed on the route', route: '/orders/', issuer: 'corp', want: 'allow' },
  { name: 'issuer not allowed on the route', route: '/orders/', issuer: 'other', want: [401, 'issuer_not_allowed', ISSUER] },
  { name: 'issuer is judged before MFA', route: '/orders/', issuer: 'other', claims: { amr: ['pwd'] }, want: [401, 'issuer_not_allowed', ISSUER] },
  // --- roles (any-of) at realm_access.roles ---------------------------------------------
  { name: 'roles: the second of two', route: '/orders/', claims: { realm_access: { roles: ['x', 'orders.admin'] } }, want: 'allow' },
  { name: 'roles: a single string counts as one value', route: '/orders/', claims: { realm_access: { roles: 'orders.reader' } }, want: 'allow' },
  { name: 'roles: none of them', route: '/orders/', claims: { realm_access: { roles: ['billing'] } }, want: forbidden('role_missing', `${SCOPE}, ${ROLES}`) },
  { name: 'roles: claim absent', route: '/orders/', claims: { realm_access: undefined }, want: forbidden('role_missing', `${SCOPE}, ${ROLES}`) },
  { name: 'roles: a number denies', route: '/orders/', claims: { realm_access: { roles: 42 } }, want: forbidden('role_missing', `${SCOPE}, ${ROLES_BAD}`) },
  { name: 'roles: an array with a non-string denies', route: '/orders/', claims: { realm_access: { roles: ['orders.reader', null] } }, want: forbidden('role_missing', `${SCOPE}, ${ROLES_BAD}`) },
  { name: 'roles: an object denies', route: '/orders/', claims: { realm_access: { roles: { 0: 'orders.reader' } } }, want: forbidden('role_missing', `${SCOPE}, ${ROLES_BAD}`) },
  { name: 'roles: realm_access an array is no nesting', route: '/orders/', claims: { realm_access: [{ roles: ['orders.reader'] }] }, want: forbidden('role_missing', `${SCOPE}, ${ROLES}`) },
  {
    name: 'roles: a top-level key literally named realm_access.roles never matches',
    route: '/orders/',
    claims: { realm_access: undefined, 'realm_access.roles': ['orders.reader'] },
    want: forbidden('role_missing', `${SCOPE}, ${ROLES}`),
  },
  { name: 'roles: a malformed claim denies nothing on a route without roles', route: '/mfa/', claims: { realm_access: { roles: 42 }, groups: 7, scope: 9 }, want: 'allow' },
  // --- scopes (all-of) -----------------------------------------------------------------
  { name: 'scopes: one of two missing', route: '/orders/', claims: { scope: 'openid orders:read' }, want: forbidden('scope_missing', `${SCOPE}, error_description="The access token lacks the required scope orders:write.", scope="orders:write"`) },
  { name: 'scopes: both missing', route: '/orders/', claims: { scope: 'openid' }, want: forbidden('scope_missing', `${SCOPE}, error_description="The access token lacks the required scopes orders:read orders:write.", scope="orders:read orders:write"`) },
  { name: 'scopes: claim absent', route: '/orders/', claims: { scope: undefined }, want: forbidden('scope_missing', `${SCOPE}, error_description="The access token lacks the required scopes orders:read orders:write.", scope="orders:read orders:write"`) },
  { name: 'scopes: a number denies', route: '/orders/', claims: { scope: 7 }, want: forbidden('scope_missing', `${SCOPE}, error_description="The access token lacks the required scopes orders:read orders:write.", scope="orders:read orders:write"`) },
  { name: 'scopes: an array', route: '/orders/', claims: { scope: ['orders:write', 'orders:read'] }, want: 'allow' },
  { name: 'scopes: extra spaces', route: '/orders/', claims: { scope: ' orders:read   orders:write ' }, want: 'allow' },
  { name: 'scopes: no prefix matching', route: '/orders/', claims: { scope: 'orders:read orders:writer' }, want: forbidden('scope_missing', `${SCOPE}, error_description="The access token lacks the required scope orders:write.", scope="orders:write"`) },
  // --- groups (any-of) -----------------------------------------------------------------
  { name: 'groups: the second of two', route: '/orders/', claims: { groups: ['sre'] }, want: 'allow' },
  { name: 'groups: a single string', route: '/orders/', claims: { groups: 'ops' }, want: 'allow' },
  { name: 'groups: empty', route: '/orders/', claims: { groups: [] }, want: forbidden('group_missing', `${SCOPE}, ${GROUPS}`) },
  { name: 'groups: wrong type denies', route: '/orders/', claims: { groups: [1] }, want: forbidden('group_missing', `${SCOPE}, ${GROUPS_BAD}`) },
  // --- order inside the decision -------------------------------------------------------
  { name: 'roles are judged before scopes', route: '/orders/', claims: { realm_access: { roles: [] }, scope: '' }, want: forbidden('role_missing', `${SCOPE}, ${ROLES}`) },
  { name: 'scopes are judged before groups', route: '/orders/', claims: { scope: 'orders:read', groups: [] }, want: forbidden('scope_missing', `${SCOPE}, error_description="The access token lacks the required scope orders:write.", scope="orders:write"`) },
  { name: 'MFA (401) is judged before roles (403)', route: '/orders/', claims: { amr: ['pwd'], realm_access: { roles: [] } }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  // --- issuer profiles: MFA evidence ---------------------------------------------------
  { name: 'entra: ngcmfa is MFA', route: '/mfa/', issuer: 'entra', claims: { amr: ['ngcmfa'] }, want: 'allow' },
  { name: 'generic: ngcmfa is not MFA', route: '/mfa/', issuer: 'other', claims: { amr: ['ngcmfa'] }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  { name: 'entra: pwd + rsa (Authenticator) with mfa', route: '/mfa/', issuer: 'entra', claims: { amr: ['pwd', 'rsa', 'mfa'] }, want: 'allow' },
  { name: 'entra: rsa alone is not MFA', route: '/mfa/', issuer: 'entra', claims: { amr: ['rsa'] }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  { name: 'entra: wiaormfa is not MFA', route: '/mfa/', issuer: 'entra', claims: { amr: ['wiaormfa'] }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  { name: 'entra: acr "1" is not MFA', route: '/mfa/', issuer: 'entra', claims: { amr: ['pwd'], acr: '1' }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  { name: 'entra with mfa.amr [] overriding the profile: ngcmfa no longer counts', route: '/mfa/', issuer: 'entra-no-amr', claims: { amr: ['ngcmfa'] }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  { name: 'okta: urn:okta:loa:2fa:any is MFA', route: '/mfa/', issuer: 'okta', claims: { amr: undefined, acr: 'urn:okta:loa:2fa:any' }, want: 'allow' },
  { name: 'generic: urn:okta:loa:2fa:any is not MFA', route: '/mfa/', issuer: 'other', claims: { amr: undefined, acr: 'urn:okta:loa:2fa:any' }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  { name: 'okta: 2fa:any:ifpossible may be one factor', route: '/mfa/', issuer: 'okta', claims: { amr: undefined, acr: 'urn:okta:loa:2fa:any:ifpossible' }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  { name: 'okta: 1fa:any is not MFA', route: '/mfa/', issuer: 'okta', claims: { amr: undefined, acr: 'urn:okta:loa:1fa:any' }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  {
    name: 'auth0: the PAPE multi-factor acr is MFA',
    route: '/mfa/',
    issuer: 'auth0',
    claims: { amr: undefined, acr: 'http://schemas.openid.net/pape/policies/2007/06/multi-factor' },
    want: 'allow',
  },
  {
    name: 'generic: the PAPE multi-factor acr is not MFA',
    route: '/mfa/',
    issuer: 'other',
    claims: { amr: undefined, acr: 'http://schemas.openid.net/pape/policies/2007/06/multi-factor' },
    want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`),
  },
  { name: 'auth0: amr [mfa]', route: '/mfa/', issuer: 'auth0', claims: { amr: ['mfa'] }, want: 'allow' },
  { name: 'keycloak: acr "1" (first level) is not MFA', route: '/mfa/', issuer: 'keycloak', claims: { amr: undefined, acr: '1' }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  { name: 'keycloak: "gold" only counts where mfa.acr says so', route: '/mfa/', issuer: 'keycloak', claims: { amr: undefined, acr: 'gold' }, want: ua('mfa_required', `${UA}, ${MFA}, acr_values="urn:example:mfa"`) },
  { name: 'keycloak with mfa.acr [gold]: gold is MFA', route: '/mfa/', issuer: 'kc-gold', claims: { amr: undefined, acr: 'gold' }, want: 'allow' },
  // --- issuer profiles: claim paths ----------------------------------------------------
  { name: 'entra: roles array, scp space-separated', route: '/rbac/', issuer: 'entra', claims: { roles: ['orders.reader'], scp: 'orders:read', scope: undefined }, want: 'allow' },
  { name: 'entra: scopes are read from scp, not scope', route: '/rbac/', issuer: 'entra', claims: { scp: undefined }, want: forbidden('scope_missing', `${SCOPE}, error_description="The access token lacks the required scope orders:read.", scope="orders:read"`) },
  { name: 'okta: roles from groups, scp an array', route: '/rbac/', issuer: 'okta', claims: { groups: ['orders.reader'], roles: undefined, scp: ['openid', 'orders:read'] }, want: 'allow' },
  { name: 'auth0: roles from permissions', route: '/rbac/', issuer: 'auth0', claims: { roles: undefined, permissions: ['orders.reader'] }, want: 'allow' },
  { name: 'auth0: a top-level roles claim is not read', route: '/rbac/', issuer: 'auth0', claims: { roles: ['orders.reader'], permissions: ['x'] }, want: forbidden('role_missing', `${SCOPE}, error_description="The access token lacks a required role (one of orders.reader)."`) },
  { name: 'keycloak: realm_access.roles by default', route: '/rbac/', issuer: 'keycloak', claims: { roles: undefined }, want: 'allow' },
  {
    name: 'keycloak with claims.roles override: client roles, realm roles ignored',
    route: '/rbac/',
    issuer: 'kc-client',
    claims: { resource_access: { 'orders-api': { roles: ['orders.reader'] } }, realm_access: { roles: [] } },
    want: 'allow',
  },
  {
    name: 'keycloak with claims.roles override: realm roles no longer count',
    route: '/rbac/',
    issuer: 'kc-client',
    claims: { resource_access: { 'other-api': { roles: ['orders.reader'] } } },
    want: forbidden('role_missing', `${SCOPE}, error_description="The access token lacks a required role (one of orders.reader)."`),
  },
];

describe('decide: the table', () => {
  it.each(rows.map((r) => [r.name, r] as const))('%s', (_name, row) => {
    const d = decide(principal(row.issuer ?? 'corp', row.claims), policy(row.route), issuer(row.issuer ?? 'corp'), row.now ?? NOW, REALM);
    if (row.want === 'allow') {
      expect(d).toBe(ALLOW);
      return;
    }
    const [status, reason, challenge] = row.want;
    expect(d.allow).toBe(false);
    const deny = d as Deny;
    expect({ status: deny.status, reason: deny.reason, challenge: deny.challenge }).toEqual({ status, reason, challenge });
    expect(deny.error).toBe(status === 403 ? 'insufficient_scope' : reason === 'issuer_not_allowed' ? 'invalid_token' : 'insufficient_user_authentication');
    // The challenge's error_description is the body's error_description.
    expect(challenge).toContain(`error_description="${deny.description}"`);
  });

  it('covers every deny reason', () => {
    const seen = new Set(rows.flatMap((r) => (r.want === 'allow' ? [] : [r.want[1]])));
    const all: DenyReason[] = ['issuer_not_allowed', 'mfa_required', 'acr_insufficient', 'auth_too_old', 'auth_time_missing', 'role_missing', 'scope_missing', 'group_missing'];
    expect([...seen].sort()).toEqual([...all].sort());
  });
});

describe('decide: what the table cannot show', () => {
  it('returns the one frozen ALLOW object on every allow', () => {
    expect(Object.isFrozen(ALLOW)).toBe(true);
    expect(ALLOW).toEqual({ allow: true });
    const a = decide(principal('corp'), policy('/orders/'), issuer('corp'), NOW, REALM);
    const b = decide(principal('okta', { acr: 'urn:okta:loa:2fa:any' }), policy('/mfa/'), issuer('okta'), NOW, REALM);
    expect(a).toBe(ALLOW);
    expect(b).toBe(ALLOW);
  });

  it('answers auth: none without looking at the token', () => {
    const empty = principal('other', { amr: undefined, auth_time: undefined, realm_access: undefined, scope: undefined });
    expect(decide(empty, policy('/none/'), issuer('other'), NOW, REALM)).toBe(ALLOW);
  });

  it('builds a deny once per (policy, reason) and hands out the same frozen object', () => {
    const p = policy('/refunds/');
    const d1 = decide(principal('corp', { acr: 'basic' }), p, issuer('corp'), NOW, REALM);
    const d2 = decide(principal('entra', { acr: 'other' }), p, issuer('entra'), NOW + 5, REALM);
    expect(d1.allow).toBe(false);
    expect(d2).toBe(d1);
    expect(Object.isFrozen(d1)).toBe(true);
    const scope1 = decide(principal('corp', { scope: 'orders:read' }), policy('/orders/'), issuer('corp'), NOW, REALM);
    const scope2 = decide(principal('corp', { scope: 'orders:read openid' }), policy('/orders/'), issuer('corp'), NOW, REALM);
    const scope3 = decide(principal('corp', { scope: 'orders:write' }), policy('/orders/'), issuer('corp'), NOW, REALM);
    expect(scope2).toBe(scope1);
    expect(scope3).not.toBe(scope1);
    expect((scope3 as Deny).challenge).toContain('scope="orders:read"');
  });

  it('keeps the realm of the call: a different realm gets its own challenge', () => {
    const d = decide(principal('corp', { amr: ['pwd'] }), policy('/mfa/'), issuer('corp'), NOW, 'other realm');
    expect((d as Deny).challenge).toBe(`Bearer realm="other realm", error="insufficient_user_authentication", ${MFA}, acr_values="urn:example:mfa"`);
    const again = decide(principal('corp', { amr: ['pwd'] }), policy('/mfa/'), issuer('corp'), NOW, REALM);
    expect((again as Deny).challenge).toBe(`${UA}, ${MFA}, acr_values="urn:example:mfa"`);
  });

  it('is judged per request: a cached principal grows too old between two calls', () => {
    const p = principal('corp', { acr: 'phr', auth_time: NOW - 200 });
    expect(decide(p, policy('/refunds/'), issuer('corp'), NOW, REALM)).toBe(ALLOW);
    expect(decide(p, policy('/refunds/'), issuer('corp'), NOW + 101, REALM)).toMatchObject({ allow: false, reason: 'auth_too_old' });
    // The 1h route still accepts it.
    expect(decide(p, policy('/mfa/'), issuer('corp'), NOW + 101, REALM)).toBe(ALLOW);
  });

  it('compiles route mfa keys over the global ones, key by key', () => {
    expect(policy('/refunds/').mfa).toEqual({ amr: ['mfa'], acr: ['urn:example:mfa'], maxAgeSec: 300 });
    expect(policy('/refunds/').requiredAcr).toEqual(['phrh', 'phr']);
    expect(policy('/hwk/').mfa).toEqual({ amr: ['hwk'], acr: ['urn:example:mfa'], maxAgeSec: 3600 });
    expect(policy('/plain/').mfa).toEqual({ amr: ['mfa'], acr: [], maxAgeSec: 3600 });
  });

  it('names no token content in any description', () => {
    const secret = 'S3CRET-VALUE';
    const cases: Array<[string, Record<string, unknown>]> = [
      ['/mfa/', { amr: [secret], acr: secret }],
      ['/orders/', { realm_access: { roles: [secret] } }],
      ['/orders/', { scope: secret }],
      ['/orders/', { groups: [secret] }],
      ['/refunds/', { acr: secret }],
    ];
    for (const [route, claims] of cases) {
      const d = decide(principal('corp', { sub: secret, ...claims }), policy(route), issuer('corp'), NOW, REALM) as Deny;
      expect(d.allow).toBe(false);
      expect(d.challenge).not.toContain(secret);
      expect(d.description).not.toContain(secret);
    }
  });
});
