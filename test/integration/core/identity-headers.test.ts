/**
 * Identity headers as an upstream receives them from the built gateway: every claim
 * value and every list item percent-encoded by one rule (README, identity headers), so
 * `header.split(',').map(decodeURIComponent)` gives back exactly the token's claims;
 * a claim no header can carry (a lone surrogate) neither crashes the gateway nor
 * reaches the upstream; audit lines stay one line whatever the claims hold; and
 * `check` refuses identity header names with `_`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import type { JWTPayload } from 'jose';
import { baseConfig, runCli, startGatewayProcess, startUpstream, tempDir, writeConfig, type GatewayProcess, type Received, type Upstream } from '../harness.js';
import { recordToken } from '../leaks.js';
import { startIdp, type TestIdp } from '../auth/tokens.js';

let idp: TestIdp;
let up: Upstream;
let gw: GatewayProcess;
let auditFile: string;

beforeAll(async () => {
  idp = await startIdp('/realms/corp');
  up = await startUpstream();
  auditFile = join(tempDir('mfa-gw-identity-'), 'audit.log');
  gw = await startGatewayProcess(
    writeConfig(
      baseConfig({
        verifier: { threads: 0 },
        issuers: [{ name: 'corp', issuer: idp.issuer, jwksUri: idp.jwksUri, audience: ['orders-api'] }],
        upstreams: { api: { url: up.url } },
        routes: [{ path: '/api/', upstream: 'api', auth: 'token', forwardAuthorization: false }],
        audit: { destination: auditFile },
      }),
    ),
  );
});

afterAll(async () => {
  await gw?.stop();
  await up?.close();
  await idp?.close();
});

/** Sends one request with a token for these claims; returns the status and what the upstream received for it. */
async function send(claims: JWTPayload, token?: string): Promise<{ status: number; got: Received | undefined; token: string; challenge: string | undefined }> {
  const t = token ?? (await idp.mint(claims));
  recordToken(t);
  const before = up.received.length;
  const res = await request(`${gw.url}/api/who`, { headers: { authorization: `Bearer ${t}` } });
  await res.body.text();
  const challenge = res.headers['www-authenticate'] as string | undefined;
  return { status: res.statusCode, got: up.received.length > before ? up.received.at(-1) : undefined, token: t, challenge };
}

const header = (got: Received | undefined, name: string): string | undefined => got?.headers[name] as string | undefined;
const decodeList = (value: string | undefined, sep = ','): string[] | undefined => value?.split(sep).map(decodeURIComponent);
const identityNames = (got: Received): string[] => Object.keys(got.headers).filter((n) => n.startsWith('x-auth-'));

describe('identity headers at the upstream', () => {
  it('encodes a non-ASCII subject, and "é" and the text "%C3%A9" arrive as different values that decode back to each', async () => {
    const accent = await send({ sub: 'é' });
    const text = await send({ sub: '%C3%A9' });
    expect([accent.status, text.status]).toEqual([200, 200]);
    expect(header(accent.got, 'x-auth-subject')).toBe('%C3%A9');
    expect(header(text.got, 'x-auth-subject')).toBe('%25C3%25A9');
    expect(decodeURIComponent(header(accent.got, 'x-auth-subject')!)).toBe('é');
    expect(decodeURIComponent(header(text.got, 'x-auth-subject')!)).toBe('%C3%A9');
  });

  it('keeps a role holding "," one item, and a non-ASCII role does not re-encode the other items or the separators', async () => {
    const comma = await send({ roles: ['viewer,admin', 'ops'], groups: ['a,b', 'c d'], amr: ['pwd', 'otp'] });
    expect(comma.status).toBe(200);
    expect(header(comma.got, 'x-auth-roles')).toBe('viewer%2Cadmin,ops');
    expect(decodeList(header(comma.got, 'x-auth-roles'))).toEqual(['viewer,admin', 'ops']);
    expect(header(comma.got, 'x-auth-groups')).toBe('a%2Cb,c%20d');
    expect(decodeList(header(comma.got, 'x-auth-groups'))).toEqual(['a,b', 'c d']);
    expect(header(comma.got, 'x-auth-amr')).toBe('pwd,otp');

    const umlaut = await send({ roles: ['prüfer', 'ops', 'admin'] });
    expect(umlaut.status).toBe(200);
    expect(header(umlaut.got, 'x-auth-roles')).toBe('pr%C3%BCfer,ops,admin');
    expect(decodeList(header(umlaut.got, 'x-auth-roles'))).toEqual(['prüfer', 'ops', 'admin']);
  });

  it('encodes the spaces of an acr, and scopes are space-joined items each encoded on its own', async () => {
    const r = await send({ acr: 'gold level 2', scope: ['orders:read', 'a b', '100%'] });
    expect(r.status).toBe(200);
    expect(header(r.got, 'x-auth-acr')).toBe('gold%20level%202');
    expect(decodeURIComponent(header(r.got, 'x-auth-acr')!)).toBe('gold level 2');
    expect(header(r.got, 'x-auth-scopes')).toBe('orders:read a%20b 100%25');
    expect(decodeList(header(r.got, 'x-auth-scopes'), ' ')).toEqual(['orders:read', 'a b', '100%']);
    // Visible ASCII without "%" and "," is passed as it is: URLs and URNs stay readable.
    expect(header(r.got, 'x-auth-issuer')).toBe(idp.issuer);
    // Every identity header is visible ASCII (and the spaces that join scopes), byte for byte on the wire.
    for (let i = 0; i < r.got!.rawHeaders.length; i += 2) {
      if (r.got!.rawHeaders[i]!.toLowerCase().startsWith('x-auth-')) expect(r.got!.rawHeaders[i + 1]).toMatch(/^[\x21-\x7e]+( [\x21-\x7e]+)*$/);
    }
  });

  it('refuses a subject with a lone surrogate 401 invalid_token, on the miss and on the (negative) hit after it, and stays up', async () => {
    const first = await send({ sub: 'alice\ud800' });
    const again = await send({}, first.token);
    for (const r of [first, again]) {
      expect(r.status).toBe(401);
      expect(r.challenge).toBe('Bearer realm="mfa-gateway", error="invalid_token", error_description="a claim value is not valid Unicode text"');
      expect(r.got).toBeUndefined();
    }
    // Every claim the identity headers carry is judged the same way.
    for (const claims of [{ roles: ['ok', 'bad\udfff'] }, { acr: '\ud83d' }, { amr: ['pwd', '\udc00otp'] }, { scope: 'a \ud800' }]) {
      const r = await send(claims);
      expect(r.status, JSON.stringify(claims)).toBe(401);
      expect(r.got).toBeUndefined();
    }
    expect(gw.proc.exitCode).toBeNull();
    const after = await send({ sub: 'bob' });
    expect(after.status).toBe(200);
    expect(header(after.got, 'x-auth-subject')).toBe('bob');
  });

  it('writes each audit line as one line, whatever line separators or controls the claims hold', async () => {
    const r = await send({ sub: 'eve\u2028{"decision":"allow"}\u0085\u007f\r\n', acr: 'x\u2029y', amr: ['pwd\u009f'] });
    expect(r.status).toBe(200);
    expect(header(r.got, 'x-auth-subject')).toBe('eve%E2%80%A8{"decision":"allow"}%C2%85%7F%0D%0A');
    await gw.stop();
    const text = readFileSync(auditFile, 'utf8');
    expect(text.match(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g)?.every((c) => c === '\n')).toBe(true);
    const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const eve = lines.filter((l) => typeof l['subject'] === 'string' && (l['subject'] as string).startsWith('eve'));
    expect(eve).toHaveLength(1);
    expect(eve[0]).toMatchObject({ subject: 'eve\u2028{"decision":"allow"}\u0085\u007f\r\n', acr: 'x\u2029y', amr: ['pwd\u009f'], status: 200 });
    // One line per request this file sent, the refused or unrendered ones included.
    expect(lines).toHaveLength(13);
  });
});

describe('check', () => {
  it('refuses identity header names with "_", which CGI, PHP and Django read as "-"', async () => {
    const cfg = writeConfig(
      baseConfig({ upstreams: { api: { url: 'http://127.0.0.1:1' } }, routes: [{ path: '/', upstream: 'api', auth: 'none' }], identityHeaders: { subject: 'x_auth_user' } }),
    );
    const r = await runCli(['check', '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').slice(1)).toEqual([
      'identityHeaders.subject: must not contain "_" (CGI, PHP and Django read x_auth_user and X-Auth-User as the same variable)',
    ]);
  });
});
