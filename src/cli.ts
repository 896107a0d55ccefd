#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { ConfigError, formatProblem, isLogLevel, LOG_LEVEL_ENV, loadConfigFile, logLevelProblem, redactSecrets, type LoadedConfig } from './config/load.js';
import { LOG_LEVELS } from './config/schema.js';

/**
 * The commands, flags and environment variables, each listed once: `--help` is made
 * from these tables, so a new command is one more row here.
 */
const COMMANDS: readonly { name: string; args: string; does: string }[] = [
  { name: 'start', args: '--config FILE [--log-level LEVEL]', does: 'run the gateway; SIGTERM / SIGINT drain in-flight requests, then exit 0' },
  { name: 'check', args: '--config FILE [--print]', does: 'validate FILE: exit 0, or exit 1 listing every problem, one per line' },
  { name: 'help', args: '', does: 'print this help' },
];

const FLAGS: readonly { flag: string; for: readonly string[]; does: string }[] = [
  { flag: '--config FILE, -c FILE', for: ['start', 'check'], does: 'the config file: YAML, or strict JSON when the name ends in .json' },
  {
    flag: '--log-level LEVEL',
    for: ['start', 'check'],
    does: `${LOG_LEVELS.join(' | ')}; wins over log.level in the file and over ${LOG_LEVEL_ENV}`,
  },
  { flag: '--print', for: ['check'], does: 'print the effective config, every default filled in, secrets redacted (YAML)' },
  { flag: '--version', for: [], does: 'print the version and exit' },
  { flag: '--help, -h', for: [], does: 'print this help and exit' },
];

/** Every environment variable the gateway reads (a test keeps this in step with src/). */
const ENVIRONMENT: readonly { name: string; does: string }[] = [
  { name: LOG_LEVEL_ENV, does: 'the log level when the config file has no log.level (default info)' },
  { name: 'MFA_GATEWAY_FAILPOINTS', does: 'tests only: names of failpoints to arm (src/failpoints.ts); never set it in production' },
  { name: 'UWS_USE_FALLBACK', does: "read by uWebSockets.js: its slow pure-JS fallback, on which start refuses to run" },
];

const EXIT_USAGE = 2;

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
    'Exit codes: 0 ok, 1 config problems or start-up failure, 2 usage error.',
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

  let loaded: LoadedConfig;
  try {
    loaded = loadConfigFile(file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const n = err.problems.length;
    // `check` and `start` print the same list: a header line, then one problem per line.
    process.stderr.write(`${command === 'start' ? 'mfa-gateway: invalid config ' : ''}${file}: ${n} problem${n === 1 ? '' : 's'}\n`);
    for (const p of err.problems) process.stderr.write(`${formatProblem(p)}\n`);
    process.exit(1);
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

  // Loaded only for `start`: `check` must work where the native uWS build is missing.
  const { createLogger } = await import('./observe/log.js');
  const logger = createLogger({ level });
  for (const w of config.warnings) logger.warn({ config: file, path: w.path, problem: w.message }, 'config warning');
  logger.info({ version: version(), node: process.versions.node, config: file, pid: process.pid }, 'starting');
  const { startGateway } = await import('./gateway.js');
  // Signal handlers first: a signal that arrives while the gateway starts must not meet
  // Node's default action (SIGHUP and SIGTERM would end the process on the spot).
  let gateway: Awaited<ReturnType<typeof startGateway>> | undefined;
  let stopping: string | null = null;
  const drain = (g: NonNullable<typeof gateway>) =>
    g.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.fatal({ err: (err as Error).message }, 'shutdown failed');
        logger.flush();
        fail(`shutdown failed: ${(err as Error).message}`);
      },
    );
  const stop = (signal: string) => {
    if (stopping !== null) return;
    stopping = signal;
    logger.info({ signal, inFlight: gateway?.inFlight() ?? 0 }, 'stopping');
    if (gateway) void drain(gateway); // else: as soon as start-up ends, below
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // `systemctl reload` (deploy/mfa-gateway.service) sends SIGHUP, which must not stop a
  // gateway that cannot reload yet.
  process.on('SIGHUP', () => logger.warn({ signal: 'SIGHUP' }, 'reload is not available in this version; the running config stays'));
  try {
    gateway = await startGateway(config, { logger });
  } catch (err) {
    const message = (err as Error).message;
    logger.fatal({ err: message }, 'start-up failed');
    logger.flush();
    fail(message);
  }
  if (stopping !== null) void drain(gateway);
}

main(process.argv.slice(2)).catch((err: unknown) => fail((err as Error)?.message ?? String(err)));
