/**
 * A real redis-server (Debian's package) for the shared-state tests: started on a free
 * loopback port with nothing persisted (`--save '' --appendonly no`), stopped (also mid-
 * test, to make an outage) and started again on the same port. A machine without
 * redis-server fails the test with the line that installs it: never a skip.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { freePort } from '../authn/idp.js';

export const INSTALL_LINE = 'redis-server is not installed: apt-get install -y redis-server (Debian\'s package; .ci/run installs it when missing)';

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** A client of the test's own (to read what the gateways wrote). */
  readonly client: Redis;
  /** Stops the server (SIGTERM) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port (empty: nothing was persisted). */
  start(): Promise<void>;
  /** SIGSTOP: the connections stay open, nothing answers (a hung Redis). */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  close(): Promise<void>;
}

/** Throws the install line when redis-server is missing. */
export function requireRedisServer(): void {
  const found = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (found.error !== undefined || found.status !== 0) throw new Error(INSTALL_LINE);
}

/** `args`: more redis-server options (e.g. `['--requirepass', …]`; the test's own client then authenticates with `password`). */
export async function startRedisServer(args: readonly string[] = [], password?: string): Promise<RedisServer> {
  requireRedisServer();
  const port = await freePort();
  let proc: ChildProcess | null = null;
  const launch = async (): Promise<void> => {
    const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc = p;
    let out = '';
    await new Promise<void>((resolve, reject) => {
      p.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('Ready to accept connections')) resolve();
      });
      p.once('exit', (code) => reject(new Error(`redis-server exited (${code}) before it was ready:\n${out}`)));
    });
  };
  await launch();
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 200, ...(password !== undefined ? { password } : {}) });
  client.on('error', () => {}); // the outage tests stop the server under it
  await client.connect();
  const stop = async (): Promise<void> => {
    const p = proc;
    if (p === null || p.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    p.kill('SIGTERM');
    await exited;
    proc = null;
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    client,
    stop,
    start: launch,
    pause: () => void proc?.kill('SIGSTOP'),
    resume: () => void proc?.kill('SIGCONT'),
    async close() {
      client.disconnect();
      proc?.kill('SIGCONT');
      await stop();
    },
  };
}

/** Polls `read` until `done` holds, at most `timeoutMs` (a generous bound, never a timing assertion); returns the last value. */
export async function waitFor<T>(read: () => Promise<T> | T, done: (v: T) => boolean, timeoutMs = 15_000, what = 'the condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T = await read();
  while (!done(last)) {
    if (Date.now() > deadline) throw new Error(`${what} did not hold within ${timeoutMs} ms; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
    last = await read();
  }
  return last;
}
