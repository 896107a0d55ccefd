import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { GatewayError } from '../errors.js';

type Uws = typeof import('uWebSockets.js');

let loaded: Uws | undefined;

const require = createRequire(import.meta.url);

/**
 * The Node.js versions the gateway runs on: the uWebSockets.js build it depends on
 * ships native code for Node ABI 93, 108 and 115 (Node 16, 18 and 20) only, and its
 * other dependencies need Node 20.18.1 or later (undici 7), so Node 20 is the one
 * line both allow. Node 22 (ABI 127) and later have no native build here; the
 * package would fall back to a slow pure-JS emulation.
 */
export const SUPPORTED_NODE = { major: 20, minor: 18, patch: 1, abi: '115' } as const;

interface UwsPackage {
  readonly name: string;
  readonly version: string;
  readonly dir: string;
}

function uwsPackage(): UwsPackage {
  try {
    const file = require.resolve('uWebSockets.js/package.json');
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
    return { name: pkg.name ?? 'uWebSockets.js', version: pkg.version ?? 'unknown', dir: dirname(file) };
  } catch {
    return { name: 'uWebSockets.js', version: 'unknown', dir: '' };
  }
}

/** The installed uWebSockets.js build: its package name and version (metrics' build_info, messages). */
export function uwsBuild(): { readonly name: string; readonly version: string } {
  const { name, version } = uwsPackage();
  return { name, version };
}

/** The platform-arch pairs the installed build has native code for, for the running Node ABI. */
function nativePlatforms(dir: string, abi: string): string[] {
  try {
    return readdirSync(join(dir, 'binaries'))
      .map((f) => /^uws_(.+)_(\d+)\.node$/.exec(f))
      .filter((m): m is RegExpExecArray => m !== null && m[2] === abi)
      .map((m) => m[1]!.replace('_', '-'))
      .sort();
  } catch {
    return [];
  }
}

/**
 * Why this runtime cannot run the gateway, or undefined when it can: Node.js 20.18.1 or
 * a later 20.x, on a platform the uWebSockets.js build has native code for.
 *
 * @example runtimeProblem({ node: '22.1.0', modules: '127' }) → 'Node.js 20.x is required (this is 22.1.0): …'
 */
export function runtimeProblem(
  versions: { readonly node: string; readonly modules: string } = process.versions,
  platform: string = process.platform,
  arch: string = process.arch,
): string | undefined {
  const pkg = uwsPackage();
  const build = `the uWebSockets.js build this gateway uses (${pkg.name}@${pkg.version})`;
  const [major = 0, minor = 0, patch = 0] = versions.node.split('.').map(Number);
  const s = SUPPORTED_NODE;
  const install = 'Install Node.js 20 (the 20.x LTS line, e.g. `nvm install 20`), then run `npm ci` again.';
  if (major !== s.major) {
    return (
      `Node.js ${s.major}.x is required (this is ${versions.node}): ${build} ships native code for Node 16, 18 and 20 only ` +
      `(ABI 93, 108, 115), and the gateway's other dependencies need Node ${s.major}.${s.minor}.${s.patch} or later. ${install}`
    );
  }
  if (minor < s.minor || (minor === s.minor && patch < s.patch)) {
    return `Node.js ${s.major}.${s.minor}.${s.patch} or a later ${s.major}.x is required (this is ${versions.node}): undici 7 needs it. ${install}`;
  }
  if (pkg.dir !== '' && !existsSync(join(pkg.dir, 'binaries', `uws_${platform}_${arch}_${versions.modules}.node`))) {
    const have = nativePlatforms(pkg.dir, versions.modules);
    return (
      `${build} has no native code for ${platform}-${arch}` +
      (have.length > 0 ? `; it has for ${have.join(', ')}.` : '.') +
      ' Run the gateway on one of those, with Node.js 20.'
    );
  }
  return undefined;
}

/**
 * Loads uWebSockets.js and refuses its pure-JS fallback. The unofficial package
 * falls back to a slow emulation with only a console warning when no native build
 * matches this platform and Node ABI; a gateway whose whole point is latency must
 * not start on it. A native `App` prints `[native code]` from `toString()`.
 */
export function loadUws(): Uws {
  if (loaded) return loaded;
  const problem = runtimeProblem();
  if (problem !== undefined) throw new GatewayError('UNSUPPORTED_RUNTIME', problem);
  // The package logs its fallback warning through console.warn/log; keep it, but decide ourselves.
  const uws = require('uWebSockets.js') as Uws;
  if (!String(uws.App).includes('[native code]')) {
    throw new GatewayError(
      'UWS_NOT_NATIVE',
      `uWebSockets.js has no native build for ${process.platform}-${process.arch} with Node ABI ${process.versions.modules}` +
        ' (or UWS_USE_FALLBACK is set); refusing to run on the slow pure-JS fallback. Use Node.js 20' +
        ` (the build shipped in "${uwsBuild().name}@${uwsBuild().version}"), unset UWS_USE_FALLBACK, and run \`npm ci\` again.`,
    );
  }
  // Without this every answer carries `uWebSockets: 20`, naming the server software and
  // its version to anyone who asks (RFC 9110 §10.2.4 leaves Server-like headers optional;
  // OWASP's header guidance is to omit them). Must run before any App is created.
  (uws as unknown as { _cfg(option: string): void })._cfg('silent');
  loaded = uws;
  return uws;
}

/** Decodes one of uWS's ArrayBuffer texts (remote address). */
export function abText(ab: ArrayBuffer): string {
  return Buffer.from(ab).toString('latin1');
}
