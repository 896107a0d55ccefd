/**
 * The gateway's connection to Redis (README "Running several instances"): one
 * connection for commands and one subscribed to the instances' channel, both
 * reconnected by ioredis with a capped backoff, and the one judgement of whether the
 * store is **up**: both connected, every write left over from an outage replayed and the
 * shared lists loaded again (`onConnected`), and no command failed since the last one
 * that worked. A heartbeat (PING every half second) notices a Redis that stopped answering
 * while its connection stays open, within `commandTimeout` + 0.5 s.
 *
 * Why ioredis (README "Which Redis client"): measured on this machine, a single command
 * such as the DPoP replay check's `SET NX PX` costs about half the CPU of node-redis's,
 * and pub/sub receives about 1.6× as many messages per second; the sync's counts go in
 * one Lua script per interval, where both clients cost the same.
 *
 * Nothing here ever logs the URL's password, the password file's content or a key.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { Redis, type RedisOptions } from 'ioredis';
import type { CompiledRedis } from '../config/state-schema.js';
import { GatewayError } from '../errors.js';

export type LogFn = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown>) => void;

export interface LinkStatus {
  readonly up: boolean;
  /** ms since the epoch of the last change between up and down. */
  readonly since: number;
  /** Why it is down (a short cause, never a secret); null while up. */
  readonly error: string | null;
}

export interface RedisLinkOptions {
  readonly cfg: CompiledRedis;
  readonly now: () => number;
  readonly log: LogFn;
  /** The channel every instance publishes on and subscribes to. */
  readonly channel: string;
  readonly onMessage: (message: string) => void;
  /**
   * Runs each time both connections are (again) ready, before the store counts as up:
   * replays what failed meanwhile, loads the shared lists. A rejection keeps it down
   * (tried again at the next heartbeat).
   */
  readonly onConnected: () => Promise<void>;
  /** Each change between up and down (the gateway's log line, the gauge). */
  readonly onChange: (status: LinkStatus) => void;
  /** The environment a `passwordEnv` is read from (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
}

/** Longest wait between two reconnection attempts: Redis back is seen within about 2 s. */
const MAX_BACKOFF_MS = 2000;
/** A Redis that stops answering with its connection open is seen within HEARTBEAT_MS + commandTimeout. */
const HEARTBEAT_MS = 500;

/** The Redis address for log lines and /readyz: scheme, host and port, never the userinfo. */
export function redisAddress(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname.length > 1 ? u.pathname : ''}`;
}

/** The password the config names (a file's first line, or an environment variable); undefined: the URL's, or none. */
export function readRedisPassword(cfg: CompiledRedis, env: NodeJS.ProcessEnv): string | undefined {
  const from = cfg.password;
  if (from === null) return undefined;
  if ('env' in from) {
    const v = env[from.env];
    if (v === undefined || v === '') throw new GatewayError('REDIS_PASSWORD', `state.redis.passwordEnv: the environment variable ${from.env} is not set`);
    return v;
  }
  let text: string;
  try {
    text = readFileSync(from.file, 'utf8');
  } catch (err) {
    throw new GatewayError('REDIS_PASSWORD', `state.redis.passwordFile: cannot read ${from.file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const line = text.replace(/\r?\n$/, '');
  if (line === '' || line.includes('\n')) throw new GatewayError('REDIS_PASSWORD', `state.redis.passwordFile: ${from.file} must hold the password on one line`);
  return line;
}

function tlsOptions(cfg: CompiledRedis): ConnectionOptions | undefined {
  const t = cfg.tls;
  if (t === null) return cfg.url.startsWith('rediss:') ? {} : undefined;
  const read = (key: string, f: string | null): Buffer | undefined => {
    if (f === null) return undefined;
    try {
      return readFileSync(f);
    } catch (err) {
      throw new GatewayError('REDIS_TLS', `state.redis.tls.${key}: cannot read ${f}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  };
  const ca = read('ca', t.ca);
  const cert = read('cert', t.cert);
  const key = read('key', t.key);
  return { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}), ...(t.servername !== null ? { servername: t.servername } : {}) };
}

/** A short cause for the log and /readyz (ioredis's messages name the address, never the password). */
export function causeOf(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e?.code !== undefined ? `${e.code}${e.message && !e.message.includes(e.code) ? `: ${e.message}` : ''}` : String(e?.message ?? err);
}

export class RedisLink {
  readonly commands: Redis;
  private readonly subscriber: Redis;
  private subscribed = false;
  private up = false;
  private since: number;
  private error: string | null = 'connecting';
  /** A command failed and none has worked since. */
  private failing = false;
  /** The last connection error since a connection was last ready. */
  private lastCause: string | null = null;
  private resyncing = false;
  private closed = false;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly firstUp: Promise<void>;
  private resolveFirstUp!: () => void;

  constructor(private readonly o: RedisLinkOptions) {
    this.since = o.now();
    this.firstUp = new Promise((resolve) => (this.resolveFirstUp = resolve));
    const password = readRedisPassword(o.cfg, o.env ?? process.env);
    const tls = tlsOptions(o.cfg);
    const options: RedisOptions = {
      lazyConnect: true,
      connectTimeout: o.cfg.connectTimeoutMs,
      commandTimeout: o.cfg.commandTimeoutMs,
      // Nothing waits for a connection: a command while Redis is away fails at once, and
      // each part falls back (README "Redis outages"). In-flight commands are not sent
      // again after a reconnect: the parts replay what matters themselves.
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      autoResubscribe: false,
      maxRetriesPerRequest: 0,
      // 100 ms, 200 ms, … up to MAX_BACKOFF_MS, each shortened by up to 10 % so a fleet does not reconnect in step.
      retryStrategy: (times) => Math.round(Math.min(100 * 2 ** Math.min(times - 1, 10), MAX_BACKOFF_MS) * (0.9 + Math.random() * 0.1)),
      ...(password !== undefined ? { password } : {}),
      ...(tls !== undefined ? { tls } : {}),
      connectionName: 'mfa-gateway',
    };
    this.commands = new Redis(o.cfg.url, options);
    this.subscriber = new Redis(o.cfg.url, { ...options, connectionName: 'mfa-gateway-sub' });
    for (const c of [this.commands, this.subscriber]) {
      // ioredis emits an error for every failed attempt: the outage is logged once, on the way down.
      c.on('error', (err: Error) => {
        this.lastCause = causeOf(err);
        this.down(this.lastCause);
      });
      // The close that follows an error (a refused password, a reset) keeps the error as the cause.
      c.on('close', () => {
        if (c === this.subscriber) this.subscribed = false;
        this.down(this.lastCause ?? 'connection closed');
      });
      c.on('ready', () => {
        this.lastCause = null;
        void this.evaluate();
      });
    }
    this.subscriber.on('message', (_channel: string, message: string) => o.onMessage(message));
    this.heartbeat = setInterval(() => void this.beat(), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** Connects; resolves once up, or after `waitMs` (the store then comes up by itself later). */
  async start(waitMs: number): Promise<void> {
    // Connection failures surface through the 'error' events; retryStrategy keeps trying.
    this.commands.connect().catch(() => {});
    this.subscriber.connect().catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.firstUp, new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
    clearTimeout(timer);
  }

  status(): LinkStatus {
    return { up: this.up, since: this.since, error: this.up ? null : this.error };
  }

  isUp(): boolean {
    return this.up;
  }

  /** A command worked: the store may be up again. */
  succeeded(): void {
    if (!this.failing) return;
    this.failing = false;
    void this.evaluate();
  }

  /** A command failed (timeout, connection lost, refused): the store is down until one works again. */
  failed(err: unknown): void {
    this.failing = true;
    this.down(causeOf(err));
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.heartbeat);
    for (const c of [this.commands, this.subscriber]) {
      try {
        await Promise.race([c.quit(), new Promise((resolve) => setTimeout(resolve, this.o.cfg.commandTimeoutMs))]);
      } catch {
        // Already gone: nothing to say goodbye to.
      }
      c.disconnect();
    }
  }

  private down(cause: string): void {
    this.error = cause;
    if (!this.up || this.closed) return;
    this.up = false;
    this.since = this.o.now();
    this.o.onChange(this.status());
  }

  private async beat(): Promise<void> {
    if (this.closed || this.commands.status !== 'ready') return;
    try {
      await this.commands.ping();
      this.succeeded();
      if (!this.up) await this.evaluate();
    } catch (err) {
      this.failed(err);
    }
  }

  /** Up when both connections are ready, the channel subscribed, no command failing, and onConnected done. */
  private async evaluate(): Promise<void> {
    if (this.closed || this.up || this.resyncing || this.failing) return;
    if (this.commands.status !== 'ready' || this.subscriber.status !== 'ready') return;
    this.resyncing = true;
    try {
      // Subscribed before the lists are loaded: a change published meanwhile is received,
      // and one made before is in what is loaded (applying both twice changes nothing).
      if (!this.subscribed) {
        await this.subscriber.subscribe(this.o.channel);
        this.subscribed = true;
      }
      await this.o.onConnected();
      if (this.closed || this.commands.status !== 'ready' || !this.subscribed || this.failing) return;
      this.up = true;
      this.error = null;
      this.since = this.o.now();
      this.o.onChange(this.status());
      this.resolveFirstUp();
    } catch (err) {
      this.failing = true;
      this.error = causeOf(err);
    } finally {
      this.resyncing = false;
    }
  }
}
