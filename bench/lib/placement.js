/**
 * CPU placement. On a small machine the gateway, the upstream and the load generator
 * compete for the same cores; pinning the gateway to core 0 and everything else to the
 * other cores makes the gateway's share of CPU fixed and the runs comparable. Uses
 * `taskset` (util-linux) when it exists and there are at least two cores.
 */
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';

/**
 * Decides the placement.
 * @param {{ pin: boolean }} options pin=false turns pinning off (flag --no-pin, env BENCH_PIN=0)
 * @returns {{ pinned: boolean, cores: number, gateway: string | null, others: string | null, why: string }}
 */
export function choosePlacement({ pin }) {
  const cores = availableParallelism();
  if (!pin) return { pinned: false, cores, gateway: null, others: null, why: 'pinning turned off (--no-pin / BENCH_PIN=0)' };
  if (process.platform !== 'linux') return { pinned: false, cores, gateway: null, others: null, why: `no taskset on ${process.platform}` };
  const probe = spawnSync('taskset', ['-p', String(process.pid)], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return { pinned: false, cores, gateway: null, others: null, why: 'taskset not found' };
  if (cores < 2) return { pinned: false, cores, gateway: null, others: null, why: 'only one core' };
  const others = cores === 2 ? '1' : `1-${cores - 1}`;
  return { pinned: true, cores, gateway: '0', others, why: `taskset: gateway on core 0, upstream + load generator on core${cores === 2 ? '' : 's'} ${others}` };
}

/** Pins every thread of this process (the load generator) to `cpus`. */
export function pinSelf(cpus) {
  const r = spawnSync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`taskset failed to pin the load generator: ${r.stderr.trim()}`);
}

/** Restores this process's affinity to every core (after the run, for in-process callers). */
export function unpinSelf(cores) {
  spawnSync('taskset', ['-a', '-p', '-c', `0-${cores - 1}`, String(process.pid)], { encoding: 'utf8' });
}

/** The command line that starts `argv` on `cpus` (or unpinned when cpus is null). */
export function pinnedCommand(cpus, argv) {
  return cpus === null ? argv : ['taskset', '-c', cpus, ...argv];
}
