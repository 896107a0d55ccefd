import { createRequire } from 'node:module';
import { GatewayError } from '../errors.js';

type Uws = typeof import('uWebSockets.js');

let loaded: Uws | undefined;

/**
 * Loads uWebSockets.js and refuses its pure-JS fallback. The unofficial package
 * falls back to a slow emulation with only a console warning when no native build
 * matches this platform and Node ABI; a gateway whose whole point is latency must
 * not start on it. A native `App` prints `[native code]` from `toString()`.
 */
export function loadUws(): Uws {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  // The package logs its fallback warning through console.warn/log; keep it, but decide ourselves.
  const uws = require('uWebSockets.js') as Uws;
  if (!String(uws.App).includes('[native code]')) {
    throw new GatewayError(
      'UWS_NOT_NATIVE',
      `uWebSockets.js has no native build for ${process.platform}-${process.arch} with Node ABI ${process.versions.modules}` +
        ' (or UWS_USE_FALLBACK is set); refusing to run on the slow pure-JS fallback. Use Node.js 20 on Linux x64' +
        ' (the build shipped in "@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0"), unset UWS_USE_FALLBACK, and run `npm ci` again.',
    );
  }
  loaded = uws;
  return uws;
}

/** Decodes one of uWS's ArrayBuffer texts (remote address). */
export function abText(ab: ArrayBuffer): string {
  return Buffer.from(ab).toString('latin1');
}
