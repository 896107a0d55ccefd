import type { TemplatedApp, us_listen_socket, us_socket } from 'uWebSockets.js';
import { GatewayError } from '../errors.js';
import { loadUws } from './uws.js';

/** uSockets' `LIBUS_LISTEN_EXCLUSIVE_PORT` (uWebSockets.js ListenOptions). */
const LIBUS_LISTEN_EXCLUSIVE_PORT = 1;
interface ExclusiveListen {
  listen(host: string, port: number, options: number, cb: (socket: us_listen_socket | false) => void): void;
}

/**
 * Listens on an exclusive port. uSockets sets SO_REUSEPORT by default, so a second
 * gateway on the same port would "listen" too and share the traffic unnoticed; an
 * exclusive port fails instead. (The package's typings lack this overload; the native
 * listen takes host, port, options, callback.)
 */
export function listenExclusive(app: TemplatedApp, host: string, port: number, what: string): Promise<{ socket: us_listen_socket; port: number }> {
  const uws = loadUws();
  return new Promise((resolve, reject) => {
    (app as unknown as ExclusiveListen).listen(host, port, LIBUS_LISTEN_EXCLUSIVE_PORT, (socket) => {
      if (!socket) {
        reject(new GatewayError('LISTEN_FAILED', `cannot listen on ${host}:${port} for the ${what} listener (address in use or not available)`));
      } else {
        resolve({ socket, port: uws.us_socket_local_port(socket as unknown as us_socket) });
      }
    });
  });
}

/**
 * Listens on a port other front-end threads of this process share (uSockets' default
 * SO_REUSEPORT: the kernel spreads new connections over them). Only after the main
 * thread has checked with listenExclusive that no other process holds the port.
 */
export function listenShared(app: TemplatedApp, host: string, port: number, what: string): Promise<{ socket: us_listen_socket; port: number }> {
  const uws = loadUws();
  return new Promise((resolve, reject) => {
    (app as unknown as ExclusiveListen).listen(host, port, 0, (socket) => {
      if (!socket) reject(new GatewayError('LISTEN_FAILED', `cannot listen on ${host}:${port} for the ${what} listener (address in use or not available)`));
      else resolve({ socket, port: uws.us_socket_local_port(socket as unknown as us_socket) });
    });
  });
}
