#!/usr/bin/env node
/**
 * `npm run demo` (= `node dist/demo/cli.js`): starts the demo identity provider,
 * the demo upstream and the gateway on loopback and prints what to try.
 * `node dist/demo/cli.js token --mfa` logs in through the running demo's login page
 * over HTTP and prints only the access token, for `TOKEN=$(…)` in scripts; with `--dpop`
 * the token is bound to a key made for this run, and a proof for one request follows it.
 * `node dist/demo/cli.js logout TOKEN` ends the token's session at the identity provider.
 */
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { parseDuration } from 'mfa-gateway';
import { demoAccounts } from './accounts.js';
import { DEMO_PORTS } from './constants.js';
import { otpauthUri } from './totp.js';
import { dpopKeyPair, dpopProof, fetchToken, logoutAtIdp, TokenFlowError } from './token-client.js';

const USAGE = `usage:
  npm run demo                         start the demo (identity provider, upstream, gateway) and print what to try
  node dist/demo/cli.js token --mfa    log in as alice with password + TOTP; print only the access token
  node dist/demo/cli.js token --pwd    log in as alice with the password only ("skip the second factor")
  node dist/demo/cli.js token --mfa --dpop   a DPoP-bound token (RFC 9449) on one line, a proof for one request on the next
  node dist/demo/cli.js logout TOKEN   end the session of TOKEN at the identity provider (it tells the gateway)
token options:
  --user NAME          demo account (alice, or bob: password only)     --password TEXT   its password
  --auth-age DURATION  back-date the login (e.g. 10m) to see the max_age step-up
  --acr-values VALUES  ask for an acr (RFC 9470 step-up)               --max-age SECONDS  ask for a fresh login
  --idp URL            the demo identity provider (default http://127.0.0.1:$DEMO_IDP_PORT or :${DEMO_PORTS.idp})
  --claims             print the access token's claims (JSON) instead of the token
  --dpop               bind the token to a key made for this run; print a proof for the request after it:
  --url URL            the request the proof is for (default http://127.0.0.1:$DEMO_GATEWAY_PORT/api/hello)
  --method METHOD      its method (default GET)
environment (start): DEMO_GATEWAY_PORT (${DEMO_PORTS.gateway}), DEMO_ADMIN_PORT (${DEMO_PORTS.admin}), DEMO_IDP_PORT (${DEMO_PORTS.idp}),
  DEMO_UPSTREAM_PORT (${DEMO_PORTS.upstream}), DEMO_TOTP_SECRET (alice's Base32 TOTP secret)`;

const ENV_PORTS = { gateway: 'DEMO_GATEWAY_PORT', admin: 'DEMO_ADMIN_PORT', idp: 'DEMO_IDP_PORT', upstream: 'DEMO_UPSTREAM_PORT' } as const;
const WHAT = { gateway: 'gateway', admin: 'gateway admin listener', idp: 'demo identity provider', upstream: 'demo upstream' } as const;
type Piece = keyof typeof ENV_PORTS;

function fail(message: string, code = 1): never {
  process.stderr.write(`demo: ${message}\n`);
  process.exit(code);
}

function portFromEnv(piece: Piece): number {
  const text = process.env[ENV_PORTS[piece]];
  if (text === undefined || text === '') return DEMO_PORTS[piece];
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 65535) fail(`${ENV_PORTS[piece]}=${text} is not a port number`);
  return n;
}

function accounts() {
  const secret = process.env['DEMO_TOTP_SECRET'];
  return demoAccounts(secret ? { totpSecret: secret } : {});
}

/** Whether 127.0.0.1:port can be listened on right now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

async function start(): Promise<void> {
  const ports = { gateway: portFromEnv('gateway'), admin: portFromEnv('admin'), idp: portFromEnv('idp'), upstream: portFromEnv('upstream') };
  // Every taken port is named at once, with the variable that moves it, before anything starts.
  const taken: string[] = [];
  for (const piece of Object.keys(ports) as Piece[]) {
    if (!(await portFree(ports[piece]))) taken.push(`  127.0.0.1:${ports[piece]} (${WHAT[piece]}) is in use: stop what uses it, or run with ${ENV_PORTS[piece]}=<another port>`);
  }
  if (new Set(Object.values(ports)).size !== 4) fail('the four demo ports must differ');
  if (taken.length > 0) fail(`cannot start the demo:\n${taken.join('\n')}`);

  const { startDemoStack } = await import('./stack.js');
  const { tourText } = await import('./tour.js');
  let demo;
  try {
    demo = await startDemoStack({ ports, accounts: accounts() });
  } catch (err) {
    fail(`cannot start the demo: ${(err as Error).message}`);
  }
  const alice = accounts().find((a) => a.id === 'alice');
  const totpUri = otpauthUri(alice?.totpSecret ?? '', 'alice');
  // qrcode (soldair/node-qrcode) draws with half-block characters: two QR rows per line,
  // with colour codes for a terminal and plain characters when the output is captured.
  const { default: QRCode } = await import('qrcode');
  const totpQr = process.stdout.isTTY
    ? await QRCode.toString(totpUri, { type: 'terminal', small: true, errorCorrectionLevel: 'M' })
    : await QRCode.toString(totpUri, { type: 'utf8', errorCorrectionLevel: 'M' });
  process.stdout.write(
    `\n${tourText({
      gatewayUrl: demo.gatewayUrl,
      adminUrl: demo.adminUrl,
      issuer: demo.idp.issuer,
      upstreamUrl: demo.upstream.url,
      tokenCommand: 'node dist/demo/cli.js token',
      totpUri,
      totpQr,
    })}\n`,
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`demo: ${signal}: stopping\n`);
    demo.close().then(
      () => process.exit(0),
      (err: unknown) => fail(`stopping failed: ${(err as Error).message}`),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

async function token(argv: string[]): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        mfa: { type: 'boolean' },
        pwd: { type: 'boolean' },
        user: { type: 'string' },
        password: { type: 'string' },
        'auth-age': { type: 'string' },
        'acr-values': { type: 'string' },
        'max-age': { type: 'string' },
        idp: { type: 'string' },
        claims: { type: 'boolean' },
        dpop: { type: 'boolean' },
        url: { type: 'string' },
        method: { type: 'string' },
      },
    }));
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`);
  }
  if (values.mfa === values.pwd) fail(`token needs exactly one of --mfa or --pwd\n${USAGE}`);
  const username = values.user ?? 'alice';
  const account = accounts().find((a) => a.username === username);
  if (!account && values.password === undefined) fail(`unknown demo account ${username} (alice or bob), or give --password`);
  let authAgeSec = 0;
  if (values['auth-age'] !== undefined) {
    const ms = parseDuration(values['auth-age']);
    if (ms === undefined || ms > 86_400_000) fail(`--auth-age ${values['auth-age']}: a duration up to 1d, such as 10m`);
    authAgeSec = Math.floor(ms / 1000);
  }
  let maxAge: number | undefined;
  if (values['max-age'] !== undefined) {
    maxAge = Number(values['max-age']);
    if (!Number.isInteger(maxAge) || maxAge < 0) fail(`--max-age ${values['max-age']}: whole seconds`);
  }
  const issuer = values.idp ?? `http://127.0.0.1:${portFromEnv('idp')}`;
  if (!values.dpop && (values.url !== undefined || values.method !== undefined)) fail(`--url and --method go with --dpop\n${USAGE}`);
  const target = values.url ?? `http://127.0.0.1:${portFromEnv('gateway')}/api/hello`;
  let htu: string;
  try {
    // RFC 9449 §4.2: htu is the URI without query and fragment.
    const u = new URL(target);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http(s)');
    htu = `${u.origin}${u.pathname}`;
  } catch {
    fail(`--url ${target}: an http:// or https:// URL`);
  }
  const method = values.method ?? 'GET';
  if (!/^[A-Z]{3,7}$/.test(method)) fail(`--method ${method}: an HTTP method such as GET or POST`);
  const key = values.dpop ? dpopKeyPair() : undefined;
  try {
    const result = await fetchToken({
      issuer,
      username,
      password: values.password ?? account!.password,
      secondFactor: values.mfa ? 'otp' : 'skip',
      ...(account?.totpSecret ? { totpSecret: account.totpSecret } : {}),
      authAgeSec,
      ...(values['acr-values'] ? { acrValues: values['acr-values'] } : {}),
      ...(maxAge !== undefined ? { maxAge } : {}),
      onWait: (m) => process.stderr.write(`demo token: ${m}\n`),
      ...(key !== undefined ? { dpop: key } : {}),
    });
    if (values.claims) process.stdout.write(`${JSON.stringify(result.claims, null, 2)}\n`);
    else if (key !== undefined) process.stdout.write(`${result.accessToken}\n${dpopProof(key, method, htu, result.accessToken)}\n`);
    else process.stdout.write(`${result.accessToken}\n`);
  } catch (err) {
    if (err instanceof TokenFlowError) fail(`token: ${err.message}`);
    throw err;
  }
}

async function logout(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { idp: { type: 'string' } }, allowPositionals: true });
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`);
  }
  const [accessToken, ...extra] = parsed.positionals;
  if (accessToken === undefined || accessToken === '' || extra.length > 0) fail(`logout needs exactly one access token\n${USAGE}`);
  try {
    await logoutAtIdp(parsed.values.idp ?? `http://127.0.0.1:${portFromEnv('idp')}`, accessToken);
  } catch (err) {
    if (err instanceof TokenFlowError) fail(`logout: ${err.message}`);
    throw err;
  }
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'start') return start();
  if (command === 'token') return token(rest);
  if (command === 'logout') return logout(rest);
  if (command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  fail(`unknown command "${command}"\n${USAGE}`);
}

main(process.argv.slice(2)).catch((err: unknown) => fail((err as Error)?.message ?? String(err)));
