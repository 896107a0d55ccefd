// The one port helper of the tests and of the bench (bench/lib/ports.js; the tests reach it
// through ../authn/idp.js, the bench through bench/lib/processes.js). Listening on port 0
// again right after a probe closed may give the same port (266 repeats in 2,000 probes on
// the development machine); a bench run once gave a gateway the same port for `listen`
// and `admin`, which its config check refused. It must never hand out a port twice.
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort } from '../authn/idp.js';
import { freePort as benchFreePort } from '../../../bench/lib/processes.js';

const CALLS = 500;

describe('freePort', () => {
  it('is one helper for the tests and the bench', () => {
    expect(freePort).toBe(benchFreePort);
  });

  it('never gives the same port twice in one process', async () => {
    const ports = new Set<number>();
    for (let i = 0; i < CALLS; i++) ports.add(await freePort());
    expect(ports.size).toBe(CALLS);
  });

  it('gives a port that a server can then listen on', async () => {
    const port = await freePort();
    const srv = createServer();
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', resolve);
    });
    await new Promise((r) => srv.close(r));
  });
});
