/** `Retry-After` in whole seconds for a wait of `ms`, at least 1 (RFC 9110 §10.2.3 delay-seconds). */
export const retryAfter = (ms: number): number => Math.max(1, Math.ceil(ms / 1000));
