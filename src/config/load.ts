/**
 * Loading a config file: read (YAML or JSON), validate against the schema and the
 * cross-checks, compile. Every problem found is listed at once (ConfigError).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LOG_LEVELS, configSchema, type LogLevel, type RawConfig } from './schema.js';
import type { GatewayState } from './state.js';
import { ConfigError, configErrorMap, type ConfigProblem, zodProblems } from './problems.js';
import { crossChecks, warningsFor } from './checks.js';
import { compileParsed } from './compile.js';
import { parseConfigText } from './syntax.js';

export { ConfigError, formatProblem, type ConfigProblem } from './problems.js';
export { FRAGMENTED_HEAD_LIMIT } from './checks.js';

/** The environment variable that sets the log level when the config file does not (README, "Operations"). */
export const LOG_LEVEL_ENV = 'MFA_GATEWAY_LOG_LEVEL';

/**
 * Reads and parses a YAML or JSON file (JSON is YAML 1.2, but a `.json` file is parsed
 * strictly). Syntax errors are problems at `file:line:column`; `display` is the name the
 * messages use (default: `file`).
 */
export function readConfigFile(file: string, display: string = file): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: display, message: `cannot read the file: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }]);
  }
  const parsed = parseConfigText(text, display);
  if ('problems' in parsed) throw new ConfigError(parsed.problems);
  return parsed.data;
}

/** A validated config: the frozen runtime table, and the effective settings it was compiled from. */
export interface LoadedConfig {
  readonly config: GatewayState;
  /** Every key with its default filled in (what `check --print` shows, after redactSecrets). */
  readonly effective: RawConfig;
}

/** Loads, validates and compiles a config file. Throws ConfigError listing every problem. */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): GatewayState {
  return loadConfigFile(file, env).config;
}

/** loadConfig, with the effective settings too. */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const abs = resolve(file);
  return validateConfig(readConfigFile(abs, file), dirname(abs), env);
}

/** Validates raw config data and compiles it into the frozen runtime table. */
export function compileConfig(data: unknown, baseDir: string, env: NodeJS.ProcessEnv = process.env): GatewayState {
  return validateConfig(data, baseDir, env).config;
}

export function validateConfig(data: unknown, baseDir: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const parsed = configSchema.safeParse(data ?? {}, { error: configErrorMap });
  // Schema problems and cross-reference problems are listed together, so one
  // `check` run shows everything that is wrong.
  const problems = [...(parsed.success ? [] : zodProblems(parsed.error, data, configSchema)), ...crossChecks(data, baseDir)];
  const level = envLogLevel(data, env);
  if (typeof level === 'object') problems.push(level);
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  if (typeof level === 'string') parsed.data.log.level = level;
  return { config: compileParsed(parsed.data, baseDir, warningsFor(data)), effective: parsed.data };
}

/** True for pino's level names (the `log.level` key, `--log-level`, MFA_GATEWAY_LOG_LEVEL). */
export function isLogLevel(text: string): text is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(text);
}

export function logLevelProblem(text: string): string {
  return `${JSON.stringify(text)} is not a log level; use one of ${LOG_LEVELS.join(', ')}`;
}

/**
 * The log level from the environment, which applies only when the file has no
 * `log.level` (the file wins over the environment, `--log-level` over both);
 * an unknown name is a problem like any other, never a crash at start-up.
 */
function envLogLevel(data: unknown, env: NodeJS.ProcessEnv): LogLevel | ConfigProblem | undefined {
  const fromEnv = env[LOG_LEVEL_ENV];
  if (fromEnv === undefined || fromEnv === '') return undefined;
  const log = data !== null && typeof data === 'object' ? (data as Record<string, unknown>)['log'] : undefined;
  if (log !== null && typeof log === 'object' && (log as Record<string, unknown>)['level'] !== undefined) return undefined;
  return isLogLevel(fromEnv) ? fromEnv : { path: `${LOG_LEVEL_ENV} (environment)`, message: logLevelProblem(fromEnv) };
}

const REDACTED = '[redacted]';
/** Keys whose value is a secret wherever they appear. */
const SECRET_KEYS: ReadonlySet<string> = new Set(['passphrase']);
/** `scheme://user:password@host`: the password part of a URL's userinfo (RFC 3986 §3.2.1 deprecates it, but it is seen). */
const URL_PASSWORD = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#@:]*):[^/?#@]*@/;

/**
 * A copy of effective config settings with secrets replaced by `[redacted]`: the TLS
 * key's passphrase, and any password in a URL's userinfo.
 *
 * @example redactSecrets({ listen: { tls: { passphrase: 'x' } } }) → { listen: { tls: { passphrase: '[redacted]' } } }
 */
export function redactSecrets(value: unknown): unknown {
  if (typeof value === 'string') return value.replace(URL_PASSWORD, `$1:${REDACTED}@`);
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, SECRET_KEYS.has(k) && v !== undefined ? REDACTED : redactSecrets(v)]));
  }
  return value;
}
