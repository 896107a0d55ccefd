import { z } from 'zod';
import { describedAs, showValue } from './problems.js';

const UNIT_MS: Readonly<Record<string, number>> = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
const UNITS = ['d', 'h', 'm', 's', 'ms'] as const;
const PART = String.raw`(\d+(?:\.\d+)?)`;
/**
 * Each unit at most once, largest first (`1h30m`, `2m30s`, `1d12h`, `1m500ms`), as Go's
 * time.ParseDuration reads them, but with a fixed order so one duration has one spelling.
 * `m(?!s)`: the minutes of `1m` are never the start of `1ms`.
 */
const DURATION = new RegExp(`^(?:${PART}d)?(?:${PART}h)?(?:${PART}m(?!s))?(?:${PART}s)?(?:${PART}ms)?$`);

/** The examples every duration message shows: what the grammar accepts. */
export const DURATION_EXAMPLES = '5s, 1m, 1h30m';

/**
 * Parses a duration string of the config file into milliseconds: numbers with the units
 * `d`, `h`, `m`, `s`, `ms`, each at most once and largest first.
 *
 * @example parseDuration('500ms') === 500; parseDuration('1h30m') === 5_400_000; parseDuration('0s') === 0
 * @returns the number of milliseconds, or undefined when the text is not a duration.
 */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text.trim());
  if (!m || m.slice(1).every((g) => g === undefined)) return undefined;
  let ms = 0;
  UNITS.forEach((unit, i) => {
    const n = m[i + 1];
    if (n !== undefined) ms += Number(n) * UNIT_MS[unit]!;
  });
  return Number.isFinite(ms) ? Math.round(ms) : undefined;
}

/** The message for a value that is no duration at all (a number, a word, `1h 30m`). */
export function notADuration(value: unknown): string {
  return `${showValue(value)} is not a duration; use a duration such as ${DURATION_EXAMPLES}`;
}

/**
 * A config duration string. With `min` (itself a duration, e.g. `'1s'`), shorter values
 * are refused too; without it `0s` is allowed.
 *
 * @example drainTimeout: durationSchema().default('10s'); window: durationSchema('1s')
 */
export function durationSchema(min?: string) {
  const minMs = min === undefined ? 0 : parseDuration(min)!;
  const schema = z.string().superRefine((s, ctx) => {
    const ms = parseDuration(s);
    if (ms === undefined) ctx.addIssue({ code: 'custom', message: notADuration(s) });
    else if (ms < minMs) ctx.addIssue({ code: 'custom', message: `must be at least ${min}` });
  });
  return describedAs(schema, {
    form: min === undefined ? `a duration such as ${DURATION_EXAMPLES}` : `a duration of at least ${min}, such as ${DURATION_EXAMPLES}`,
    wrong: notADuration,
  });
}

/** A config duration string (validated by parseDuration); `0s` allowed. */
export const duration = durationSchema();
