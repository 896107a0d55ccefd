/**
 * The child processes of a bench run: the bench upstream (bench/upstream.js), the
 * floor proxy (bench/floor.js) and the built gateway (`node dist/cli.js start --config
 * FILE`, and a second, older build with --baseline-dist), each optionally pinned with
 * taskset. All are always stopped by their pid, never by name.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import YAML from 'yaml';
import { pinnedCommand } from './placement.js';
import { ALGORITHMS, AUDIENCE, ISSUER, ROLE, SCOPE } from './tokens.js';

export const ROOT = join(import.meta.dirname, '..', '..');
export const CLI = join(ROOT, 'dist', 'cli.js');
const UPSTREAM = join(ROOT, 'bench', 'upstream.js');
const FLOOR = join(ROOT, 'bench', 'floor.js');
/** Connections of the gateway's upstream pool in the bench config, and of the floor's. */
export const UPSTREAM_CONNECTIONS = 128;

/** A free loopback port: listen on 0, read the port, close. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const KEEP = 8 * 1024;
/** Spawns argv; keeps the tail of stderr (and stdout when piped) for error messages. */
function launch(argv, { stdout = 'pipe', env = {} } = {}) {
  const [cmd, ...args] = argv;
  const proc = spawn(cmd, args, { stdio: ['pipe', stdout, 'pipe'], env: { ...process.env, ...env } });
  let err = '';
  proc.stderr.setEncoding('utf8').on('data', (d) => {
    err = (err + d).slice(-KEEP);
  });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  proc.on('error', () => {}); // reported through `exited`
  return { proc, exited, stderr: () => err };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves with how the process ended. */
async function stopProcess(child, graceMs = 10_000) {
  const { proc, exited } = child;
  if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
  let timer;
  const killed = new Promise((resolve) => {
    timer = setTimeout(() => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      resolve(null);
    }, graceMs);
  });
  await Promise.race([exited, killed]);
  clearTimeout(timer);
  return exited;
}

/**
 * Starts a child that prints one JSON line `{"port":N,"server":…}` on stdout once it
 * listens (bench/upstream.js, bench/floor.js).
 * @returns {Promise<{ url: string, port: number, server: string, pid: number, stderr: () => string, alive: () => boolean, stop(): Promise<{code:number|null,signal:string|null}> }>}
 */
async function startListener(argv, what) {
  const child = launch(argv);
  const info = await new Promise((resolve, reject) => {
    let out = '';
    child.proc.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl !== -1) resolve(JSON.parse(out.slice(0, nl)));
    });
    void child.exited.then(({ code }) => reject(new Error(`${what} exited (${code}) before listening: ${child.stderr()}`)));
  });
  return {
    url: `http://127.0.0.1:${info.port}`,
    port: info.port,
    server: info.server,
    pid: child.proc.pid,
    stderr: child.stderr,
    alive: () => child.proc.exitCode === null && child.proc.signalCode === null,
    stop: () => stopProcess(child, 3000),
  };
}

/**
 * Starts the bench upstream as a child process.
 * @param {{ cpus: string | null }} placement cores for taskset, or null
 */
export function startUpstreamProcess({ cpus }) {
  return startListener(pinnedCommand(cpus, [process.execPath, UPSTREAM]), 'bench upstream');
}

/**
 * Starts the floor proxy (bench/floor.js) in front of the upstream, with the pool size
 * the gateway's config gives its upstream.
 * @param {{ cpus: string | null, upstreamUrl: string }} options
 */
export function startFloorProcess({ cpus, upstreamUrl }) {
  return startListener(
    pinnedCommand(cpus, [process.execPath, FLOOR, '--upstream', upstreamUrl, '--connections', String(UPSTREAM_CONNECTIONS)]),
    'bench floor proxy',
  );
}

/**
 * The gateway config of a bench run (README, config/gateway.example.yaml): `/public/` with
 * `auth: none`, `/api/` with `auth: mfa` plus a role and a scope, one issuer whose
 * keys come from the JWKS file the harness wrote.
 */
export function gatewayConfig({ port, adminPort, upstreamUrl, jwksFile, threads, extra = {} }) {
  return {
    listen: { host: '127.0.0.1', port },
    admin: { host: '127.0.0.1', port: adminPort },
    // One front-end thread: the per-request CPU figures measure one loop. Pinned by
    // MFA_GATEWAY_THREADS=1 (what `auto` means; startGatewayProcess sets it) rather than
    // by the key, so a --baseline-dist build from before server.threads starts with the
    // same file; the threads-2 run sets the key, which wins over the variable.
    server: { drainTimeout: '5s' },
    verifier: { threads, maxQueue: 1024, cache: { max: 100_000, maxTtl: '5m', negativeTtl: '10s', negativeMax: 10_000 } },
    issuers: [
      {
        name: 'bench',
        issuer: ISSUER,
        profile: 'keycloak',
        jwksFile,
        audience: [AUDIENCE],
        algorithms: [...ALGORITHMS],
      },
    ],
    upstreams: { bench: { url: upstreamUrl, connections: UPSTREAM_CONNECTIONS } },
    // All bench traffic comes from 127.0.0.1. The per-address spraying guard would
    // (rightly) answer 429 to `invalid` and `spray` after 20 bad tokens and then block
    // the address for every later scenario; the bench measures what the guard cannot
    // help with: bad tokens from many addresses, which reach the verifier and the
    // negative cache. No address or subject limits either (none are set by default).
    rateLimit: { spraying: { enabled: false } },
    routes: [
      { path: '/public/', name: 'public', upstream: 'bench', auth: 'none' },
      { path: '/api/', name: 'api', upstream: 'bench', auth: 'mfa', roles: [ROLE], scopes: [SCOPE] },
    ],
    ...extra,
  };
}

/**
 * What the `gatewayRedis` target adds to the bench config: its state in the bench's own
 * redis-server, and a per-subject limit too high to ever refuse, so that every request
 * is counted and the counts are synced to Redis during the run (the memory gateway it
 * is compared with counts none: the ratio is an upper bound on what sharing costs).
 */
export function redisExtra(redisUrl) {
  return {
    state: { store: 'redis', redis: { url: redisUrl, keyPrefix: 'mfa-gateway-bench:' } },
    rateLimit: { spraying: { enabled: false }, subject: { points: 1_000_000_000, duration: '1s' } },
  };
}

/** What the `gatewayThreads` target adds to the bench config: `n` front-end threads (README "Threads"). */
export function threadsExtra(n) {
  return { server: { drainTimeout: '5s', threads: n } };
}

/**
 * Starts redis-server (Debian's package) on a free loopback port, nothing persisted,
 * pinned with the upstream and the load generator (Redis runs on another machine in a
 * real deployment; its CPU is not the gateway's).
 * @param {{ cpus: string | null }} placement
 */
export async function startRedisProcess({ cpus }) {
  const found = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (found.error || found.status !== 0) throw new Error("redis-server is not installed: apt-get install -y redis-server (Debian's package), needed by the cached-redis scenario");
  const port = await freePort();
  const child = launch(pinnedCommand(cpus, ['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']));
  await new Promise((resolve, reject) => {
    let out = '';
    child.proc.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      if (out.includes('Ready to accept connections')) resolve();
    });
    void child.exited.then(({ code }) => reject(new Error(`redis-server exited (${code}) before it was ready: ${child.stderr()}${out}`)));
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: child.proc.pid,
    stderr: child.stderr,
    alive: () => child.proc.exitCode === null && child.proc.signalCode === null,
    stop: () => stopProcess(child, 3000),
  };
}

async function waitReady(url, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let exited = null;
  void child.exited.then((e) => (exited = e));
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (exited) throw new Error(`gateway exited (code ${exited.code}, signal ${exited.signal}) before it was ready:\n${child.stderr().trim()}`);
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (r.status === 200) return;
      last = `${r.status} ${await r.text()}`;
    } catch (err) {
      last = err.message;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gateway not ready after ${timeoutMs} ms (last /readyz: ${last}):\n${child.stderr().trim()}`);
}

/**
 * Writes the config and starts `node dist/cli.js start --config FILE`; resolves once
 * `GET /readyz` on the admin port answers 200. The gateway's stdout (one audit line
 * per request) goes to /dev/null so that reading it costs the load generator nothing;
 * the gateway still formats and writes every line, as in production.
 */
export async function startGatewayProcess({ dir, cpus, upstreamUrl, jwksFile, threads, nodeArgs = [], cli = CLI, readyTimeoutMs = 20_000, extra = {} }) {
  if (!existsSync(cli)) throw new Error(`${cli} not found: build first (npm run build)`);
  const port = await freePort();
  const adminPort = await freePort();
  const config = gatewayConfig({ port, adminPort, upstreamUrl, jwksFile, threads, extra });
  const configFile = join(dir, 'gateway.yaml');
  writeFileSync(configFile, YAML.stringify(config));
  // nodeArgs e.g. ['--cpu-prof', '--cpu-prof-dir=.tmp/profiles'] to see where the gateway spends its time.
  const child = launch(pinnedCommand(cpus, [process.execPath, ...nodeArgs, cli, 'start', '--config', configFile]), { stdout: 'ignore', env: { MFA_GATEWAY_THREADS: '1' } });
  try {
    await waitReady(`http://127.0.0.1:${adminPort}/readyz`, child, readyTimeoutMs);
  } catch (err) {
    await stopProcess(child, 2000);
    throw err;
  }
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    adminPort,
    configFile,
    pid: child.proc.pid,
    stderr: child.stderr,
    /** False once the process has exited (crashed) on its own. */
    alive: () => child.proc.exitCode === null && child.proc.signalCode === null,
    /** SIGTERM (the contract: drain, exit 0); SIGKILL after 10 s. */
    stop: () => stopProcess(child, 10_000),
  };
}

let clockTicks = null;
/**
 * CPU time (user + system, all threads) a process has used so far, in ms, from
 * /proc/PID/stat; null where there is no /proc. Resolution is one clock tick (10 ms),
 * plenty over a run of seconds.
 */
export function cpuTimeMs(pid) {
  if (process.platform !== 'linux' || !pid) return null;
  try {
    if (clockTicks === null) {
      const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
      clockTicks = Number(r.stdout) > 0 ? Number(r.stdout) : 100;
    }
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(rest[11]) + Number(rest[12])) * 1000) / clockTicks;
  } catch {
    return null;
  }
}
