import { availableParallelism } from 'node:os';

/** Overrides what `server.threads: auto` means (a container whose CPU quota the OS does not show, the tests). */
export const THREADS_ENV = 'MFA_GATEWAY_THREADS';

/**
 * The number of front-end threads `server.threads` asks for: a number as it is; `auto`
 * is MFA_GATEWAY_THREADS when it holds a whole number from 1 to 256, else
 * os.availableParallelism() (the CPUs this process may run on, affinity included).
 */
export function frontThreads(setting: number | 'auto', env: NodeJS.ProcessEnv = process.env): number {
  if (setting !== 'auto') return setting;
  const fromEnv = env[THREADS_ENV];
  if (fromEnv !== undefined && /^[1-9][0-9]{0,2}$/.test(fromEnv) && Number(fromEnv) <= 256) return Number(fromEnv);
  return Math.max(1, availableParallelism());
}

/**
 * Thread `index`'s share of an upstream's `connections` when `threads` threads split it:
 * floor(total / threads), one more for the first (total mod threads) threads, so the
 * shares add up to the total; at least 1 each (more threads than connections: the total
 * is then the thread count).
 */
export function connectionShare(total: number, threads: number, index: number): number {
  const base = Math.floor(total / threads);
  return Math.max(1, base + (index < total % threads ? 1 : 0));
}
