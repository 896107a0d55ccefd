/**
 * Keys, the JWKS file the gateway reads (`issuers[].jwksFile`) and token minting for
 * the bench. Tokens look like a Keycloak access token (about 1.2 KB), because token
 * length is part of the cost a cache hit pays: the cache key is the token string.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';

export const ISSUER = 'https://idp.bench.invalid/realms/bench';
export const AUDIENCE = 'bench-api';
export const ROLE = 'bench.user';
export const SCOPE = 'bench:read';
export const ALGORITHMS = /** @type {const} */ (['RS256', 'ES256', 'EdDSA']);
/** Each algorithm's key id in the JWKS file. */
export const KID = Object.freeze(Object.fromEntries(ALGORITHMS.map((alg) => [alg, `bench-${alg.toLowerCase()}`])));

/**
 * Generates one signing key per algorithm and writes their public halves as a JWKS
 * file (each key with `kid`, `alg` and `use`).
 * @param {string} jwksFile
 * @returns {Promise<Record<string, { kid: string, alg: string, privateKey: CryptoKey }>>}
 */
export async function createKeys(jwksFile) {
  const keys = {};
  const jwks = { keys: [] };
  for (const alg of ALGORITHMS) {
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
    const kid = KID[alg];
    jwks.keys.push({ ...(await exportJWK(publicKey)), kid, alg, use: 'sig' });
    keys[alg] = { kid, alg, privateKey };
  }
  writeFileSync(jwksFile, `${JSON.stringify(jwks, null, 2)}\n`);
  return keys;
}

/**
 * The claims of a realistic access token. `amr` decides MFA (RFC 8176 §2: `pwd` is a
 * "know" factor, `otp` a "have" factor, so both together are multi-factor).
 */
export function claims({ amr = ['pwd', 'otp'], nowSec = Math.floor(Date.now() / 1000) } = {}) {
  const sub = randomUUID();
  return {
    auth_time: nowSec - 60,
    jti: randomUUID(),
    typ: 'Bearer',
    azp: 'bench-client',
    sid: randomUUID(),
    acr: '1',
    amr,
    'allowed-origins': ['https://app.bench.invalid'],
    realm_access: { roles: [ROLE, 'offline_access', 'uma_authorization', 'default-roles-bench'] },
    resource_access: { account: { roles: ['manage-account', 'manage-account-links', 'view-profile'] } },
    scope: `openid profile email ${SCOPE}`,
    email_verified: true,
    name: 'Bench User',
    preferred_username: `bench-${sub.slice(0, 8)}`,
    given_name: 'Bench',
    family_name: 'User',
    email: `bench-${sub.slice(0, 8)}@bench.invalid`,
    sub,
  };
}

/**
 * Signs one token with jose `SignJWT` (RFC 9068 shape: iss, aud, exp, iat, sub).
 * @param {{ kid: string, alg: string, privateKey: CryptoKey }} key
 * @param {{ amr?: string[], ttlSec?: number }} [options]
 * @returns {Promise<string>}
 */
export function mint(key, options = {}) {
  const nowSec = Math.floor(Date.now() / 1000);
  return new SignJWT(claims({ amr: options.amr, nowSec }))
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt(nowSec)
    .setExpirationTime(nowSec + (options.ttlSec ?? 3600))
    .sign(key.privateKey);
}

/**
 * Mints `count` distinct tokens. jose signs through WebCrypto, whose jobs run on the
 * libuv thread pool, so a bounded number in flight uses every core.
 * @returns {Promise<string[]>}
 */
export async function mintMany(key, count, options = {}) {
  const out = new Array(count);
  const inFlight = 64;
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      out[i] = await mint(key, options);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, lane));
  return out;
}

/** A token whose signature no longer matches: one signature character changed. */
export function breakSignature(token) {
  const dot = token.lastIndexOf('.');
  const at = dot + 1 + Math.floor((token.length - dot - 1) / 2);
  const c = token[at] === 'A' ? 'B' : 'A';
  return token.slice(0, at) + c + token.slice(at + 1);
}

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/**
 * A never-seen garbage token that still costs a full signature check: a real header
 * (known `kid`, allowed `alg`), plausible claims with a random `jti`, and random
 * signature bytes of the right length. What a credential-spraying client sends to
 * defeat a negative cache.
 * @param {{ kid: string, alg: string }} key
 */
export function garbageToken(key, template) {
  const sigBytes = key.alg === 'RS256' ? 256 : 64;
  return `${template.header}.${b64({ ...template.payload, jti: randomBytes(12).toString('hex') })}.${randomBytes(sigBytes).toString('base64url')}`;
}

/** The fixed parts of `garbageToken()`, computed once. */
export function garbageTemplate(key) {
  const nowSec = Math.floor(Date.now() / 1000);
  return {
    header: b64({ alg: key.alg, kid: key.kid, typ: 'JWT' }),
    payload: { ...claims({ nowSec }), iss: ISSUER, aud: AUDIENCE, iat: nowSec, exp: nowSec + 3600 },
  };
}
