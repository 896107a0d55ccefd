/**
 * `mfa-gateway explain` as operators run it (the built dist/cli.js), against a real
 * discovery + key-set server (and a key-set file): an allowed token, step-up tokens (no
 * MFA, a login too old), denied ones (a role missing, a forged signature, expired and for
 * another audience), no token, no route; the exit codes; and the token never printed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, tempDir, writeConfig } from '../harness.js';
import { startIdp, type TestIdp } from '../auth/tokens.js';
import { freePort, makeKey, sign } from '../authn/idp.js';

let idp: TestIdp;
let file: string;
let dir: string;

beforeAll(async () => {
  idp = await startIdp('/realms/corp');
  dir = tempDir('mfa-explain-');
  file = writeConfig(
    {
      issuers: [{ name: 'corp', issuer: idp.issuer, discovery: true, audience: ['orders-api'], typ: 'at+jwt' }],
      upstreams: { orders: { url: 'http://127.0.0.1:3001/api' } },
      mfa: { acr: ['urn:example:mfa'] },
      routes: [
        { path: '/public/', upstream: 'orders', auth: 'none' },
        { path: '/orders/', upstream: 'orders', methods: ['GET'], roles: ['orders.reader'], forwardAuthorization: false },
        { path: '/orders/refunds/', upstream: 'orders', mfa: { maxAge: '5m' } },
      ],
    },
    dir,
  );
});

afterAll(async () => {
  await idp?.close();
});

const now = () => Math.floor(Date.now() / 1000);

async function explain(path: string, token?: string, extra: string[] = []) {
  const r = await runCli(['explain', '--config', file, '--path', path, ...(token ? ['--token', token] : []), ...extra]);
  if (token) {
    expect(r.stdout).not.toContain(token);
    expect(r.stderr).not.toContain(token);
  }
  return r;
}

/** The report with what changes from run to run replaced: times, ports, hashes, counts of seconds, characters and bytes. */
function normalized(text: string): string {
  return text
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, '<time>')
    .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:<port>')
    .replace(/token_hash [0-9a-f]{16}/g, 'token_hash <hash>')
    .replace(/"request_id":"[^"]+"/g, '"request_id":"<id>"')
    .replace(/\b\d+ (s|characters|bytes)\b/g, 'N $1')
    .replace(/x-auth-time: \d+/g, 'x-auth-time: <sec>')
    .replace(new RegExp(dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'g'), '<dir>');
}

describe('explain', () => {
  it('an allowed token: every stage and check, what would be sent upstream, exit 0', async () => {
    const token = await idp.mint({ amr: ['pwd', 'otp'], auth_time: now() - 60, roles: ['orders.reader'] });
    const r = await explain('/orders/7?page=2', token);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(normalized(r.stdout)).toBe(
      [
        `explain: GET /orders/7?page=2 against <dir>/gateway.yaml at <time>`,
        'draining         ok   not draining',
        'framing          ok   2 headers, N bytes',
        'body             ok   no body (explain sends none)',
        'path             ok   /orders/7',
        'logout           ok   not the back-channel logout endpoint',
        'route            ok   /orders/, upstream orders, auth mfa',
        'method           ok   GET (allowed: GET, HEAD)',
        'address limit    --   no per-address limit on this route',
        'credentials      ok   a bearer token, N characters, token_hash <hash>',
        'introspection    --   no issuer of this route introspects opaque tokens',
        'token            ok   valid: issuer corp, subject alice',
        '  structure      ok   a JWS (RFC 7515 compact form); header alg RS256, kid rs256-1, typ at+jwt',
        `  issuer         ok   iss http://127.0.0.1:<port>/realms/corp is issuer corp`,
        '  algorithm      ok   RS256 (allowed: RS256, ES256, EdDSA)',
        `  key            ok   kid rs256-1, RSA, from http://127.0.0.1:<port>/realms/corp/certs`,
        '  signature      ok   verifies with that key',
        '  exp            ok   <time>, in N s',
        '  nbf            --   absent',
        '  iat            ok   <time>',
        '  aud            ok   orders-api (accepted: orders-api)',
        '  typ            ok   at+jwt (required: at+jwt)',
        '  sub            ok   alice',
        '  claims         ok   every claim the policy and the identity headers use is valid Unicode text',
        'revocation       ok   not revoked (explain starts with an empty revocation list; a running gateway has its own)',
        'dpop             ok   the token is not DPoP-bound: a Bearer token (RFC 9449 §7.2)',
        'policy           ok   allowed',
        '  issuer         ok   corp (the route allows every issuer)',
        '  evidence       --   amr pwd, otp; acr (none); auth_time <time> (N s ago)',
        '  mfa            ok   amr holds factors of two categories (RFC 8176): pwd (know), otp (have)',
        '  acr            --   the route requires none beyond MFA',
        '  max age        ok   authenticated N s ago; the route allows N s',
        '  roles          ok   orders.reader (one of orders.reader needed)',
        '  scopes         --   none required',
        '  groups         --   none required',
        'subject limit    --   no per-subject limit on this route',
        'forward          ok   GET http://127.0.0.1:<port>/api/orders/7?page=2 (upstream orders)',
        '  identity            x-auth-subject: alice',
        `                      x-auth-issuer: http://127.0.0.1:<port>/realms/corp`,
        '                      x-auth-roles: orders.reader',
        '                      x-auth-amr: pwd,otp',
        '                      x-auth-time: <sec>',
        '  authorization       not forwarded (forwardAuthorization: false)',
        '  headers             x-forwarded-for, x-forwarded-proto, x-request-id, x-forwarded-host',
        'answer: allow: the request would be sent to the upstream, and its answer passed on (exit 0)',
        '',
      ].join('\n'),
    );
  });

  it('step-up: no MFA evidence is 401 mfa_required with the RFC 9470 challenge; a login too old for the route, auth_too_old with max_age', async () => {
    const pwd = await idp.mint({ amr: ['pwd'], auth_time: now() - 60, roles: ['orders.reader'] });
    const r = await explain('/orders/7', pwd);
    expect(r.code).toBe(1);
    const lines = r.stdout.split('\n');
    expect(lines).toContain('token            ok   valid: issuer corp, subject alice');
    expect(lines).toContain('policy           FAIL Multi-factor authentication is required. (mfa_required)');
    expect(lines).toContain('  mfa            FAIL amr pwd (know), acr (none): no MFA evidence; MFA is amr mfa, or factors of two categories, or acr urn:example:mfa (mfa_required)');
    expect(lines).toContain('  roles          ok   orders.reader (one of orders.reader needed)');
    expect(lines).toContain('forward          --   not reached');
    expect(lines.slice(-4)).toEqual([
      'answer: 401 mfa_required (the gateway refuses the request; exit 1)',
      '  www-authenticate: Bearer realm="mfa-gateway", error="insufficient_user_authentication", error_description="Multi-factor authentication is required.", acr_values="urn:example:mfa"',
      expect.stringMatching(/^ {2}body: \{"error":"insufficient_user_authentication","error_description":"Multi-factor authentication is required.","request_id":"[0-9a-f-]{36}"\}$/),
      '',
    ]);

    const old = await idp.mint({ amr: ['mfa'], auth_time: now() - 600 });
    const s = await explain('/orders/refunds/9', old);
    expect(s.code).toBe(1);
    const slines = normalized(s.stdout).split('\n');
    expect(slines).toContain('  mfa            ok   amr mfa, which mfa.amr counts as MFA (mfa)');
    expect(slines).toContain('  max age        FAIL authenticated N s ago; the route allows N s (auth_too_old)');
    expect(s.stdout).toContain('  max age        FAIL authenticated 6');
    expect(s.stdout).toContain('the route allows 300 s (auth_too_old)');
    expect(s.stdout).toContain(
      '  www-authenticate: Bearer realm="mfa-gateway", error="insufficient_user_authentication", error_description="The authentication is older than the 300 seconds this route allows; a fresh authentication is required.", acr_values="urn:example:mfa", max_age="300"',
    );
  });

  it('denied: a role missing (403), a forged signature, and a token both expired and for another audience (every failing check named)', async () => {
    const noRole = await idp.mint({ amr: ['pwd', 'otp'], auth_time: now(), roles: ['billing'] });
    const r = await explain('/orders/7', noRole);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('  roles          FAIL billing; one of orders.reader needed (role_missing)\n');
    expect(r.stdout).toContain('answer: 403 role_missing (the gateway refuses the request; exit 1)\n');
    expect(r.stdout).toContain('  www-authenticate: Bearer realm="mfa-gateway", error="insufficient_scope", error_description="The access token lacks a required role (one of orders.reader)."\n');

    const attacker = await makeKey('RS256', 'rs256-1'); // the IdP's kid, another key
    const forged = await sign(attacker, { iss: idp.issuer, aud: 'orders-api', sub: 'mallory', exp: now() + 600, amr: ['mfa'] });
    const f = await explain('/orders/7', forged);
    expect(f.code).toBe(1);
    expect(f.stdout).toContain('token            FAIL signature invalid (bad_signature)\n');
    expect(f.stdout).toContain('  signature      FAIL does not verify with that key (bad_signature)\n');
    expect(f.stdout).toContain('policy           --   not reached\n');
    expect(f.stdout).toContain('answer: 401 bad_signature');

    const stale = await idp.mint({ exp: now() - 120, aud: 'billing-api' });
    const e = await explain('/orders/7', stale);
    expect(e.code).toBe(1);
    expect(e.stdout).toMatch(/^ {2}exp {12}FAIL .*, 12\d s ago \(clock tolerance 30 s\) \(expired\)$/m);
    expect(e.stdout).toContain('  aud            FAIL billing-api; accepted: orders-api (wrong_audience)\n');
    // The verdict is the verifier's own: jose checks the audience before the expiry.
    expect(e.stdout).toContain('token            FAIL audience not accepted (wrong_audience)\n');
    expect(e.stdout).toContain('  www-authenticate: Bearer realm="mfa-gateway", error="invalid_token", error_description="audience not accepted"\n');
  });

  it('no token on an mfa route: 401 with the bare challenge; no route: 404 naming the normalized path and the routes', async () => {
    const r = await explain('/orders/7');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('credentials      FAIL no bearer credentials (an Authorization: Bearer header, RFC 6750 §2.1) (credentials_missing)\n');
    expect(r.stdout).toContain('answer: 401 credentials_missing (the gateway refuses the request; exit 1)\n  www-authenticate: Bearer realm="mfa-gateway"\n');

    const n = await explain('/public/../nowhere/x');
    expect(n.code).toBe(1);
    expect(n.stdout).toContain('path             ok   /nowhere/x (normalized from /public/../nowhere/x)\n');
    expect(n.stdout).toContain('route            FAIL no route matches /nowhere/x; the routes: /orders/refunds/, /public/, /orders/ (not_found)\n');
    expect(n.stdout).toContain('answer: 404 not_found');

    const m = await explain('/orders/7', undefined, ['--method', 'delete']);
    expect(m.code).toBe(1);
    expect(m.stdout).toContain('method           FAIL DELETE is not allowed; Allow: GET, HEAD (method_not_allowed)\n');
    expect(m.stdout).toContain('  allow: GET, HEAD\n');
  });

  it('reads the token from --token-file and the keys from a jwksFile', async () => {
    const key = await makeKey('ES256', 'file-1');
    const own = tempDir('mfa-explain-file-');
    writeFileSync(join(own, 'keys.json'), JSON.stringify({ keys: [key.jwk] }));
    const cfg = writeConfig(
      {
        issuers: [{ name: 'local', issuer: 'https://idp.example', jwksFile: 'keys.json', audience: ['api'] }],
        upstreams: { u: { url: 'http://127.0.0.1:3001' } },
        routes: [{ path: '/', upstream: 'u', auth: 'token' }],
      },
      own,
    );
    const token = await sign(key, { iss: 'https://idp.example', aud: 'api', sub: 'svc-1', exp: now() + 60 });
    const tokenFile = join(dir, 'token.txt');
    writeFileSync(tokenFile, `${token}\n`);
    const r = await runCli(['explain', '--config', cfg, '--path', '/x', '--token-file', tokenFile, '--header', 'X-Request-Id: trace-42']);
    expect(r.stdout).not.toContain(token);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`  key            ok   kid file-1, EC P-256, from ${join(own, 'keys.json')}\n`);
    expect(r.stdout).toContain('  mfa            --   auth: token asks for no MFA\n');
    expect(r.stdout).toContain('answer: allow');
  });

  it('an issuer whose keys cannot be fetched: 503 verifier_unavailable, the real cause on the key line', async () => {
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}/realms/down`;
    const cfg = writeConfig({
      issuers: [{ name: 'down', issuer, jwksUri: `${issuer}/certs`, audience: ['api'] }],
      upstreams: { u: { url: 'http://127.0.0.1:3001' } },
      routes: [{ path: '/', upstream: 'u', auth: 'token' }],
    });
    const key = await makeKey('RS256', 'k1');
    const token = await sign(key, { iss: issuer, aud: 'api', sub: 'alice', exp: now() + 60 });
    const r = await runCli(['explain', '--config', cfg, '--path', '/x', '--token', token]);
    expect(r.stdout).not.toContain(token);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('token            FAIL token verification unavailable (verifier_unavailable)\n');
    expect(r.stdout).toContain(`  key            FAIL no key set loaded: ${issuer}/certs: connection refused (ECONNREFUSED 127.0.0.1:${port}) (verifier_unavailable)\n`);
    expect(r.stdout).not.toContain('note:');
    expect(r.stdout).toContain('answer: 503 verifier_unavailable (the gateway refuses the request; exit 1)\n  retry-after: 1\n');
  });

  it('exit 2 for usage errors and for a config with problems', async () => {
    const cases: [string[], RegExp][] = [
      [['explain', '--config', file], /^mfa-gateway: explain needs --path PATH\nusage:/],
      [['explain', '--config', file, '--path', 'orders'], /^mfa-gateway: --path: "orders" must start with \/\nusage:/],
      [['explain', '--config', file, '--path', '/x', '--token', 'a', '--token-file', 'b'], /^mfa-gateway: explain takes --token or --token-file, not both\nusage:/],
      [['explain', '--config', file, '--path', '/x', '--header', 'nocolon'], /^mfa-gateway: --header: "nocolon" is not NAME:VALUE with a header name\nusage:/],
      [['explain', '--config', file, '--path', '/x', '--header', 'content-length: 5'], /^mfa-gateway: --header: explain sends no body, so no content-length\nusage:/],
      [['explain', '--config', file, '--path', '/x', '--token-file', join(dir, 'missing')], /^mfa-gateway: --token-file: cannot read .*missing: ENOENT\nusage:/],
      [['check', '--config', file, '--path', '/x'], /^mfa-gateway: check takes no --path\nusage:/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe('');
    }
    const bad = writeConfig({ upstreams: { u: { url: 'http://127.0.0.1:1' } }, routes: [{ path: '/', upstream: 'nope', auth: 'none' }] });
    const r = await runCli(['explain', '--config', bad, '--path', '/x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`${bad}: 1 problem\nroutes[0].upstream: unknown upstream nope; one of u\n`);
  });
});
