#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { ConfigError, formatProblem, isLogLevel, LOG_LEVEL_ENV, loadConfigFile, logLevelProblem, redactSecrets, type LoadedConfig } from './config/load.js';
import { LOG_LEVELS, type LogLevel } from './config/schema.js';
import { claimPidFile, isLiveGateway, readPidFile, releasePidFile } from './pidfile.js';

/**
 * The commands, flags and environment variables, each listed once: `--help` is made
 * from these tables, so a new command is one more row here.
 */
const COMMANDS: readonly { name: string; args: string; does: string }[] = [
  {
    name: 'start',
    args: '--config FILE [--log-level LEVEL] [--watch]',
    does: 'run the gateway; SIGHUP (or POST /reload) reloads FILE; SIGTERM / SIGINT drain for up to server.drainTimeout, abort what is left, exit 0; a second one exits at once (130)',
  },
  { name: 'check', args: '--config FILE [--print]', does: 'validate FILE: exit 0, or exit 1 listing every problem, one per line' },
  { name: 'reload', args: '--config FILE', does: 'check FILE, then signal the gateway named in its server.pidFile to reload it (SIGHUP)' },
  {
    name: 'explain',
    args: '--config FILE --path PATH [--method M] [--token T]',
    does: 'show what each stage would decide for that request (also --token-file, --header), without starting a server: exit 0 allowed, 1 refused, 2 usage or config problems',
  },
  { name: 'help', args: '', does: 'print this help' },
];

const FLAGS: readonly { flag: string; for: readonly string[]; does: string }[] = [
  { flag: '--config FILE, -c FILE', for: ['start', 'check', 'reload', 'explain'], does: 'the config file: YAML, or strict JSON when the name ends in .json' },
  {
    flag: '--log-level LEVEL',
    for: ['start', 'check'],
    does: `${LOG_LEVELS.join(' | ')}; wins over log.level in the file and over ${LOG_LEVEL_ENV}`,
  },
  { flag: '--print', for: ['check'], does: 'print the effective config, every default filled in, secrets redacted (YAML)' },
  { flag: '--watch', for: ['start'], does: 'also reload FILE whenever it changes' },
  { flag: '--path PATH', for: ['explain'], does: 'the request target, e.g. /orders/1 or /orders?page=2 (required)' },
  { flag: '--method METHOD', for: ['explain'], does: 'the request method (default GET)' },
  { flag: '--token TOKEN', for: ['explain'], does: 'the bearer token to send (never printed: only its length and hash)' },
  { flag: '--token-file FILE', for: ['explain'], does: 'read the token from FILE (- for stdin) instead' },
  { flag: '--header NAME:VALUE', for: ['explain'], does: 'one more request header; repeat it for more (a Host is added when none is given)' },
  { flag: '--version', for: [], does: 'print the version and exit' },
  { flag: '--help, -h', for: [], does: 'print this help and exit' },
];

/** Every environment variable the gateway reads (a test keeps this in step with src/). */
const ENVIRONMENT: readonly { name: string; does: string }[] = [
  { name: LOG_LEVEL_ENV, does: 'the log level when the config file has no log.level (default info)' },
  { name: 'MFA_GATEWAY_THREADS', does: 'what server.threads: auto means, 1-256 (default os.availableParallelism()); a number in the file wins' },
  { name: 'MFA_GATEWAY_FAILPOINTS', does: 'tests only: names of failpoints to arm (src/failpoints.ts); never set it in production' },
  { name: 'UWS_USE_FALLBACK', does: "read by uWebSockets.js: its slow pure-JS fallback, on which start refuses to run" },
];

const EXIT_USAGE = 2;
/** A second SIGINT / SIGTERM while draining: 128 + SIGINT, the shell's code for an interrupted program. */
const EXIT_SECOND_SIGNAL = 130;

function table(rows: readonly (readonly [string, string])[]): string {
  const width = Math.max(...rows.map(([a]) => a.length));
  return rows.map(([a, b]) => `  ${a.padEnd(width)}  ${b}`).join('\n');
}

function usage(): string {
  return [
    'usage: mfa-gateway COMMAND [flags]',
    '',
    'commands:',
    table(COMMANDS.map((c) => [`${c.name} ${c.args}`.trim(), c.does])),
    '',
    'flags:',
    table(FLAGS.map((f) => [f.flag, f.for.length > 0 ? `${f.does} (${f.for.join(', ')})` : f.does])),
    '',
    'environment:',
    table(ENVIRONMENT.map((e) => [e.name, e.does])),
    '',
    'Every config key, with its default: config/gateway.example.yaml (in the package).',
    'Exit codes: 0 ok, 1 config problems or start-up failure (explain: the request would be refused),',
    '2 usage error (explain: also config problems); 130 a second SIGINT / SIGTERM while draining.',
  ].join('\n');
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Startup failures before the logger exists are one clear line on stderr, and exit 1. */
function fail(message: string, code = 1): never {
  process.stderr.write(`mfa-gateway: ${message}\n`);
  process.exit(code);
}

function usageError(message: string): never {
  fail(`${message}\n${usage()}`, EXIT_USAGE);
}

function parse(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string', short: 'c' },
        'log-level': { type: 'string' },
        print: { type: 'boolean' },
        watch: { type: 'boolean' },
        path: { type: 'string' },
        method: { type: 'string' },
        token: { type: 'string' },
        'token-file': { type: 'string' },
        header: { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (err) {
    // node:util's messages name the flag ("Unknown option '--verbose'").
    return usageError((err as Error).message.split('. ')[0]!);
  }
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv);
  const command = positionals[0];
  if (values.help || command === 'help') {
    process.stdout.write(`${usage()}\n`);
    return;
  }
  if (values.version) {
    process.stdout.write(`${version()}\n`);
    return;
  }
  if (command === undefined) usageError('a command is needed');
  if (!COMMANDS.some((c) => c.name === command)) usageError(`unknown command "${command}"`);
  if (positionals.length > 1) usageError(`unexpected argument "${positionals[1]}"`);
  for (const f of FLAGS) {
    const name = f.flag.split(/[ ,]/)[0]!.slice(2) as keyof typeof values;
    if (values[name] !== undefined && f.for.length > 0 && !f.for.includes(command)) usageError(`${command} takes no --${name}`);
  }
  const flagLevel = values['log-level'];
  if (flagLevel !== undefined && !isLogLevel(flagLevel)) usageError(`--log-level: ${logLevelProblem(flagLevel)}`);
  if (!values.config) usageError(`${command} needs --config FILE`);
  const file = values.config;

  if (command === 'start') {
    // Before anything that loads native code or needs a newer Node: a wrong runtime is named as such.
    const { runtimeProblem } = await import('./server/uws.js');
    const problem = runtimeProblem();
    if (problem !== undefined) fail(problem);
  }

  // explain: its own request flags are usage errors (exit 2) before any file is read.
  const explainRequest = command === 'explain' ? explainArgs(values) : undefined;

  let loaded: LoadedConfig;
  try {
    loaded = loadConfigFile(file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const n = err.problems.length;
    // `check` and `start` print the same list: a header line, then one problem per line.
    process.stderr.write(`${command === 'start' ? 'mfa-gateway: invalid config ' : ''}${file}: ${n} problem${n === 1 ? '' : 's'}\n`);
    for (const p of err.problems) process.stderr.write(`${formatProblem(p)}\n`);
    process.exit(command === 'explain' ? EXIT_USAGE : 1);
  }
  const { config } = loaded;
  const level = flagLevel ?? config.log.level;

  if (command === 'check') {
    for (const w of config.warnings) process.stderr.write(`${file}: warning: ${formatProblem(w)}\n`);
    const summary = `${file}: ok (${config.routes.length} routes, ${config.upstreams.size} upstreams, ${config.issuers.length} issuers)`;
    if (!values.print) {
      process.stdout.write(`${summary}\n`);
      return;
    }
    const effective = { ...loaded.effective, log: { ...loaded.effective.log, level } };
    process.stdout.write(`# ${summary}\n# the effective config: every default filled in, secrets redacted\n${YAML.stringify(redactSecrets(effective))}`);
    return;
  }
  if (command === 'reload') return signalReload(file, loaded);
  if (command === 'explain') {
    const { explain } = await import('./explain/explain.js');
    const r = await explain(config, await explainRequest!, { configFile: file });
    process.stdout.write(`${r.lines.join('\n')}\n`);
    process.exit(r.allowed ? 0 : 1);
  }
  await start(file, loaded, level, flagLevel !== undefined, values.watch === true);
}

/** `start`: the gateway, its signals, its pid file. */
async function start(file: string, loaded: LoadedConfig, level: LogLevel, levelFixed: boolean, watch: boolean): Promise<void> {
  const { config } = loaded;
  // Loaded only for `start`: `check` must work where the native uWS build is missing.
  const { createLogger } = await import('./observe/log.js');
  const logger = createLogger({ level });
  for (const w of config.warnings) logger.warn({ config: file, path: w.path, problem: w.message }, 'config warning');
  logger.info({ version: version(), node: process.versions.node, config: file, pid: process.pid }, 'starting');
  const { startGateway } = await import('./gateway.js');
  const pidFile = config.server.pidFile;
  const exit = (code: number): never => {
    if (pidFile !== null) releasePidFile(pidFile);
    logger.flush();
    process.exit(code);
  };
  // Signal handlers first: a signal that arrives while the gateway starts must not meet
  // Node's default action (SIGHUP and SIGTERM would end the process on the spot).
  let gateway: Awaited<ReturnType<typeof startGateway>> | undefined;
  let stopping: string | null = null;
  let reloadWhenUp = false;
  const drain = (g: NonNullable<typeof gateway>) =>
    g.close().then(
      () => exit(0),
      (err: unknown) => {
        logger.fatal({ err: (err as Error).message }, 'shutdown failed');
        if (pidFile !== null) releasePidFile(pidFile);
        logger.flush();
        fail(`shutdown failed: ${(err as Error).message}`);
      },
    );
  const stop = (signal: string) => {
    if (stopping !== null) {
      // The operator does not want to wait for the drain (README "Signals").
      logger.warn({ signal, inFlight: gateway?.inFlight() ?? 0 }, 'second signal while stopping: exiting now');
      exit(EXIT_SECOND_SIGNAL);
    }
    stopping = signal;
    logger.info({ signal, inFlight: gateway?.inFlight() ?? 0 }, 'stopping');
    if (gateway) void drain(gateway); // else: as soon as start-up ends, below
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // `systemctl reload` (deploy/mfa-gateway.service) and `mfa-gateway reload` send SIGHUP.
  process.on('SIGHUP', () => {
    if (stopping !== null) logger.info({ signal: 'SIGHUP' }, 'reload ignored: the gateway is stopping');
    else if (gateway) void gateway.reload('SIGHUP');
    else {
      reloadWhenUp = true;
      logger.info({ signal: 'SIGHUP' }, 'reload asked for during start-up: it runs once the gateway listens');
    }
  });
  try {
    if (pidFile !== null) {
      const claimed = claimPidFile(pidFile);
      if (claimed.replacedStale !== null) logger.info({ pidFile, stalePid: claimed.replacedStale }, 'pid file named a process that is gone; replaced');
    }
    gateway = await startGateway(config, { logger, source: { file, effective: loaded.effective, watch }, ...(levelFixed ? { fixedLogLevel: level } : {}) });
  } catch (err) {
    const message = (err as Error).message;
    logger.fatal({ err: message }, 'start-up failed');
    if (pidFile !== null && (err as { code?: string }).code !== 'PID_FILE_HELD') releasePidFile(pidFile);
    logger.flush();
    fail(message);
  }
  if (stopping !== null) void drain(gateway);
  else if (reloadWhenUp) void gateway.reload('SIGHUP');
}

/** `reload`: the file must pass `check`; then SIGHUP to the gateway its pid file names. */
function signalReload(file: string, loaded: LoadedConfig): void {
  const { config } = loaded;
  for (const w of config.warnings) process.stderr.write(`${file}: warning: ${formatProblem(w)}\n`);
  const pidFile = config.server.pidFile;
  if (pidFile === null) {
    fail(`${file} sets no server.pidFile, so the running gateway cannot be found; set it (and restart), or send SIGHUP yourself, or POST /reload on the admin listener`);
  }
  const read = readPidFile(pidFile);
  if ('problem' in read) fail(read.problem);
  if (!isLiveGateway(read.pid)) fail(`the pid file ${pidFile} names process ${read.pid}, which is not a running gateway`);
  try {
    process.kill(read.pid, 'SIGHUP');
  } catch (err) {
    fail(`cannot signal process ${read.pid}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  process.stdout.write(
    `${file}: ok (${config.routes.length} routes, ${config.upstreams.size} upstreams, ${config.issuers.length} issuers); ` +
      `sent SIGHUP to the gateway (pid ${read.pid}): its log says "config reloaded" or "config reload failed", and mfa_gateway_config_last_reload_success is 1 or 0\n`,
  );
}

/** A request header name: an RFC 9110 §5.1 token. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const METHOD = /^[A-Za-z]{1,20}$/;

/** explain's request from its flags; a usage error (exit 2) for anything it cannot send. */
async function explainArgs(values: ReturnType<typeof parse>['values']) {
  const target = values.path;
  if (target === undefined) usageError('explain needs --path PATH');
  if (!target.startsWith('/')) usageError(`--path: ${JSON.stringify(target)} must start with /`);
  const method = (values.method ?? 'GET').toUpperCase();
  if (!METHOD.test(method)) usageError(`--method: ${JSON.stringify(values.method)} is not a method name`);
  if (values.token !== undefined && values['token-file'] !== undefined) usageError('explain takes --token or --token-file, not both');
  const headers: [string, string][] = [];
  for (const h of values.header ?? []) {
    const colon = h.indexOf(':');
    const name = colon > 0 ? h.slice(0, colon).trim().toLowerCase() : '';
    if (!HEADER_NAME.test(name)) usageError(`--header: ${JSON.stringify(h.slice(0, 40))} is not NAME:VALUE with a header name`);
    if (name === 'content-length' || name === 'transfer-encoding') usageError(`--header: explain sends no body, so no ${name}`);
    headers.push([name, h.slice(colon + 1).trim()]);
  }
  let token = values.token;
  const tokenFile = values['token-file'];
  if (tokenFile !== undefined) {
    try {
      token = (tokenFile === '-' ? await readStdin() : readFileSync(tokenFile, 'utf8')).trim();
    } catch (err) {
      usageError(`--token-file: cannot read ${tokenFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  if (token === '') usageError('the token is empty');
  return { method, target, headers, token };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

main(process.argv.slice(2)).catch((err: unknown) => fail((err as Error)?.message ?? String(err)));
