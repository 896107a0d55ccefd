import type { HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { readinessExposition } from '../observe/metrics.js';

/** What the admin listener serves; filled by the gateway (and metrics by src/observe). */
export interface AdminSources {
  ready(): { ready: boolean; checks: Record<string, unknown> };
  metrics?(): Promise<{ contentType: string; body: string }>;
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
  app.any('/*', (res) => send(res, '404 Not Found', 'application/json', '{"error":"not_found"}'));
  return app;
}
