import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { calculateJwkThumbprint, createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import {
  DEMO_CLI,
  DEMO_TOTP_SECRET,
  TokenFlowError,
  TotpClock,
  callGateway,
  constants,
  dpopKeyPair,
  dpopProof,
  fetchToken,
  jwtPayload,
  logoutAtIdp,
  startDemoIdp,
  startDemoStack,
  tour,
} from './helpers.js';
import { recordOutput, recordToken } from '../leaks.js';

// The demo without a browser: the IdP's real discovery, keys and tokens, the token
// helper driving the login pages over HTTP, the printed tour checked step by step
// against the running demo, and the `token` command of the built CLI.
type Stack = Awaited<ReturnType<typeof startDemoStack>>;
let demo: Stack;
const clock = new TotpClock();
const alice = { username: 'alice', password: 'wonderland', totpSecret: DEMO_TOTP_SECRET };

beforeAll(async () => {
  demo = await startDemoStack({ audit: false, now: clock.now });
});
afterAll(async () => {
  await demo?.close();
});

async function mfaToken(extra: { authAgeSec?: number } = {}) {
  clock.nextStep();
  return fetchToken({ issuer: demo.idp.issuer, ...alice, secondFactor: 'otp', now: clock.now, ...extra });
}

describe('demo identity provider', () => {
  it('publishes OIDC discovery with PKCE S256, the resource server and a JWKS', async () => {
    const meta = (await (await fetch(`${demo.idp.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(meta['issuer']).toBe(demo.idp.issuer);
    expect(meta['code_challenge_methods_supported']).toEqual(['S256']);
    expect(meta['acr_values_supported']).toEqual([constants.ACR_PWD, constants.ACR_MFA]);
    const jwks = (await (await fetch(String(meta['jwks_uri']))).json()) as { keys: Record<string, unknown>[] };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });
    // Never the private parts.
    expect(jwks.keys[0]).not.toHaveProperty('d');
  });

  it('serves its pages without caching, framing or scripts', async () => {
    const res = await fetch(`${demo.idp.issuer}/app/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('content-security-policy')).toMatch(/default-src 'none'.*form-action 'self'.*frame-ancestors 'none'/);
    expect(await res.text()).not.toContain('<script');
    // A page of a login attempt that does not exist (no interaction cookie) says so.
    const stale = await fetch(`${demo.idp.issuer}/interaction/nope`);
    expect(stale.status).toBe(400);
    expect(await stale.text()).toContain('unknown or has expired');
  });

  it('issues an RFC 9068 access token with amr ["pwd","otp"], acr, auth_time and roles after password + TOTP', async () => {
    const before = Math.floor(Date.now() / 1000);
    const { accessToken } = await mfaToken();
    expect(decodeProtectedHeader(accessToken)).toMatchObject({ alg: 'RS256', typ: 'at+jwt' });
    // The signature checks out against the published keys, with the claims RFC 9068 §2.2 requires.
    const { payload } = await jwtVerify(accessToken, createRemoteJWKSet(new URL(`${demo.idp.issuer}/jwks`)), {
      issuer: demo.idp.issuer,
      audience: constants.DEMO_AUDIENCE,
      typ: 'at+jwt',
      requiredClaims: ['exp', 'iat', 'jti', 'sub', 'client_id'],
    });
    expect(payload).toMatchObject({ sub: 'alice', amr: ['pwd', 'otp'], acr: constants.ACR_MFA, roles: ['reader', 'admin'], scope: 'api:read' });
    expect(payload['auth_time']).toBeGreaterThanOrEqual(before);
    expect(payload['auth_time']).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
  });

  it('issues amr ["pwd"] when the second factor is skipped, and for an account without one', async () => {
    const skipped = await fetchToken({ issuer: demo.idp.issuer, ...alice, secondFactor: 'skip' });
    expect(skipped.claims).toMatchObject({ sub: 'alice', amr: ['pwd'], acr: constants.ACR_PWD });
    const bob = await fetchToken({ issuer: demo.idp.issuer, username: 'bob', password: 'builder', secondFactor: 'skip' });
    expect(bob.claims).toMatchObject({ sub: 'bob', amr: ['pwd'], roles: ['reader'] });
    await expect(fetchToken({ issuer: demo.idp.issuer, username: 'bob', password: 'builder', secondFactor: 'otp' })).rejects.toMatchObject({
      code: 'otp_failed',
    });
  });

  it('back-dates auth_time only by what the login form asked for', async () => {
    const { claims } = await mfaToken({ authAgeSec: 600 });
    const age = Math.floor(Date.now() / 1000) - Number(claims['auth_time']);
    expect(age).toBeGreaterThanOrEqual(600);
    expect(age).toBeLessThan(700);
  });

  it('refuses a wrong password and a skipped second factor when acr_values asks for MFA', async () => {
    const wrong = fetchToken({ issuer: demo.idp.issuer, ...alice, password: 'nope', secondFactor: 'skip' });
    await expect(wrong).rejects.toBeInstanceOf(TokenFlowError);
    await expect(wrong).rejects.toMatchObject({ code: 'bad_credentials' });
    const skip = fetchToken({ issuer: demo.idp.issuer, ...alice, secondFactor: 'skip', acrValues: constants.ACR_MFA });
    await expect(skip).rejects.toMatchObject({ code: 'otp_failed', message: expect.stringContaining('must use the second factor') });
  });

  it('accepts a TOTP code once (RFC 6238 §5.2): a third login in one time step waits for the next step', async () => {
    // An IdP of its own, so this test's clock and replay state are its own.
    const t = new TotpClock();
    const idp = await startDemoIdp({ now: t.now });
    try {
      const waits: number[] = [];
      const opts = {
        issuer: idp.issuer,
        ...alice,
        secondFactor: 'otp' as const,
        now: t.now,
        sleep: async (ms: number) => {
          waits.push(ms);
          t.t += ms;
        },
      };
      await fetchToken(opts); // the current step's code
      await fetchToken(opts); // already used: the next step's code (one step of drift is allowed)
      expect(waits).toEqual([]);
      const third = await fetchToken(opts); // both used: wait for the next step
      expect(waits).toHaveLength(1);
      expect(waits[0]).toBeGreaterThan(0);
      expect(waits[0]).toBeLessThanOrEqual(30_250);
      expect(third.claims['amr']).toEqual(['pwd', 'otp']);
    } finally {
      await idp.close();
    }
  });
});

describe('the printed tour', () => {
  it('prints working commands with the demo ports and an otpauth URI', () => {
    const text = tour.tourText({
      gatewayUrl: 'http://127.0.0.1:8080',
      adminUrl: 'http://127.0.0.1:9901',
      issuer: 'http://127.0.0.1:9000',
      upstreamUrl: 'http://127.0.0.1:3001',
      tokenCommand: 'node dist/demo/cli.js token',
      totpUri: 'otpauth://totp/x',
    });
    expect(text).toContain('PW=$(node dist/demo/cli.js token --pwd)\n');
    expect(text).toContain('MFA=$(node dist/demo/cli.js token --mfa)\n');
    expect(text).toContain('OLD=$(node dist/demo/cli.js token --mfa --auth-age 10m)\n');
    expect(text).toContain('curl -si http://127.0.0.1:8080/api/hello\n');
    expect(text).toContain('curl -s -H "Authorization: Bearer $MFA" http://127.0.0.1:8080/api/hello\n');
    expect(text).toContain('{ read -r DPOP; read -r PROOF; } < <(node dist/demo/cli.js token --pwd --dpop --url http://127.0.0.1:8080/reports/summary)\n');
    expect(text).toContain('curl -s -H "Authorization: DPoP $DPOP" -H "DPoP: $PROOF" http://127.0.0.1:8080/reports/summary\n');
    expect(text).toContain('node dist/demo/cli.js logout "$MFA"\n');
    expect(text).toContain('otpauth://totp/x');
    // Tour variables are plain names, never a shell's own (PWD, HOME, PATH… would break the commands).
    for (const name of Object.keys(tour.TOKEN_FLAGS)) expect(['PWD', 'HOME', 'PATH', 'USER', 'SHELL', 'IFS', 'PS1']).not.toContain(name);
    // Another IdP port is passed to the token command.
    expect(tour.tokenCommandLine({ tokenCommand: 't', issuer: 'http://127.0.0.1:9100' }, 'MFA')).toBe('t --mfa --idp http://127.0.0.1:9100');
  });

  it('every step answers what the tour says it answers', async () => {
    const key = dpopKeyPair();
    const bound = await fetchToken({ issuer: demo.idp.issuer, ...alice, secondFactor: 'skip', dpop: key });
    expect(bound.tokenType).toBe('DPoP');
    const tokens = {
      PW: (await fetchToken({ issuer: demo.idp.issuer, ...alice, secondFactor: 'skip' })).accessToken,
      MFA: (await mfaToken()).accessToken,
      OLD: (await mfaToken({ authAgeSec: 600 })).accessToken,
      DPOP: bound.accessToken,
    };
    // The one proof the token command prints with the token; the tour sends it twice.
    const dpopStep = tour.TOUR_STEPS.find((s) => s.token === 'DPOP')!;
    const proof = dpopProof(key, 'GET', `${demo.gatewayUrl}${dpopStep.path}`, bound.accessToken);
    expect(tour.TOUR_STEPS.length).toBeGreaterThanOrEqual(9);
    for (const step of tour.TOUR_STEPS) {
      if (step.logoutFirst) await logoutAtIdp(demo.idp.issuer, tokens[step.token as 'MFA']);
      const r = await callGateway(demo.gatewayUrl, step.path, step.token === 'none' ? undefined : tokens[step.token], step.token === 'DPOP' ? { proof } : undefined);
      expect(r.status, `${step.title}: ${r.text}`).toBe(step.status);
      if (step.challenge) {
        expect(r.challenge, step.title).toBeDefined();
        let from = 0;
        for (const piece of step.challenge) {
          const at = r.challenge!.indexOf(piece, from);
          expect(at, `${step.title}: ${piece} in ${r.challenge}`).toBeGreaterThanOrEqual(from);
          from = at + piece.length;
        }
      } else {
        expect(r.challenge, step.title).toBeUndefined();
      }
      if (step.status === 200) {
        expect(r.body['upstream']).toBe('demo');
        expect(r.body['path']).toBe(step.path);
        // The token never reaches the upstream (forwardAuthorization: false).
        expect(r.body['authorization']).toBe('absent');
        const identity = r.body['identity'] as Record<string, string>;
        if (step.identity) expect(identity).toMatchObject(step.identity);
        else expect(identity).toEqual({});
      }
    }
  });

  it('admits the MFA token on the admin route while the login is fresh, and shows auth_time upstream', async () => {
    const { accessToken, claims } = await mfaToken();
    const r = await callGateway(demo.gatewayUrl, '/admin/users', accessToken);
    expect(r.status).toBe(200);
    expect((r.body['identity'] as Record<string, string>)['x-auth-time']).toBe(String(claims['auth_time']));
  });

  it('answers 401 invalid_token to an ID token used as an access token (typ at+jwt required)', async () => {
    clock.nextStep();
    const { idToken } = await fetchToken({ issuer: demo.idp.issuer, ...alice, secondFactor: 'otp', now: clock.now });
    expect(idToken).toBeDefined();
    expect(jwtPayload(idToken!)['aud']).toBe(constants.DEMO_CLIENT_ID);
    const r = await callGateway(demo.gatewayUrl, '/api/hello', idToken);
    expect(r.status).toBe(401);
    expect(r.challenge).toMatch(/error="invalid_token"/);
  });
});

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun) => {
    const proc = spawn(process.execPath, [DEMO_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 45_000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      // For the whole-run leak check (test/leaks): printing the token (and a DPoP proof) is
      // this command's job, so a printed token is recorded as a token; anything else is output.
      if (/^([\w-]+\.[\w-]+\.[\w-]+\n){1,2}$/.test(stdout)) for (const t of stdout.trim().split('\n')) recordToken(t);
      else recordOutput(`demo-cli-${args[0] ?? ''}.stdout`, stdout);
      recordOutput(`demo-cli-${args[0] ?? ''}.stderr`, stderr);
      resolveRun({ code, stdout, stderr });
    });
  });
}

describe('demo token (the built CLI)', () => {
  // The CLI computes codes with the real clock, so it gets an IdP on the real clock.
  let idp: Awaited<ReturnType<typeof startDemoIdp>>;
  beforeAll(async () => {
    idp = await startDemoIdp();
  });
  afterAll(async () => {
    await idp?.close();
  });

  it('prints only the access token, for TOKEN=$(…)', async () => {
    const mfa = await runCli(['token', '--mfa', '--idp', idp.issuer]);
    expect(mfa.code, mfa.stderr).toBe(0);
    expect(mfa.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    expect(jwtPayload(mfa.stdout.trim())).toMatchObject({ iss: idp.issuer, aud: constants.DEMO_AUDIENCE, amr: ['pwd', 'otp'] });
    const pwd = await runCli(['token', '--pwd', '--idp', idp.issuer]);
    expect(pwd.code, pwd.stderr).toBe(0);
    expect(jwtPayload(pwd.stdout.trim())['amr']).toEqual(['pwd']);
  });

  it('prints the claims with --claims, and fails clearly without a running IdP or with bad flags', async () => {
    const claims = await runCli(['token', '--pwd', '--user', 'bob', '--claims', '--idp', idp.issuer]);
    expect(claims.code, claims.stderr).toBe(0);
    expect(JSON.parse(claims.stdout)).toMatchObject({ sub: 'bob', amr: ['pwd'] });

    const down = await runCli(['token', '--mfa', '--idp', 'http://127.0.0.1:9']);
    expect(down.code).toBe(1);
    expect(down.stdout).toBe('');
    expect(down.stderr).toMatch(/^demo: token: cannot read http:\/\/127\.0\.0\.1:9\/\.well-known\/openid-configuration \(is the demo running\?\)/);

    const both = await runCli(['token', '--mfa', '--pwd']);
    expect(both.code).toBe(1);
    expect(both.stderr).toContain('exactly one of --mfa or --pwd');
  });

  it('with --dpop prints a token bound to a fresh key and a proof of that key for the one request named', async () => {
    const r = await runCli(['token', '--mfa', '--dpop', '--url', 'http://127.0.0.1:8080/api/orders?page=2', '--method', 'POST', '--idp', idp.issuer]);
    expect(r.code, r.stderr).toBe(0);
    const [token, proof, ...rest] = r.stdout.trim().split('\n');
    expect(rest).toEqual([]);
    const header = decodeProtectedHeader(proof!);
    expect(header).toMatchObject({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256' } });
    expect(jwtPayload(token!)['cnf']).toEqual({ jkt: await calculateJwkThumbprint(header.jwk!, 'sha256') });
    // RFC 9449 §4.2: htu without the query; ath the token's hash.
    expect(jwtPayload(proof!)).toMatchObject({ htm: 'POST', htu: 'http://127.0.0.1:8080/api/orders', ath: expect.any(String), jti: expect.any(String) });
    const odd = await runCli(['token', '--mfa', '--url', 'http://127.0.0.1:8080/x']);
    expect(odd.code).toBe(1);
    expect(odd.stderr).toContain('--url and --method go with --dpop');
  });

  it('logout needs one access token of the identity provider, and says why it refuses one', async () => {
    const none = await runCli(['logout']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('logout needs exactly one access token');
    const forged = await runCli(['logout', 'a.b.c', '--idp', idp.issuer]);
    expect(forged.code).toBe(1);
    expect(forged.stderr).toMatch(/^demo: logout: the identity provider refused the logout: HTTP 400 access_token is no valid access token/);
  });
});
