/**
 * Whether two parts of compiled (or effective) config say the same: what a reload keeps
 * and what it rebuilds is decided by this (src/reload.ts). Compiled sections are plain
 * data built in a fixed key order, with Maps and Sets; those compare by their entries.
 */

/** A text that is equal for equal settings: JSON, with Maps and Sets as their entries. */
export function settingsKey(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (v instanceof Map ? [...v.entries()] : v instanceof Set ? [...v] : v)) ?? 'undefined';
}

export function sameSettings(a: unknown, b: unknown): boolean {
  return a === b || settingsKey(a) === settingsKey(b);
}
