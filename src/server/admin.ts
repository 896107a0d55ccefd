import { timingSafeEqual } from 'node:crypto';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { readinessExposition } from '../observe/metrics.js';

/** What the admin listener serves; filled by the gateway (and metrics by src/observe). */
export interface AdminSources {
  ready(): { ready: boolean; checks: Record<string, unknown> };
  metrics?(): Promise<{ contentType: string; body: string }>;
  /** More endpoints, one object each, from the feature they belong to (src/admin/). */
  routes?: readonly AdminRoute[];
  /**
   * The bearer secret state-changing endpoints ask for (`admin.tokenFile`), read at each
   * request so a reload can replace it; null when the admin listener is on a loopback
   * address and none is configured (`check` refuses any other listener without one).
   */
  token?: () => string | null;
}

/** An admin request, copied out of uWS, with its body read (up to MAX_ADMIN_BODY). */
export interface AdminRequest {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  /** Lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

export interface AdminReply {
  readonly status: number;
  /** An object is sent as JSON. */
  readonly body: string | object;
  readonly contentType?: string;
}

/** One admin endpoint. */
export interface AdminRoute {
  readonly method: 'get' | 'post' | 'delete';
  readonly path: string;
  /** State-changing (reload, revocations): needs the admin token whenever one is set. */
  readonly mutates: boolean;
  handle(req: AdminRequest): AdminReply | Promise<AdminReply>;
}

/** Admin bodies are small JSON documents; anything larger is refused (413). */
const MAX_ADMIN_BODY = 64 * 1024;

const STATUS: Readonly<Record<number, string>> = {
  200: '200 OK',
  201: '201 Created',
  202: '202 Accepted',
  204: '204 No Content',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  404: '404 Not Found',
  409: '409 Conflict',
  413: '413 Payload Too Large',
  422: '422 Unprocessable Content',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
};

/** True when `authorization` carries the admin token (a constant-time comparison). */
function authorized(authorization: string | undefined, token: string): boolean {
  if (authorization === undefined || !/^bearer /i.test(authorization)) return false;
  const given = Buffer.from(authorization.slice(7).trim());
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

function mountRoute(app: TemplatedApp, route: AdminRoute, tokenOf: () => string | null): void {
  const handler = (res: HttpResponse, req: HttpRequest): void => {
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    const headers: Record<string, string> = {};
    req.forEach((k, v) => {
      headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
    });
    const base = { method: req.getMethod().toUpperCase(), path: req.getUrl(), query: req.getQuery() ?? '', headers };
    const token = route.mutates ? tokenOf() : null;
    if (token !== null && !authorized(headers['authorization'], token)) {
      // RFC 6750 §3: the admin token is a bearer token of the admin listener's own. The
      // endpoint does not run, and its body is never read.
      reply(res, { status: 401, body: { error: 'unauthorized', error_description: 'This endpoint needs the admin token (admin.tokenFile).' } }, 'Bearer realm="mfa-gateway-admin"');
      return;
    }
    const run = (body: Buffer): void => {
      Promise.resolve()
        .then(() => route.handle({ ...base, body }))
        .then(
          (r) => {
            if (!aborted) reply(res, r);
          },
          () => {
            if (!aborted) reply(res, { status: 500, body: { error: 'internal_error' } });
          },
        );
    };
    const length = headers['content-length'];
    if (headers['transfer-encoding'] === undefined && (length === undefined || length === '0')) return run(Buffer.alloc(0));
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    res.onData((ab, isLast) => {
      if (refused || aborted) return;
      size += ab.byteLength;
      if (size > MAX_ADMIN_BODY) {
        refused = true;
        reply(res, { status: 413, body: { error: 'payload_too_large', error_description: `Admin request bodies are at most ${MAX_ADMIN_BODY} bytes.` } });
        return;
      }
      chunks.push(Buffer.from(ab.slice(0)));
      if (isLast) run(Buffer.concat(chunks));
    });
  };
  if (route.method === 'get') app.get(route.path, handler);
  else if (route.method === 'post') app.post(route.path, handler);
  else app.del(route.path, handler);
}

function reply(res: HttpResponse, r: AdminReply, challenge?: string): void {
  const text = typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
  res.cork(() => {
    res.writeStatus(STATUS[r.status] ?? `${r.status}`);
    res.writeHeader('content-type', r.contentType ?? (typeof r.body === 'string' ? 'text/plain' : 'application/json'));
    res.writeHeader('cache-control', 'no-store');
    if (challenge !== undefined) res.writeHeader('www-authenticate', challenge);
    res.end(text);
  });
}

function send(res: HttpResponse, status: string, contentType: string, body: string): void {
  res.cork(() => {
    res.writeStatus(status);
    res.writeHeader('content-type', contentType);
    res.writeHeader('cache-control', 'no-store');
    res.end(body);
  });
}

type Loose = Record<string, unknown>;
const isObject = (v: unknown): v is Loose => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * One line per thing that keeps the gateway from being ready, first in the `/readyz`
 * body, so an operator (or a load balancer's log) reads why without walking the checks:
 * `issuer corp: http://idp/certs: connection refused (ECONNREFUSED 127.0.0.1:8443)`.
 */
export function notReadyReasons(checks: Loose): string[] {
  const reasons: string[] = [];
  if (checks['listening'] === false) reasons.push('not listening (starting, or draining for shutdown)');
  const issuers = checks['issuers'];
  if (isObject(issuers)) {
    for (const [name, s] of Object.entries(issuers)) {
      if (isObject(s) && s['ok'] === false) {
        reasons.push(`issuer ${name}: ${typeof s['error'] === 'string' ? s['error'] : 'no key set loaded yet'}`);
      }
    }
  }
  const verifier = checks['verifier'];
  if (isObject(verifier) && verifier['ok'] === false) reasons.push(`verifier: ${typeof verifier['error'] === 'string' ? verifier['error'] : 'not completing verifications'}`);
  return reasons;
}

/**
 * The admin listener: `/healthz` (the process answers), `/readyz` (listening, config
 * loaded, upstream pools built, key sets loaded, the verifier pool completing tasks), `/metrics`. It is a separate uWS app
 * on its own address, so these paths can never be reached through the public port.
 */
export function mountAdmin(app: TemplatedApp, sources: AdminSources): TemplatedApp {
  app.get('/healthz', (res) => {
    send(res, '200 OK', 'application/json', '{"status":"ok"}');
  });
  app.get('/readyz', (res) => {
    const r = sources.ready();
    const body = r.ready ? { status: 'ready', ...r.checks } : { status: 'not_ready', reasons: notReadyReasons(r.checks), ...r.checks };
    send(res, r.ready ? '200 OK' : '503 Service Unavailable', 'application/json', JSON.stringify(body));
  });
  app.get('/metrics', (res) => {
    if (!sources.metrics) return send(res, '404 Not Found', 'text/plain', 'metrics are not enabled\n');
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    sources.metrics().then(
      (m) => {
        if (!aborted) send(res, '200 OK', m.contentType, `${m.body.endsWith('\n') ? m.body : `${m.body}\n`}${readinessExposition(sources.ready().ready)}`);
      },
      () => {
        if (!aborted) send(res, '500 Internal Server Error', 'text/plain', 'metrics failed\n');
      },
    );
  });
  for (const route of sources.routes ?? []) mountRoute(app, route, sources.token ?? (() => null));
  app.any('/*', (res) => send(res, '404 Not Found', 'application/json', '{"error":"not_found"}'));
  return app;
}
