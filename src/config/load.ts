/**
 * Loading a config file: read (YAML or JSON), validate against the schema and the
 * cross-checks, compile. Every problem found is listed at once (ConfigError).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import YAML from 'yaml';
import { configSchema } from './schema.js';
import type { GatewayState } from './state.js';
import { ConfigError, zodProblems } from './problems.js';
import { crossChecks, warningsFor } from './checks.js';
import { compileParsed } from './compile.js';

export { ConfigError, formatProblem, type ConfigProblem } from './problems.js';
export { FRAGMENTED_HEAD_LIMIT } from './checks.js';

/** Reads and parses a YAML or JSON file (JSON is YAML 1.2, but a `.json` file is parsed strictly). */
export function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '(file)', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }]);
  }
  try {
    if (file.endsWith('.json')) return JSON.parse(text);
    const doc = YAML.parseDocument(text, { uniqueKeys: true, prettyErrors: false });
    if (doc.errors.length > 0) {
      throw new ConfigError(doc.errors.map((e) => ({ path: '(file)', message: `YAML: ${e.message.split('\n')[0]}` })));
    }
    return doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError([{ path: '(file)', message: `cannot parse ${file}: ${(err as Error).message.split('\n')[0]}` }]);
  }
}

/** Loads, validates and compiles a config file. Throws ConfigError listing every problem. */
export function loadConfig(file: string): GatewayState {
  const abs = resolve(file);
  return compileConfig(readConfigFile(abs), dirname(abs));
}

/** Validates raw config data and compiles it into the frozen runtime table. */
export function compileConfig(data: unknown, baseDir: string): GatewayState {
  const parsed = configSchema.safeParse(data ?? {});
  // Schema problems and cross-reference problems are listed together, so one
  // `check` run shows everything that is wrong.
  const problems = [...(parsed.success ? [] : zodProblems(parsed.error, data)), ...crossChecks(data, baseDir)];
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  return compileParsed(parsed.data, baseDir, warningsFor(data));
}

