/**
 * The pid file (`server.pidFile`, README "Reload"): `start` writes its process id there
 * once the gateway listens and removes it at exit; `reload` reads it to find the gateway
 * to signal. Plain text, the pid and a line break, as systemd's PIDFile= and most
 * supervisors read it.
 *
 * `start` refuses to run while the file names a live gateway: two gateways sharing one
 * pid file would make `reload` signal the wrong one. A file left by a gateway that died
 * without removing it (kill -9, a crash) names a process that is gone, or one whose
 * command line is not a gateway's (the pid was reused): it is stale and replaced.
 */
import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { GatewayError } from './errors.js';

/** The pid a pid file names, or why it names none. */
export function readPidFile(file: string): { pid: number } | { problem: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    return { problem: code === 'ENOENT' ? `no pid file at ${file}: is the gateway running?` : `cannot read the pid file ${file}: ${code}` };
  }
  const m = /^\s*(\d{1,10})\s*$/.exec(text);
  const pid = m ? Number(m[1]) : 0;
  return pid > 0 ? { pid } : { problem: `the pid file ${file} does not hold a process id` };
}

/**
 * Whether `pid` is a running mfa-gateway: alive (signal 0 reaches it, or it belongs to
 * another user), and, where /proc shows command lines (Linux), running this CLI.
 */
export function isLiveGateway(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return true; // no /proc here: alive is all that can be known
  }
  return /mfa-gateway|cli\.js/.test(cmdline);
}

/** Writes this process's pid (atomically: a reader never sees half a file), unless a live gateway holds the file. */
export function claimPidFile(file: string, pid: number = process.pid): { replacedStale: number | null } {
  const held = readPidFile(file);
  if ('pid' in held && held.pid !== pid && isLiveGateway(held.pid)) {
    throw new GatewayError(
      'PID_FILE_HELD',
      `server.pidFile ${file} names process ${held.pid}, a running gateway: stop it first (two gateways must not share a pid file), or remove the file if that process is not a gateway`,
    );
  }
  const tmp = `${file}.${pid}.tmp`;
  try {
    writeFileSync(tmp, `${pid}\n`, { mode: 0o644 });
    renameSync(tmp, file);
  } catch (err) {
    throw new GatewayError('PID_FILE_WRITE', `cannot write the pid file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  return { replacedStale: 'pid' in held && held.pid !== pid ? held.pid : null };
}

/** Removes the pid file if it still names this process (never another gateway's). */
export function releasePidFile(file: string, pid: number = process.pid): void {
  const held = readPidFile(file);
  if (!('pid' in held) || held.pid !== pid) return;
  try {
    unlinkSync(file);
  } catch {
    // Gone already, or its folder became read-only: nothing more to do at exit.
  }
}
