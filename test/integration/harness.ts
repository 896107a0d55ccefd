/**
 * Real servers for integration tests: node:http upstreams that record what they
 * received, and the built gateway CLI (dist/cli.js) started as a child process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import YAML from 'yaml';
import { copyAuditFile, outputSink, recordAuditFile, recordOutput, recordToken } from './leaks.js';

/** src/threads/count.ts THREADS_ENV (the harness does not import the gateway's modules). */
const THREADS_ENV = 'MFA_GATEWAY_THREADS';

export const ROOT = resolve(import.meta.dirname, '../..');
export const CLI = join(ROOT, 'dist/cli.js');

export interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  bodyBytes: number;
  bodySha256: string;
  /** The client (the gateway) went away before the request body ended. */
  aborted: boolean;
}

export interface Upstream {
  readonly url: string;
  readonly port: number;
  readonly received: Received[];
  readonly server: Server;
  close(): Promise<void>;
}

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, got: Received) => void;

/**
 * An upstream that records every request (headers, body hash) and then calls
 * `handler` (default: 200 with a JSON echo of method, url and headers).
 * The handler runs once the request body has been read completely.
 */
export async function startUpstream(handler?: UpstreamHandler, options: { readBody?: boolean } = {}): Promise<Upstream> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const hash = createHash('sha256');
    const got: Received = {
      method: req.method!,
      url: req.url!,
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      bodyBytes: 0,
      bodySha256: '',
      aborted: false,
    };
    received.push(got);
    req.on('aborted', () => {
      got.aborted = true;
    });
    res.on('close', () => {
      if (!res.writableFinished) got.aborted = true;
    });
    const done = () => {
      got.bodySha256 = hash.digest('hex');
      if (handler) handler(req, res, got);
      else {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ method: got.method, url: got.url, headers: got.headers, bodyBytes: got.bodyBytes, bodySha256: got.bodySha256 }));
      }
    };
    if (options.readBody === false) return handler?.(req, res, got);
    req.on('data', (c: Buffer) => {
      got.bodyBytes += c.length;
      hash.update(c);
    });
    req.on('end', done);
  });
  server.keepAliveTimeout = 2000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    received,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export function tempDir(prefix = 'mfa-gw-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Writes a config object as YAML into a fresh temp dir and returns its path. */
export function writeConfig(config: unknown, dir = tempDir()): string {
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, YAML.stringify(config));
  return file;
}

export interface GatewayProcess {
  readonly port: number;
  readonly adminPort: number;
  readonly url: string;
  readonly adminUrl: string;
  readonly proc: ChildProcess;
  /** Everything the process printed so far. */
  stdout(): string;
  stderr(): string;
  /** The JSON lines on stdout so far (operational log and stdout audit lines), parsed. */
  logLines(): Record<string, unknown>[];
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

/**
 * Starts the built CLI (`node dist/cli.js start --config FILE`, or `argv`) and waits for
 * its `listening` log line, which carries the real ports (the configs use port 0).
 */
export async function startGatewayProcess(
  configFile: string,
  env: Record<string, string> = {},
  argv: readonly string[] = [process.execPath, CLI, 'start', '--config', configFile],
): Promise<GatewayProcess> {
  const proc = spawn(argv[0]!, argv.slice(1), {
    // One front-end thread unless a test asks for more (server.threads, or this variable),
    // or the suite runs with MFA_GATEWAY_THREADS set: the suite's tests count on one loop;
    // test/integration/threads/ tests the threads.
    env: { ...process.env, [THREADS_ENV]: process.env[THREADS_ENV] ?? '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  // For the whole-run leak check (test/leaks): everything the process prints, as it
  // prints it, and its audit file when it has exited (tests may delete its directory).
  const label = `gateway-${basename(dirname(configFile))}`;
  const outSink = outputSink(`${label}.stdout`);
  const errSink = outputSink(`${label}.stderr`);
  const auditFile = auditFileOf(configFile);
  if (auditFile) recordAuditFile(auditFile);
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    outSink(d);
  });
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
    errSink(d);
  });
  const exited = new Promise<number | null>((r) =>
    proc.on('exit', (code) => {
      if (auditFile) copyAuditFile(`${label}.audit`, auditFile);
      r(code);
    }),
  );
  const ports = await new Promise<{ port: number; adminPort: number }>((resolveP, reject) => {
    const onData = () => {
      for (const line of out.split('\n')) {
        if (!line.includes('"listening"')) continue;
        const j = JSON.parse(line) as { port: number; adminPort: number };
        proc.stdout!.off('data', onData);
        resolveP({ port: j.port, adminPort: j.adminPort });
        return;
      }
    };
    proc.stdout!.on('data', onData);
    void exited.then((code) => reject(new Error(`gateway exited (${code}) before listening:\n${err}\n${out}`)));
  });
  return {
    ...ports,
    url: `http://127.0.0.1:${ports.port}`,
    adminUrl: `http://127.0.0.1:${ports.adminPort}`,
    proc,
    stdout: () => out,
    stderr: () => err,
    logLines: () =>
      out
        .split('\n')
        .slice(0, -1) // a line still being written is not parsed yet
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    exited,
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/** The audit file a config writes (`audit.destination` other than stdout/stderr), if any. */
function auditFileOf(configFile: string): string | undefined {
  let audit: { enabled?: unknown; destination?: unknown } | undefined;
  try {
    audit = (YAML.parse(readFileSync(configFile, 'utf8')) as { audit?: typeof audit } | null)?.audit;
  } catch {
    return undefined; // a config the gateway itself will refuse
  }
  const dest = audit?.destination;
  if (!audit || audit.enabled === false || typeof dest !== 'string' || dest === 'stdout' || dest === 'stderr') return undefined;
  return isAbsolute(dest) ? dest : resolve(dirname(configFile), dest);
}

/** Runs the CLI to completion. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveP) => {
    const proc = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, [THREADS_ENV]: process.env[THREADS_ENV] ?? '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    proc.on('exit', (code) => {
      recordOutput(`cli-${args[0] ?? ''}.stdout`, stdout);
      recordOutput(`cli-${args[0] ?? ''}.stderr`, stderr);
      resolveP({ code, stdout, stderr });
    });
  });
}

/**
 * Sends raw bytes on a fresh TCP connection and collects the answer until the
 * server closes or `idleMs` passes without data. For framing tests that no
 * well-behaved client library would send.
 */
export function rawRequest(port: number, data: string | Buffer, idleMs = 1000): Promise<{ text: string; closed: boolean }> {
  // Bearer tokens written by hand into raw requests go into the leak check's list too.
  for (const m of data.toString('latin1').matchAll(/\bbearer +([^\s,]+)/gi)) recordToken(m[1]);
  return new Promise((resolveP) => {
    const sock = connect(port, '127.0.0.1', () => sock.write(data));
    let text = '';
    let timer = setTimeout(() => finish(false), idleMs);
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolveP({ text, closed });
    };
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      text += d;
      clearTimeout(timer);
      timer = setTimeout(() => finish(false), idleMs);
    });
    sock.on('close', () => finish(true));
    sock.on('error', () => finish(true));
  });
}

/** A minimal valid config around the given routes and upstreams. */
export function baseConfig(extra: Record<string, unknown>): Record<string, unknown> {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    server: { drainTimeout: '10s' },
    ...extra,
  };
}
