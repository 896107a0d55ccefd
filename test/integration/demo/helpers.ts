/**
 * Shared pieces of the demo's integration tests: the compiled demo (dist/demo),
 * a TOTP clock the tests move instead of sleeping, and a gateway call.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { request } from 'undici';
import { outputSink, recordToken } from '../leaks.js';

export const ROOT = resolve(import.meta.dirname, '../../..');
export const DEMO_CLI = resolve(ROOT, 'dist/demo/cli.js');

export interface DemoPorts {
  readonly gateway: number;
  readonly admin: number;
  readonly idp: number;
  readonly upstream: number;
}

/**
 * Starts the demo command (dist/demo/cli.js, as `npm run demo` does after building) on
 * these ports and resolves once it has printed its tour; everything it prints goes to the
 * whole-run leak check (test/leaks) as `<label>.stdout` / `.stderr`.
 */
export async function spawnDemo(ports: DemoPorts, label: string): Promise<{ proc: ChildProcess; out: () => string }> {
  const proc = spawn(process.execPath, [DEMO_CLI], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      DEMO_GATEWAY_PORT: String(ports.gateway),
      DEMO_ADMIN_PORT: String(ports.admin),
      DEMO_IDP_PORT: String(ports.idp),
      DEMO_UPSTREAM_PORT: String(ports.upstream),
    },
  });
  let out = '';
  let err = '';
  const outSink = outputSink(`${label}.stdout`);
  const errSink = outputSink(`${label}.stderr`);
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
    errSink(d);
  });
  await new Promise<void>((resolveP, reject) => {
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      outSink(d);
      out += d;
      if (out.includes('Ctrl-C stops everything.')) resolveP();
    });
    proc.once('exit', (code) => reject(new Error(`demo exited (${code}) before printing its tour: ${err}`)));
  });
  return { proc, out: () => out };
}

// The demo ships compiled (the CLI runs dist/demo/cli.js); the tests use the same build.
export const { startDemoStack } = (await import('../../../dist/demo/stack.js')) as typeof import('../../../demo/stack.js');
export const { startDemoIdp } = (await import('../../../dist/demo/idp.js')) as typeof import('../../../demo/idp.js');
const tokenClient = (await import('../../../dist/demo/token-client.js')) as typeof import('../../../demo/token-client.js');
export const { jwtPayload, TokenFlowError, dpopKeyPair, logoutAtIdp } = tokenClient;
/** A DPoP proof of the demo's token helper; proofs are credentials too (the whole-run leak check's list). */
export const dpopProof: typeof tokenClient.dpopProof = (...args) => recordToken(tokenClient.dpopProof(...args));
/** The demo's token helper; the tokens it returns go into the whole-run leak check's list (test/leaks). */
export const fetchToken: typeof tokenClient.fetchToken = async (options) => {
  const result = await tokenClient.fetchToken(options);
  recordToken(result.accessToken);
  recordToken(result.idToken);
  return result;
};
export const { totpCode } = (await import('../../../dist/demo/totp.js')) as typeof import('../../../demo/totp.js');
export const { DEMO_TOTP_SECRET } = (await import('../../../dist/demo/accounts.js')) as typeof import('../../../demo/accounts.js');
export const constants = (await import('../../../dist/demo/constants.js')) as typeof import('../../../demo/constants.js');
export const tour = (await import('../../../dist/demo/tour.js')) as typeof import('../../../demo/tour.js');

/**
 * The clock of the IdP's TOTP check and of the codes the tests compute. A code is
 * accepted once per time step (RFC 6238 §5.2), so a test that logs in with TOTP
 * again moves the clock to the next step instead of waiting 30 s.
 */
export class TotpClock {
  t = Date.now();
  readonly now = (): number => this.t;
  nextStep(): void {
    this.t += 30_000;
  }
}

export interface GatewayAnswer {
  status: number;
  challenge: string | undefined;
  body: Record<string, unknown>;
  text: string;
}

/** GET through the gateway, with a bearer token when given (or a DPoP token and its proof). */
export async function callGateway(gatewayUrl: string, path: string, token?: string, dpop?: { proof: string }): Promise<GatewayAnswer> {
  recordToken(token);
  const headers: Record<string, string> = {};
  if (token !== undefined) headers['authorization'] = `${dpop === undefined ? 'Bearer' : 'DPoP'} ${token}`;
  if (dpop !== undefined) headers['dpop'] = dpop.proof;
  const res = await request(`${gatewayUrl}${path}`, { headers });
  const text = await res.body.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    /* not JSON: the assertions on `text` say so */
  }
  return { status: res.statusCode, challenge: res.headers['www-authenticate'] as string | undefined, body, text };
}
