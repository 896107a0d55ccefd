/**
 * globalSetup of the integration project (vitest.config.ts), run in vitest's main
 * process before any test file, and only when integration files are part of the run:
 * a fresh leak directory for the whole-run leak check (test/integration/leaks.ts,
 * test/leaks/no-token-in-output.test.ts), named in MFA_GW_LEAK_DIR, which every test
 * worker started afterwards inherits (vitest 4 builds each worker's environment from
 * process.env when it schedules the files).
 *
 * It also copies everything vitest's main process prints: the reporter, the tests'
 * console output, and whatever the workers write to their own stdout and stderr
 * (vitest pipes those into this process), such as the operational log of the demo
 * gateways the demo tests start in-process (pino writes to fd 1 directly).
 *
 * The teardown, after the whole run, removes the directory (MFA_GW_LEAK_KEEP=1 keeps it).
 */
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LEAK_DIR_ENV, OUTPUTS_DIR } from '../integration/leaks.js';

/** Tees `stream` into `file`; returns the undo. */
function tee(stream: NodeJS.WriteStream, file: string): () => void {
  const fd = openSync(file, 'a');
  const original = stream.write;
  const write = original as (this: NodeJS.WriteStream, ...args: unknown[]) => boolean;
  stream.write = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]) {
    try {
      if (typeof chunk === 'string') writeSync(fd, chunk);
      else if (chunk instanceof Uint8Array) writeSync(fd, chunk);
    } catch {
      /* the copy is best effort; the real write below must happen regardless */
    }
    return write.call(this, chunk, ...rest);
  } as typeof stream.write;
  return () => {
    stream.write = original;
    closeSync(fd);
  };
}

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'mfa-gw-leaks-'));
  mkdirSync(join(dir, OUTPUTS_DIR));
  process.env[LEAK_DIR_ENV] = dir;
  const undo = [tee(process.stdout, join(dir, OUTPUTS_DIR, 'vitest-main.stdout.log')), tee(process.stderr, join(dir, OUTPUTS_DIR, 'vitest-main.stderr.log'))];
  return () => {
    for (const u of undo) u();
    delete process.env[LEAK_DIR_ENV];
    if (process.env['MFA_GW_LEAK_KEEP'] === '1') process.stderr.write(`leak check: kept ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  };
}
