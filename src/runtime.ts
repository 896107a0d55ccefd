/**
 * The clock and the network of a gateway, handed to every part that reads time or
 * fetches (the verifier and its key sets, the policy stage, rate limits and the spraying
 * guard, the audit line), as lru-cache takes a `perf.now()`, Envoy a `TimeSource` and
 * jose a custom `fetch`. Tests give a gateway a clock they move instead of sleeping
 * through real cooldowns and windows.
 *
 * Durations measured for the audit line and metrics (how long a request took) use
 * `performance.now()` directly: they describe the process, they decide nothing.
 *
 * @example
 * let t = Date.UTC(2030, 0, 1);
 * const runtime: Runtime = { now: () => t, fetch: globalThis.fetch };
 * const gateway = await startGateway(config, { runtime });
 * t += 31_000; // past the key-set cooldown, without waiting
 */
export interface Runtime {
  /** Wall-clock milliseconds since the epoch: token times, cache deadlines, windows, cooldowns, audit `time`. */
  now(): number;
  /** How discovery documents, key sets and introspection answers are fetched. */
  readonly fetch: typeof globalThis.fetch;
}

/** The real clock and network. */
export const SYSTEM_RUNTIME: Runtime = Object.freeze({
  now: Date.now,
  fetch: (input: Parameters<typeof globalThis.fetch>[0], init?: Parameters<typeof globalThis.fetch>[1]) => globalThis.fetch(input, init),
});
