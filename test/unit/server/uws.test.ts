import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { SUPPORTED_NODE, runtimeProblem, uwsBuild } from '../../../src/server/uws.js';

const require = createRequire(import.meta.url);
const uwsDir = dirname(require.resolve('uWebSockets.js/package.json'));
const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '../../../package.json'), 'utf8')) as { engines: { node: string } };

describe('which Node.js runs the gateway', () => {
  it('the installed uWebSockets.js build ships native code for Node ABI 93, 108 and 115 only (Node 16, 18, 20)', () => {
    const abis = new Set(readdirSync(join(uwsDir, 'binaries')).map((f) => /_(\d+)\.node$/.exec(f)?.[1]));
    expect([...abis].sort()).toEqual(['108', '115', '93']);
    // Node 20's ABI is the one both it and the other dependencies (undici 7: Node ≥ 20.18.1) allow.
    expect(SUPPORTED_NODE.abi).toBe('115');
    expect(pkg.engines.node).toBe('>=20.18.1 <21');
  });

  it('accepts this Node 20, and names what to install on any other', () => {
    expect(runtimeProblem()).toBeUndefined();
    const { name, version } = uwsBuild();
    expect(runtimeProblem({ node: '22.1.0', modules: '127' })).toBe(
      `Node.js 20.x is required (this is 22.1.0): the uWebSockets.js build this gateway uses (${name}@${version}) ships native code for Node 16, 18 and 20 only ` +
        "(ABI 93, 108, 115), and the gateway's other dependencies need Node 20.18.1 or later. Install Node.js 20 (the 20.x LTS line, e.g. `nvm install 20`), then run `npm ci` again.",
    );
    expect(runtimeProblem({ node: '18.20.4', modules: '108' })).toMatch(/^Node\.js 20\.x is required \(this is 18\.20\.4\)/);
    expect(runtimeProblem({ node: '20.10.0', modules: '115' })).toMatch(/^Node\.js 20\.18\.1 or a later 20\.x is required \(this is 20\.10\.0\): undici 7 needs it\./);
    expect(runtimeProblem({ node: '20.18.1', modules: '115' }, 'linux', 'x64')).toBeUndefined();
    expect(runtimeProblem({ node: '20.19.0', modules: '115' }, 'freebsd', 'x64')).toBe(
      `the uWebSockets.js build this gateway uses (${name}@${version}) has no native code for freebsd-x64; it has for darwin-arm64, darwin-x64, linux-arm, linux-arm64, linux-x64, win32-x64. Run the gateway on one of those, with Node.js 20.`,
    );
  });
});
