#!/usr/bin/env node
/**
 * `npm install` / `npm ci` in a checkout: build dist/ with TypeScript. In a checkout
 * installed with `--omit=dev` there is no TypeScript to build with; say how to get a
 * runnable gateway instead of failing the install with "tsc: not found".
 * (A packed tarball ships dist/ built, and npm does not run `prepare` when it installs one.)
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let tsc;
try {
  tsc = require.resolve('typescript/bin/tsc');
} catch {
  process.stderr.write(
    'mfa-gateway: TypeScript is not installed (npm ci --omit=dev?), so dist/ was not built.\n' +
      '  For production, install the packed package instead:  npm pack  →  npm install --omit=dev ./mfa-gateway-*.tgz\n' +
      '  (README, "Production install"). To build here:  npm ci  (with dev dependencies).\n',
  );
  process.exit(0);
}
void tsc;
const r = spawnSync('npm', ['run', 'build'], { stdio: 'inherit' });
process.exit(r.status ?? 1);
