/**
 * Problems with a config file, in the one form `check` and `start` print:
 * `path.to.key: what is wrong` (README, "Put it in front of your API").
 */
import type { z } from 'zod';

/** One problem with a config file, as `path.to.key: what is wrong`. */
export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
}

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(readonly problems: readonly ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
  }
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.path || '(root)'}: ${p.message}`;
}

function pathText(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let cur = data;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[seg];
  }
  return cur;
}

export function zodProblems(error: z.ZodError, data: unknown): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: pathText([...issue.path, key]), message: 'unknown key' });
    } else if (issue.code === 'invalid_type') {
      const missing = valueAt(data, issue.path) === undefined;
      out.push({ path: pathText(issue.path), message: missing ? `is required (${issue.expected})` : `must be a ${issue.expected}` });
    } else {
      out.push({ path: pathText(issue.path), message: issue.message });
    }
  }
  return out;
}

