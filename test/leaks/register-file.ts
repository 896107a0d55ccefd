/**
 * setupFiles of the integration project (vitest.config.ts): each integration file that
 * runs says so in the leak directory, so the whole-run leak check knows whether the run
 * covered every integration file (then it insists on what it collected) or a few.
 */
import { relative, resolve, sep } from 'node:path';
import { beforeAll, expect } from 'vitest';
import { recordTestFile } from '../integration/leaks.js';

const ROOT = resolve(import.meta.dirname, '../..');

beforeAll(() => {
  const file = expect.getState().testPath;
  if (file === undefined) throw new Error('vitest did not say which file runs (expect.getState().testPath)');
  recordTestFile(relative(ROOT, file).split(sep).join('/'));
});
