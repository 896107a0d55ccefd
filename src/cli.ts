#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { ConfigError, formatProblem, loadConfig } from './config/load.js';

const USAGE = `usage:
  mfa-gateway start --config FILE   run the gateway (SIGTERM/SIGINT drain, then exit 0)
  mfa-gateway check --config FILE   validate FILE: exit 0, or exit 1 listing every problem
  mfa-gateway --version`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Startup failures are one clear line on stderr and exit 1 (DESIGN.md, lifecycle). */
function fail(message: string): never {
  process.stderr.write(`mfa-gateway: ${message}\n`);
  process.exit(1);
}

async function main(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' } },
    });
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.version) {
    process.stdout.write(`${version()}\n`);
    return;
  }
  const command = positionals[0];
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    if (command === undefined && !values.help) process.exitCode = 1;
    return;
  }
  if (command !== 'start' && command !== 'check') fail(`unknown command "${command}"\n${USAGE}`);
  if (!values.config) fail(`${command} needs --config FILE`);

  let config;
  try {
    config = loadConfig(values.config);
  } catch (err) {
    if (err instanceof ConfigError) {
      if (command === 'check') {
        process.stderr.write(`${values.config}: ${err.problems.length} problem${err.problems.length === 1 ? '' : 's'}\n`);
        for (const p of err.problems) process.stderr.write(`${formatProblem(p)}\n`);
        process.exit(1);
      }
      fail(`invalid config ${values.config}: ${err.problems.map(formatProblem).join('; ')}`);
    }
    throw err;
  }
  for (const w of config.warnings) process.stderr.write(`${values.config}: warning: ${formatProblem(w)}\n`);
  if (command === 'check') {
    process.stdout.write(`${values.config}: ok (${config.routes.length} routes, ${config.upstreams.size} upstreams, ${config.issuers.length} issuers)\n`);
    return;
  }

  // Loaded only for `start`: `check` must work where the native uWS build is missing.
  const { startGateway } = await import('./gateway.js');
  let gateway;
  try {
    gateway = await startGateway(config);
  } catch (err) {
    fail((err as Error).message);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`mfa-gateway: ${signal}: draining\n`);
    gateway.close().then(
      () => process.exit(0),
      (err: unknown) => fail(`shutdown failed: ${(err as Error).message}`),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main(process.argv.slice(2)).catch((err: unknown) => fail((err as Error)?.message ?? String(err)));
