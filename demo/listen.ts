import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A port the demo could not listen on (in use, or not allowed). */
export class DemoListenError extends Error {
  readonly code = 'DEMO_LISTEN_FAILED';
  constructor(
    readonly what: string,
    readonly host: string,
    readonly port: number,
    override readonly cause: NodeJS.ErrnoException,
  ) {
    super(
      cause.code === 'EADDRINUSE'
        ? `cannot start the ${what}: ${host}:${port} is already in use`
        : `cannot start the ${what} on ${host}:${port}: ${cause.code ?? cause.message}`,
    );
    this.name = 'DemoListenError';
  }
}

/** Listens on host:port (0 = any free port) and resolves with the real port. */
export function listenOn(server: Server, host: string, port: number, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(new DemoListenError(what, host, port, err));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
