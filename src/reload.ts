/**
 * Live reload (README, "Reload"): the one place a new config file is read, validated
 * exactly as `check` validates it, compared with the config in force, and handed to
 * the gateway to put in force. SIGHUP, POST /reload and `--watch` all come here.
 *
 * A reload is all or nothing. The file must pass `check`; settings that a running
 * process cannot change (the listeners, the thread counts, the pid file) must be
 * unchanged; and the gateway must be able to prepare every part (open a new audit file,
 * read the admin token). Only then is anything changed, and the state is swapped in one
 * assignment: requests in flight finish under the state they started with. Otherwise
 * the old config stays and every problem is logged, counted
 * (`mfa_gateway_config_reload_total{result="failure"}`) and answered to POST /reload.
 * A reload of an unchanged file is a success that changes nothing.
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from './observe/log.js';
import type { Metrics } from './observe/metrics.js';
import type { RawConfig } from './config/schema.js';
import { ConfigError, formatProblem, loadConfigFile, redactSecrets, type LoadedConfig } from './config/load.js';
import { sameSettings } from './config/same.js';

/**
 * Settings a running gateway cannot follow: the listeners are bound once (their address,
 * port and TLS context), the worker pools are sized once, and the pid file was written
 * where it was. `server.threads` is listed ahead of the front-end threads that will read
 * it; a key the schema does not have compares equal (absent on both sides).
 */
export const RESTART_ONLY: readonly string[] = Object.freeze([
  'listen.host',
  'listen.port',
  'listen.tls',
  'admin.host',
  'admin.port',
  'server.threads',
  'server.pidFile',
  'verifier.threads',
  // The token lifecycle's parts are built once at start (src/lifecycle.ts): the assertion
  // signer and its key, the DPoP nonce secret, the revocation list's bounds.
  'identityAssertion',
  'dpop',
  'revocation',
  // The shared-state store and its connection are built once at start (src/state/):
  // moving to another Redis, or between memory and Redis, would lose or mix counts.
  'state',
]);

/** What a reload changes, in the config file's own names (for the log and POST /reload). */
export interface ConfigChanges {
  /** Routes by name (their `path` when they have none). */
  readonly routes: NamedChanges;
  readonly issuers: NamedChanges;
  readonly upstreams: NamedChanges;
  /** Every other setting that changed, as a path (`server.realm`, `mfa.maxAge`, `rateLimit.address`). */
  readonly settings: readonly string[];
}

export interface NamedChanges {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly changed: readonly string[];
}

export interface ReloadResult {
  readonly ok: boolean;
  /** What asked for it: `SIGHUP`, `POST /reload`, `watch`. */
  readonly trigger: string;
  readonly file: string;
  /** Every reason the reload was refused, as `path: what is wrong` (empty when ok). */
  readonly problems: readonly string[];
  /** What changed (null when refused). */
  readonly changes: ConfigChanges | null;
}

/** The gateway, as a reload sees it. */
export interface ReloadTarget {
  /** The effective settings of the config in force. */
  effective(): RawConfig;
  /**
   * Puts a validated config whose restart-only settings are unchanged in force; resolves
   * with the problems that refused it (nothing changed then), or [] once it is in force.
   */
  apply(next: LoadedConfig, changes: ConfigChanges): Promise<readonly string[]>;
}

type Loose = Record<string, unknown>;
const isPlain = (v: unknown): v is Loose => v !== null && typeof v === 'object' && !Array.isArray(v);

function at(root: unknown, path: string): unknown {
  let cur: unknown = root;
  for (const key of path.split('.')) cur = isPlain(cur) ? cur[key] : undefined;
  return cur;
}

/** A value in a refusal: `8080`, `127.0.0.1`, `none`, a TLS block as JSON (its passphrase redacted). */
function shown(v: unknown): string {
  if (v === undefined || v === null) return 'none';
  if (typeof v === 'object') return JSON.stringify(redactSecrets(v));
  return String(v);
}

/**
 * The restart-only settings that differ, each named with both values.
 *
 * @example restartOnlyProblems(running, next) // ['listen.port: cannot change on reload (8080 → 9090); restart the gateway']
 */
export function restartOnlyProblems(current: RawConfig, next: RawConfig): string[] {
  const out: string[] = [];
  for (const path of RESTART_ONLY) {
    const a = at(current, path);
    const b = at(next, path);
    if (!sameSettings(a, b)) out.push(`${path}: cannot change on reload (${shown(a)} → ${shown(b)}); restart the gateway`);
  }
  // Introspection clients (with their secrets) are built at start, per issuer name: an
  // issuer's introspection settings, or a new issuer with introspection, need a restart.
  const introspectionOf = (c: RawConfig) => new Map(c.issuers.map((i) => [i.name, i.introspection ?? null]));
  const was = introspectionOf(current);
  for (const [name, cfg] of introspectionOf(next)) {
    const before = was.has(name) ? was.get(name) : null;
    if (!sameSettings(before, cfg)) out.push(`issuers[${name}].introspection: cannot change on reload; restart the gateway`);
  }
  return out;
}

function named(a: ReadonlyMap<string, unknown>, b: ReadonlyMap<string, unknown>): NamedChanges {
  return {
    added: [...b.keys()].filter((k) => !a.has(k)),
    removed: [...a.keys()].filter((k) => !b.has(k)),
    changed: [...b.keys()].filter((k) => a.has(k) && !sameSettings(a.get(k), b.get(k))),
  };
}

/** Leaf paths under `prefix` whose values differ (lists compare whole). */
function changedPaths(a: unknown, b: unknown, prefix: string, out: string[]): void {
  if (isPlain(a) && isPlain(b)) {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) changedPaths(a[key], b[key], `${prefix}.${key}`, out);
  } else if (!sameSettings(a, b)) out.push(prefix);
}

/** What differs between two effective configs, in the config file's names. */
export function configChanges(current: RawConfig, next: RawConfig): ConfigChanges {
  const routes = (c: RawConfig) => new Map(c.routes.map((r) => [r.name ?? r.path, r] as const));
  const issuers = (c: RawConfig) => new Map(c.issuers.map((i) => [i.name, i] as const));
  const upstreams = (c: RawConfig) => new Map(Object.entries(c.upstreams));
  const settings: string[] = [];
  for (const key of new Set([...Object.keys(current), ...Object.keys(next)])) {
    if (key === 'routes' || key === 'issuers' || key === 'upstreams') continue;
    changedPaths((current as unknown as Loose)[key], (next as unknown as Loose)[key], key, settings);
  }
  return {
    routes: named(routes(current), routes(next)),
    issuers: named(issuers(current), issuers(next)),
    upstreams: named(upstreams(current), upstreams(next)),
    settings,
  };
}

/** The changes with the empty lists left out, for a log line: `{ routes: { added: ['/b/'] } }`. */
export function compactChanges(c: ConfigChanges): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of ['routes', 'issuers', 'upstreams'] as const) {
    const kept = Object.fromEntries(Object.entries(c[key]).filter(([, names]) => (names as string[]).length > 0));
    if (Object.keys(kept).length > 0) out[key] = kept;
  }
  if (c.settings.length > 0) out['settings'] = c.settings;
  return out;
}

/** True when a reload changes nothing at all. */
export function unchanged(c: ConfigChanges): boolean {
  const none = (n: NamedChanges) => n.added.length + n.removed.length + n.changed.length === 0;
  return none(c.routes) && none(c.issuers) && none(c.upstreams) && c.settings.length === 0;
}

export interface ReloaderOptions {
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Wall clock, ms (the metric's timestamp). */
  readonly now: () => number;
  /** The environment validation reads (MFA_GATEWAY_LOG_LEVEL), as `check` does. */
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Reloads one config file into one gateway, one reload at a time: a reload asked for
 * while one runs waits for it, and any number asked for meanwhile become one more
 * (which reads the file as it is then).
 */
export class Reloader {
  private running: Promise<ReloadResult> | null = null;
  private queued: { promise: Promise<ReloadResult>; triggers: string[] } | null = null;

  constructor(
    readonly file: string,
    private readonly target: ReloadTarget,
    private readonly opts: ReloaderOptions,
  ) {}

  /** Reads, validates and applies the file. Never rejects: a refusal is a result with problems. */
  reload(trigger: string): Promise<ReloadResult> {
    if (this.running === null) return this.start(trigger);
    if (this.queued !== null) {
      this.queued.triggers.push(trigger);
      return this.queued.promise;
    }
    const triggers = [trigger];
    const promise = this.running.then(() => {
      this.queued = null;
      return this.start(triggers.join(', '));
    });
    this.queued = { promise, triggers };
    return promise;
  }

  private start(trigger: string): Promise<ReloadResult> {
    const run = this.attempt(trigger).catch((err: unknown): ReloadResult => {
      // A gateway bug, not a config problem; still a refusal, never a crash.
      const problem = `internal error while reloading: ${(err as Error)?.message ?? String(err)}`;
      this.refused(trigger, [problem]);
      return { ok: false, trigger, file: this.file, problems: [problem], changes: null };
    });
    this.running = run.finally(() => {
      this.running = null;
    });
    return run;
  }

  private async attempt(trigger: string): Promise<ReloadResult> {
    const { logger } = this.opts;
    logger.info({ trigger, config: this.file }, 'reloading the config');
    let next: LoadedConfig;
    try {
      next = loadConfigFile(this.file, this.opts.env ?? process.env);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return this.refused(trigger, err.problems.map(formatProblem));
    }
    const current = this.target.effective();
    const restart = restartOnlyProblems(current, next.effective);
    if (restart.length > 0) return this.refused(trigger, restart);
    const changes = configChanges(current, next.effective);
    const problems = await this.target.apply(next, changes);
    if (problems.length > 0) return this.refused(trigger, problems);
    for (const w of next.config.warnings) logger.warn({ config: this.file, path: w.path, problem: w.message }, 'config warning');
    this.opts.metrics.configLoad(true, this.opts.now() / 1000, true);
    logger.info({ trigger, config: this.file, unchanged: unchanged(changes), ...compactChanges(changes) }, 'config reloaded');
    return { ok: true, trigger, file: this.file, problems: [], changes };
  }

  private refused(trigger: string, problems: readonly string[]): ReloadResult {
    this.opts.metrics.configLoad(false, this.opts.now() / 1000, true);
    this.opts.logger.error({ trigger, config: this.file, problems }, 'config reload failed; the running config stays');
    return { ok: false, trigger, file: this.file, problems, changes: null };
  }
}

/** How long a file must be quiet before `--watch` reloads it: an editor's save is several events. */
export const WATCH_SETTLE_MS = 250;

/**
 * Calls `changed` when the config file changes (`start --watch`), once per burst of
 * events. The folder is watched, not the file: many editors save by renaming a new
 * file over the old one, which would end a watch on the file itself.
 */
export function watchConfigFile(file: string, changed: () => void, logger: Logger): { close(): void } {
  const name = basename(file);
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher;
  try {
    watcher = watch(dirname(file), { persistent: false }, (_event, changedName) => {
      if (changedName !== null && changedName !== name) return;
      clearTimeout(timer);
      timer = setTimeout(changed, WATCH_SETTLE_MS);
    });
  } catch (err) {
    logger.error({ config: file, err: (err as Error).message }, 'cannot watch the config file; reload with SIGHUP or POST /reload');
    return { close() {} };
  }
  watcher.on('error', (err) => logger.error({ config: file, err: err.message }, 'watching the config file failed; reload with SIGHUP or POST /reload'));
  logger.info({ config: file }, 'watching the config file: every change is reloaded');
  return {
    close() {
      clearTimeout(timer);
      watcher.close();
    },
  };
}
