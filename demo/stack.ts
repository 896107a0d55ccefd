import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
// The demo uses the gateway as any program embedding it would: through the package's
// public entry point (src/index.ts), never its internals.
import { compileConfig, createLogger, readConfigFile, type CompiledConfig, type GatewayHandle } from 'mfa-gateway';
import type { DemoAccount } from './accounts.js';
import { startDemoIdp, type DemoIdp } from './idp.js';
import { startDemoUpstream, type DemoUpstream } from './upstream.js';

/** The package root (dist/demo/stack.js → ../..), where config/demo.yaml lives. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const DEMO_CONFIG = resolve(PACKAGE_ROOT, 'config/demo.yaml');

export interface DemoPorts {
  readonly gateway: number;
  readonly admin: number;
  readonly idp: number;
  readonly upstream: number;
}

export interface DemoStackOptions {
  /** Ports of the four listeners; 0 = any free port. Default: all 0. */
  readonly ports?: Partial<DemoPorts>;
  readonly configFile?: string;
  /** false: no audit lines (tests). Default: as the config says. */
  readonly audit?: boolean;
  /** The gateway's operational log level (its audit lines are separate). Default warn. */
  readonly logLevel?: string;
  /** TOTP clock of the IdP, ms. */
  readonly now?: () => number;
  readonly accounts?: readonly DemoAccount[];
  readonly onError?: (message: string) => void;
}

export interface DemoStack {
  readonly idp: DemoIdp;
  readonly upstream: DemoUpstream;
  readonly gateway: GatewayHandle;
  readonly config: CompiledConfig;
  readonly gatewayUrl: string;
  readonly adminUrl: string;
  readonly ports: DemoPorts;
  close(): Promise<void>;
}

type Raw = Record<string, unknown>;
const obj = (v: unknown, what: string): Raw => {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${DEMO_CONFIG}: ${what} must be a mapping`);
  return v as Raw;
};

/**
 * The demo config with the addresses of this run filled in: the listeners' ports,
 * the issuer URL (its port is the IdP's) and the upstream URL. Everything else is
 * config/demo.yaml as written.
 */
export function demoConfigData(data: unknown, run: { gatewayPort: number; adminPort: number; issuer: string; upstreamUrl: string; audit?: boolean }): Raw {
  const root = structuredClone(obj(data, '(root)'));
  root['listen'] = { ...obj(root['listen'] ?? {}, 'listen'), port: run.gatewayPort };
  root['admin'] = { ...obj(root['admin'] ?? {}, 'admin'), port: run.adminPort };
  const issuers = root['issuers'];
  if (!Array.isArray(issuers) || issuers.length !== 1) throw new Error(`${DEMO_CONFIG}: the demo expects exactly one issuer (the demo IdP)`);
  root['issuers'] = [{ ...obj(issuers[0], 'issuers[0]'), issuer: run.issuer }];
  const upstreams = obj(root['upstreams'], 'upstreams');
  const names = Object.keys(upstreams);
  if (names.length !== 1) throw new Error(`${DEMO_CONFIG}: the demo expects exactly one upstream (the demo upstream)`);
  root['upstreams'] = { [names[0]!]: { ...obj(upstreams[names[0]!], `upstreams.${names[0]}`), url: run.upstreamUrl } };
  if (run.audit === false) root['audit'] = { ...obj(root['audit'] ?? {}, 'audit'), enabled: false };
  return root;
}

/**
 * Starts the whole demo on loopback: the demo upstream, the demo identity
 * provider, and the gateway (config/demo.yaml) in front, in this process. Ports
 * default to 0; `npm run demo` passes the fixed ones.
 *
 * @example
 * const demo = await startDemoStack();
 * const res = await fetch(`${demo.gatewayUrl}/public/hello`);
 * await demo.close();
 */
export async function startDemoStack(options: DemoStackOptions = {}): Promise<DemoStack> {
  const ports = { gateway: 0, admin: 0, idp: 0, upstream: 0, ...options.ports };
  const configFile = options.configFile ?? DEMO_CONFIG;
  const data = readConfigFile(configFile);
  const started: { close(): Promise<void> }[] = [];
  const stopAll = async () => {
    for (const s of started.reverse()) await s.close().catch(() => undefined);
  };
  try {
    const upstream = await startDemoUpstream({ port: ports.upstream });
    started.push(upstream);
    const idp = await startDemoIdp({
      port: ports.idp,
      ...(options.now ? { now: options.now } : {}),
      ...(options.accounts ? { accounts: options.accounts } : {}),
      ...(options.onError ? { onError: options.onError } : {}),
    });
    started.push(idp);
    const config = compileConfig(
      demoConfigData(data, {
        gatewayPort: ports.gateway,
        adminPort: ports.admin,
        issuer: idp.issuer,
        upstreamUrl: upstream.url,
        ...(options.audit !== undefined ? { audit: options.audit } : {}),
      }),
      dirname(resolve(configFile)),
    );
    // Loaded here, not at the top: `demo token` must not need the native uWS build.
    const { startGateway } = await import('mfa-gateway');
    const gateway = await startGateway(config, { logger: createLogger({ level: options.logLevel ?? 'warn' }) });
    started.push(gateway);
    const gatewayUrl = `http://${config.listen.host}:${gateway.port}`;
    idp.setGatewayUrl(gatewayUrl);
    // A logout at the IdP reaches the gateway (OpenID Connect Back-Channel Logout 1.0).
    idp.setBackchannelLogoutUri(config.logoutPath === null ? null : `${gatewayUrl}${config.logoutPath}`);
    let closing: Promise<void> | null = null;
    return {
      idp,
      upstream,
      gateway,
      config,
      gatewayUrl,
      adminUrl: `http://${config.admin.host}:${gateway.adminPort}`,
      ports: { gateway: gateway.port, admin: gateway.adminPort, idp: idp.port, upstream: upstream.port },
      close() {
        // The gateway first, so nothing is proxied to an upstream that is going away.
        closing ??= stopAll();
        return closing;
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
