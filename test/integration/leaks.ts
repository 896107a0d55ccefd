/**
 * The whole-run leak check's collection side (issue 5: "a test greps every line a full
 * test run produced for any token it minted and finds none").
 *
 * vitest.config.ts gives the integration project a globalSetup (test/leaks/global-setup.ts)
 * that makes a fresh directory for the run and puts its path in MFA_GW_LEAK_DIR, which
 * every test worker inherits. Test helpers append to it:
 *   tokens.txt       every token minted or forged, one per line
 *   outputs/*.log    what each gateway / demo / CLI process printed, logs of in-process
 *                    components, copies of audit files
 *   audit-files.txt  audit files the gateways were configured to write, and
 *   audit-copied.txt those copied into outputs/ when their process exited (the check
 *                    reads the others that are still on disk)
 *   files.txt        each integration test file that ran (so the check knows a full run)
 * test/leaks/no-token-in-output.test.ts runs after all integration files and searches
 * every output for every token. Without MFA_GW_LEAK_DIR (a test file run outside this
 * config) everything here is a no-op.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { expect } from 'vitest';

export const LEAK_DIR_ENV = 'MFA_GW_LEAK_DIR';
export const TOKENS_FILE = 'tokens.txt';
export const OUTPUTS_DIR = 'outputs';
export const AUDIT_LIST_FILE = 'audit-files.txt';
export const AUDIT_COPIED_FILE = 'audit-copied.txt';
export const FILES_LIST_FILE = 'files.txt';

/** The run's leak directory, or undefined when collection is off. */
export function leakDir(): string | undefined {
  const dir = process.env[LEAK_DIR_ENV];
  return dir && existsSync(dir) ? dir : undefined;
}

/** The tokens file (for child processes that append tokens themselves), or undefined. */
export function tokensFile(): string | undefined {
  const dir = leakDir();
  return dir ? join(dir, TOKENS_FILE) : undefined;
}

/** Records a minted or forged token; returns it, for `return recordToken(await …)`. */
export function recordToken<T extends string | undefined>(token: T): T {
  const dir = leakDir();
  // One line per token: a token with a line break in it is no useful needle anyway.
  if (dir && token && !/[\r\n]/.test(token)) appendFileSync(join(dir, TOKENS_FILE), `${token}\n`);
  return token;
}

let serial = 0;

/**
 * A file under outputs/ for one output (one process's stdout, one component's log):
 * a unique name per call, `name` kept readable for the check's report.
 */
function outputFile(dir: string, name: string): string {
  mkdirSync(join(dir, OUTPUTS_DIR), { recursive: true });
  // Named after the test file that made it, for the check's report.
  const testPath = expect.getState().testPath;
  const from = testPath ? `${basename(testPath).replace(/\.test\.ts$/, '')}.` : '';
  const safe = `${from}${name}`.replace(/[^\w.-]+/g, '_').slice(0, 100);
  return join(dir, OUTPUTS_DIR, `${safe}.${process.pid}-${++serial}.log`);
}

/**
 * An appender for one output stream: call it with each chunk as it arrives, so what was
 * printed is on disk even if the process is never seen to exit. No-op without a leak dir.
 */
export function outputSink(name: string): (chunk: string | Buffer) => void {
  const dir = leakDir();
  if (!dir) return () => undefined;
  const file = outputFile(dir, name);
  return (chunk) => appendFileSync(file, chunk);
}

/** Records a finished output (a log array, a process's whole stdout) in one go. */
export function recordOutput(name: string, text: string): void {
  if (text.length > 0) outputSink(name)(text);
}

/**
 * Records an audit file a gateway writes: its path now (read at check time if it still
 * exists), and `copyAuditFile` copies its content when the process has exited.
 */
export function recordAuditFile(path: string): void {
  const dir = leakDir();
  if (dir) appendFileSync(join(dir, AUDIT_LIST_FILE), `${path}\n`);
}

export function copyAuditFile(name: string, path: string): void {
  const dir = leakDir();
  if (!dir || !existsSync(path)) return;
  recordOutput(name, readFileSync(path, 'utf8'));
  appendFileSync(join(dir, AUDIT_COPIED_FILE), `${path}\n`);
}

/** Records that an integration test file ran (its path relative to the repository). */
export function recordTestFile(file: string): void {
  const dir = leakDir();
  if (dir) appendFileSync(join(dir, FILES_LIST_FILE), `${file}\n`);
}
