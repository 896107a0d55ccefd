import type { us_listen_socket } from 'uWebSockets.js';
import type { GatewayState } from '../config/state.js';
import type { RequestContext } from '../pipeline/context.js';
import type { Services, SharedServices } from '../pipeline/services.js';
import { UpstreamPools } from '../proxy/pools.js';
import { frontHandler, type StateHolder } from './front.js';
import { listenExclusive, listenShared } from './listen.js';
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
  /**
   * Puts a new state in force (a reload, src/reload.ts): new requests take it, requests in
   * flight finish under the one they started with. Upstream pools follow it
   * (UpstreamPools.reconfigure); those it takes out of use close once every request that
   * arrived before it is over.
   */
  swap(next: GatewayState): ReturnType<UpstreamPools['reconfigure']>;
  /**
   * Closes every client connection at once, idle or not (uWS `app.close()`): requests in
   * flight end as aborted, their upstream requests aborted with them. The end of a drain.
   */
  abort(): void;
  /** Closes the upstream pools (after stopListening); `hard`: without waiting for their requests. */
  close(hard?: boolean): Promise<void>;
}

/** The requests in flight that arrived under one state. */
interface Generation {
  readonly state: GatewayState;
  inFlight: number;
}

/**
 * Starts the public listener on `state.listen` with the pipeline behind it, its own
 * upstream pools, and the parts shared with the rest of the process. `record` is told
 * of every finished request (its audit line and metrics). `shared`: a front-end thread's
 * listen on the port its siblings share (src/threads/worker.ts), checked by the main thread.
 */
export async function startFrontEnd(
  state: GatewayState,
  shared: SharedServices,
  record: (ctx: RequestContext) => void,
  listen: { readonly port: number; readonly shared: boolean } = { port: state.listen.port, shared: false },
): Promise<FrontEnd> {
  const uws = loadUws();
  const holder: StateHolder = { current: state };
  const pools = new UpstreamPools(state.upstreams);
  let inFlight = 0;
  let waiters: (() => void)[] = [];
  // Requests are counted per state, so pools a reload took out of use close only when no
  // request of an older state can still be sent through them.
  let current: Generation = { state, inFlight: 0 };
  const older = new Map<GatewayState, Generation>();
  const settleOlder = (s: GatewayState): void => {
    const g = older.get(s);
    if (g === undefined || --g.inFlight > 0) return;
    older.delete(s);
    if (older.size === 0) void pools.closeRetired();
  };
  const services: Services = {
    ...shared,
    pools,
    draining: false,
    finished(ctx) {
      inFlight--;
      if (ctx.state === current.state) current.inFlight--;
      else settleOlder(ctx.state);
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
      // The handler bound the request to holder.current, which swap() changes together with `current`.
      current.inFlight++;
    }),
  );
  let listenSocket: us_listen_socket | null = null;
  try {
    const listening = await (listen.shared ? listenShared : listenExclusive)(app, state.listen.host, listen.port, 'public');
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
      swap(next) {
        const changes = pools.reconfigure(next.upstreams);
        if (current.inFlight > 0) older.set(current.state, current);
        current = { state: next, inFlight: 0 };
        holder.current = next;
        if (older.size === 0) void pools.closeRetired();
        return changes;
      },
      abort() {
        // uWebSockets.js 20.30 has app.close() (closes the listen socket and every
        // connection, running each response's onAborted); its typings do not list it.
        (app as unknown as { close(): void }).close();
        listenSocket = null;
      },
      close: (hard = false) => pools.close(hard),
    };
  } catch (err) {
    await pools.close();
    throw err;
  }
}
