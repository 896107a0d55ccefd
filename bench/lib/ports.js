/**
 * The one free-port helper of the bench and the tests (test/integration/authn/idp.ts
 * re-exports it), so that every port one process hands out comes from one set.
 */
import { createServer } from 'node:net';

/**
 * Ports this process has handed out: listening on port 0 twice in a row may give the
 * same port both times once the first probe has closed (266 repeats in 2,000 probes on
 * the development machine; once a bench gateway got the same port for `listen` and
 * `admin`, and two servers of one test must never be given the same one).
 */
const handedOut = new Set();

/**
 * A loopback port that was free a moment ago (listen on 0, read the port, close), for a
 * server started later; never the same twice in one process.
 * @returns {Promise<number>}
 */
export async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const { port } = srv.address();
        srv.close(() => resolve(port));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}
