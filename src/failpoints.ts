/**
 * Failpoints: named places in the request path where a test can make the gateway throw,
 * to prove that the per-request boundary holds (an exception answers that one request
 * 500 and never ends the process). The idea is etcd's gofail and TiKV's fail-rs.
 *
 * They are off unless the process starts with `MFA_GATEWAY_FAILPOINTS` set to a
 * comma-separated list of names to arm (`handler,after-verify`); a production gateway
 * never has it set, and then every call is one boolean test.
 *
 * Names: `handler` (synchronously in the uWS handler, after the route matched),
 * `after-verify` (in the continuation of a cache-miss verification), `upstream-response`
 * (in undici's response callback), `thread-exit` (an exception thrown outside any
 * request's boundary, on the next turn of the loop: it ends a front-end thread, which
 * the main thread replaces, src/threads/main.ts). Armed failpoints fire only for requests whose path
 * contains `/failpoint/` followed by the name, so a test can aim at one request.
 */

const armed: ReadonlySet<string> = new Set(
  (process.env['MFA_GATEWAY_FAILPOINTS'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0),
);

/** True when any failpoint is armed in this process. */
export const FAILPOINTS_ARMED = armed.size > 0;

let currentPath = '';

/** The pipeline tells which request path is being handled, only when failpoints are armed. */
export function failpointPath(path: string): void {
  currentPath = path;
}

/** Throws when the named failpoint is armed and the current request aims at it. */
export function failpoint(name: string, path: string = currentPath): void {
  if (!FAILPOINTS_ARMED || !armed.has(name)) return;
  if (path.includes(`/failpoint/${name}`)) throw new Error(`failpoint ${name}`);
}

/** Throws outside every boundary (an uncaught exception) when the named failpoint is armed and aimed at. */
export function failpointUncaught(name: string, path: string = currentPath): void {
  if (!FAILPOINTS_ARMED || !armed.has(name) || !path.includes(`/failpoint/${name}`)) return;
  setImmediate(() => {
    throw new Error(`failpoint ${name}`);
  });
}
