import type { us_listen_socket } from 'uWebSockets.js';
import type { GatewayState } from '../config/state.js';
import type { RequestContext } from '../pipeline/context.js';
import type { Services, SharedServices } from '../pipeline/services.js';
import { UpstreamPools } from '../proxy/pools.js';
import { frontHandler, type StateHolder } from './front.js';
import { listenExclusive } from './listen.js';
import { loadUws } from './uws.js';

/** The public listener: one uWS app running the pipeline, and what the process needs to steer it. */
export interface FrontEnd {
  readonly port: number;
  /** The state new requests are bound to; a reload assigns `holder.current`. */
  readonly holder: StateHolder;
  /** What this front end's stages use (its own upstream pools, the shared parts). */
  readonly services: Services;
  /** Requests being handled right now. */
  inFlight(): number;
  /** Resolves when no request is in flight (at once when none is). */
  idle(): Promise<void>;
  /** Stops accepting connections; with `services.draining` set, requests on open ones get 503. */
  stopListening(): void;
  listening(): boolean;
  /** Closes the upstream pools (after stopListening). */
  close(): Promise<void>;
}

/**
 * Starts the public listener on `state.listen` with the pipeline behind it, its own
 * upstream pools, and the parts shared with the rest of the process. `record` is told
 * of every finished request (its audit line and metrics).
 */
export async function startFrontEnd(state: GatewayState, shared: SharedServices, record: (ctx: RequestContext) => void): Promise<FrontEnd> {
  const uws = loadUws();
  const holder: StateHolder = { current: state };
  const pools = new UpstreamPools(state.upstreams);
  let inFlight = 0;
  let waiters: (() => void)[] = [];
  const services: Services = {
    ...shared,
    pools,
    draining: false,
    finished(ctx) {
      inFlight--;
      record(ctx);
      if (inFlight === 0 && waiters.length > 0) {
        const w = waiters;
        waiters = [];
        for (const f of w) f();
      }
    },
  };
  const tls = state.listen.tls;
  const app = tls
    ? uws.SSLApp({ cert_file_name: tls.cert, key_file_name: tls.key, ...(tls.passphrase ? { passphrase: tls.passphrase } : {}) })
    : uws.App();
  app.any(
    '/*',
    frontHandler(services, holder, () => {
      inFlight++;
    }),
  );
  let listenSocket: us_listen_socket | null = null;
  try {
    const listening = await listenExclusive(app, state.listen.host, state.listen.port, 'public');
    listenSocket = listening.socket;
    return {
      port: listening.port,
      holder,
      services,
      inFlight: () => inFlight,
      idle: () => (inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve))),
      stopListening() {
        if (listenSocket !== null) uws.us_listen_socket_close(listenSocket);
        listenSocket = null;
      },
      listening: () => listenSocket !== null,
      close: () => pools.close(),
    };
  } catch (err) {
    await pools.close();
    throw err;
  }
}
