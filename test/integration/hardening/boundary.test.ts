/**
 * The per-request boundary, from outside the built gateway: an exception while one
 * request is handled (synchronously in the uWS handler, in the continuation of a
 * verification, in undici's response callback) answers that request 500 `internal`, is
 * logged once with its request id and counted in `mfa_gateway_internal_errors_total`,
 * and the process keeps serving every other request.
 *
 * The exceptions come from failpoints (src/failpoints.ts), armed only through the
 * MFA_GATEWAY_FAILPOINTS environment variable of this test's gateway.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { baseConfig, startGatewayProcess, startUpstream, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';
import { startIdp, type TestIdp } from '../auth/tokens.js';
import { recordToken } from '../leaks.js';

let idp: TestIdp;
let up: Upstream;
let gw: GatewayProcess;

beforeAll(async () => {
  idp = await startIdp();
  up = await startUpstream();
  gw = await startGatewayProcess(
    writeConfig(
      baseConfig({
        issuers: [{ name: 'corp', issuer: idp.issuer, jwksUri: idp.jwksUri, audience: ['orders-api'] }],
        upstreams: { app: { url: up.url } },
        routes: [
          { path: '/public/', upstream: 'app', auth: 'none' },
          { path: '/api/', upstream: 'app', auth: 'token' },
        ],
      }),
    ),
    { MFA_GATEWAY_FAILPOINTS: 'handler,after-verify,upstream-response' },
  );
});

afterAll(async () => {
  await gw?.stop();
  await Promise.all([up?.close(), idp?.close()]);
});

async function internalErrors(): Promise<number> {
  const text = await (await request(`${gw.adminUrl}/metrics`)).body.text();
  const line = text.split('\n').find((l) => l.startsWith('mfa_gateway_internal_errors_total '));
  if (line === undefined) throw new Error('mfa_gateway_internal_errors_total is not exported');
  return Number(line.split(' ')[1]);
}

async function get(path: string, token?: string): Promise<{ status: number; body: Record<string, unknown>; id: string }> {
  const id = `fp-${Math.random().toString(36).slice(2)}`;
  const headers: Record<string, string> = { 'x-request-id': id };
  if (token) headers['authorization'] = `Bearer ${recordToken(token)}`;
  const res = await request(`${gw.url}${path}`, { headers });
  const text = await res.body.text();
  return { status: res.statusCode, body: text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : {}, id };
}

async function logLines(id: string): Promise<Record<string, unknown>[]> {
  for (let i = 0; i < 100; i++) {
    const lines = gw
      .stdout()
      .split('\n')
      .filter((l) => l.includes('internal error') && l.includes(id))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    if (lines.length > 0) return lines;
    await new Promise((r) => setTimeout(r, 20));
  }
  return [];
}

describe('an exception while handling one request', () => {
  for (const [where, path, auth] of [
    ['synchronously in the uWS handler', '/public/failpoint/handler', false],
    ['in the continuation of a cache-miss verification', '/api/failpoint/after-verify', true],
    ["in undici's response callback", '/public/failpoint/upstream-response', false],
  ] as const) {
    it(`${where}: answers that request 500 internal, logs it once with the request id, counts it, and keeps serving`, async () => {
      const before = await internalErrors();
      const token = auth ? await idp.mint({ sub: `fp-${Math.random()}` }) : undefined;
      const res = await get(path, token);
      expect(res.status).toBe(500);
      expect(res.body).toEqual({ error: 'internal_error', error_description: 'The gateway failed to handle this request.', request_id: res.id });
      const lines = await logLines(res.id);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ msg: 'internal error while handling a request', request_id: res.id, err: expect.stringContaining('failpoint') });
      expect(await internalErrors()).toBe(before + 1);
      // The process is still there, and the next request is served normally.
      expect(gw.proc.exitCode).toBeNull();
      expect((await get('/public/ok')).status).toBe(200);
    });
  }

  it('never reaches the upstream when it happens before the dispatch', async () => {
    const before = up.received.length;
    expect((await get('/public/failpoint/handler')).status).toBe(500);
    expect(up.received.slice(before).some((r) => r.url.includes('failpoint'))).toBe(false);
  });
});
