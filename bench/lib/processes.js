/**
 * The child processes of a bench run: the bench upstream (bench/upstream.js), the
 * floor proxy (bench/floor.js), the built gateway (`node dist/cli.js start --config
 * FILE`, and a second, older build with --baseline-dist) and HAProxy as a peer, each
 * optionally pinned with taskset. All are always stopped by their pid, never by name.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { pinnedCommand } from './placement.js';
import { freePort } from './ports.js';
import { ALGORITHMS, AUDIENCE, ISSUER, KID, ROLE, SCOPE } from './tokens.js';

export const ROOT = join(import.meta.dirname, '..', '..');
export const CLI = join(ROOT, 'dist', 'cli.js');
const UPSTREAM = join(ROOT, 'bench', 'upstream.js');
const FLOOR = join(ROOT, 'bench', 'floor.js');
/** Connections of the gateway's upstream pool in the bench config, and of the floor's. */
export const UPSTREAM_CONNECTIONS = 128;

export { freePort };

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
 * What every started process offers the run: its pid (for /proc CPU), the tail of its
 * stderr, whether it is still running (false once it exited on its own) and stop()
 * (SIGTERM, then SIGKILL after `graceMs`).
 */
function handle(child, graceMs) {
  return {
    pid: child.proc.pid,
    stderr: child.stderr,
    alive: () => child.proc.exitCode === null && child.proc.signalCode === null,
    stop: () => stopProcess(child, graceMs),
  };
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
    ...handle(child, 3000),
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
    ...handle(child, 3000),
  };
}

/**
 * HAProxy's configuration as the bench's peer (issues 12 and 13 compare the gateway with
 * HAProxy 2.6 verifying an RS256 JWT on every request with `jwt_verify`, no cache).
 *
 * What it checks, in this order, refusing with 401 at the first that fails: a bearer
 * token is present (RFC 6750 §2.1); its JOSE header's `alg` is exactly RS256 (RFC 8725
 * §3.1: never trust the token's own choice); `iss` is the bench issuer and `aud` the bench
 * audience (a string: an `aud` array is refused, stricter than RFC 7519 §4.1.3); `exp`
 * is after now (RFC 7519 §4.1.4, whole seconds, no leeway); the RS256 signature against
 * the bench key's public PEM (RFC 7515 §5.2). The cheap claim checks come first, as a
 * HAProxy user would order them; for the bench's valid tokens every check runs.
 *
 * What it does not do, and the gateway does on the same requests, so HAProxy's rows are
 * the cost of a signature check per request and little else: no MFA (`amr`/`acr`,
 * `auth_time` age), no roles or scopes, no `nbf`/`iat`, no `kid` lookup in a JWKS (one
 * PEM), no JSON validation of header or payload (jwt_verify checks the signature only,
 * HAProxy's documentation says so), no identity headers to the upstream, no
 * `x-forwarded-*`/request id, no audit line, no metrics, no routing beyond one backend.
 * And no cache: every request is a full RSA verification, as in the issues' figures.
 */
export function haproxyConfig({ port, upstreamUrl, pemFile }) {
  const up = new URL(upstreamUrl);
  return `# Written by bench/lib/processes.js (haproxyConfig); see the comment there.
global
    # One thread, as the gateway's one front-end thread; the process is pinned with
    # taskset to the gateway's core, so both have the same one core.
    nbthread 1
    # Room for the bench's 64 client and up to 128 upstream connections; the default
    # depends on the file-descriptor limit.
    maxconn 4096
    # No "log" line anywhere: HAProxy writes no log (the gateway writes its audit line
    # to /dev/null, which still costs it the formatting and the write).

defaults
    mode http
    # Keep-alive on both sides (HAProxy's default, said explicitly): the gateway keeps
    # client connections open and pools upstream ones.
    option http-keep-alive
    # Upstream connect 2 s and headers/body 30 s are the gateway's upstream defaults
    # (config/gateway.example.yaml upstreams.*.timeouts).
    timeout connect 2s
    timeout server 30s
    # uWebSockets.js closes an idle client connection after 10 s: the same for a client
    # that sends nothing, an incomplete request head or nothing between two requests.
    timeout client 10s
    timeout http-request 10s
    timeout http-keep-alive 10s

frontend bench
    bind 127.0.0.1:${port}
    http-request set-var(txn.bearer) http_auth_bearer
    http-request deny deny_status 401 unless { var(txn.bearer) -m found }
    http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('$.alg')
    http-request deny deny_status 401 unless { var(txn.alg) -m str RS256 }
    http-request set-var(txn.iss) var(txn.bearer),jwt_payload_query('$.iss')
    http-request deny deny_status 401 unless { var(txn.iss) -m str ${ISSUER} }
    http-request set-var(txn.aud) var(txn.bearer),jwt_payload_query('$.aud')
    http-request deny deny_status 401 unless { var(txn.aud) -m str ${AUDIENCE} }
    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
    http-request set-var(txn.now) date()
    http-request deny deny_status 401 unless { var(txn.exp),sub(txn.now) -m int gt 0 }
    # The key is named literally so that HAProxy loads it at start-up (its documentation:
    # no disk access at run time); alg is literal too, having been checked above.
    http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify("RS256","${pemFile}") -m int 1 }
    default_backend upstream

backend upstream
    # Idle upstream connections are shared by every client connection, as the gateway's
    # undici pool is: without it HAProxy would tie each server connection to one client.
    http-reuse always
    # At most the gateway's pool size (UPSTREAM_CONNECTIONS) in use at once.
    server bench ${up.hostname}:${up.port} maxconn ${UPSTREAM_CONNECTIONS}
`;
}

/** The public half of the bench's RS256 key (the one `kid` in the JWKS file the gateway reads) as a PEM SubjectPublicKeyInfo. */
export function rs256PublicPem(jwksFile) {
  const jwk = JSON.parse(readFileSync(jwksFile, 'utf8')).keys.find((k) => k.kid === KID.RS256);
  if (!jwk) throw new Error(`${jwksFile} has no key ${KID.RS256}`);
  const { kid, alg, use, ...key } = jwk;
  return createPublicKey({ key, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
}

export const HAPROXY_MISSING = "haproxy is not installed: apt-get install -y haproxy (Debian's package), needed by the haproxy scenarios";

/**
 * Starts HAProxy (`bin`, default Debian's `haproxy`) in the foreground (`-db`) with
 * haproxyConfig() written to `dir`, pinned like the gateway. Resolves once it answers;
 * its first answer, to a request without a token, must be 401, or the config is not
 * verifying and the run stops here.
 * @param {{ dir: string, cpus: string | null, upstreamUrl: string, jwksFile: string, bin?: string }} options
 */
export async function startHaproxyProcess({ dir, cpus, upstreamUrl, jwksFile, bin = 'haproxy', readyTimeoutMs = 10_000 }) {
  let found = spawnSync(bin, ['-v'], { encoding: 'utf8' });
  // Debian installs it in /usr/sbin, which is on root's PATH but not on other users'.
  if (bin === 'haproxy' && (found.error || found.status !== 0) && existsSync('/usr/sbin/haproxy')) {
    bin = '/usr/sbin/haproxy';
    found = spawnSync(bin, ['-v'], { encoding: 'utf8' });
  }
  if (found.error || found.status !== 0) throw new Error(bin === 'haproxy' ? HAPROXY_MISSING : `${bin} -v failed: ${found.error?.message ?? found.stderr.trim()} (${HAPROXY_MISSING})`);
  const version = found.stdout.split('\n')[0].trim();
  const pemFile = join(dir, 'haproxy-rs256.pem');
  writeFileSync(pemFile, rs256PublicPem(jwksFile));
  const port = await freePort();
  const configFile = join(dir, 'haproxy.cfg');
  writeFileSync(configFile, haproxyConfig({ port, upstreamUrl, pemFile }));
  const child = launch(pinnedCommand(cpus, [bin, '-db', '-f', configFile]), { stdout: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + readyTimeoutMs;
  let exited = null;
  void child.exited.then((e) => (exited = e));
  let status = null;
  while (status === null) {
    if (exited) throw new Error(`haproxy exited (code ${exited.code}, signal ${exited.signal}) before it was ready:\n${child.stderr().trim()}`);
    try {
      const r = await fetch(`${url}/api/hello`, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      status = r.status;
    } catch {
      if (Date.now() > deadline) {
        await stopProcess(child, 2000);
        throw new Error(`haproxy not answering after ${readyTimeoutMs} ms:\n${child.stderr().trim()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  if (status !== 401) {
    await stopProcess(child, 2000);
    throw new Error(`haproxy answered ${status} to a request without a token (expected 401): its config does not verify`);
  }
  return {
    url,
    port,
    version,
    configFile,
    ...handle(child, 3000),
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
    // stop(): SIGTERM (the contract: drain, exit 0); SIGKILL after 10 s.
    ...handle(child, 10_000),
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
