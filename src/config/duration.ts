import { z } from 'zod';

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/**
 * Parses a duration string of the config file into milliseconds.
 *
 * @example parseDuration('500ms') === 500; parseDuration('15m') === 900_000
 * @returns the number of milliseconds, or undefined when the text is not a duration.
 */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * (UNIT_MS[m[2]!] ?? NaN);
  return Number.isFinite(ms) ? Math.round(ms) : undefined;
}

/** A config duration string (validated by parseDuration). */
export const duration = z.string().refine((s) => parseDuration(s) !== undefined, {
  message: 'must be a duration such as 500ms, 30s, 15m, 1h',
});
