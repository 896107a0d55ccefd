/**
 * uWebSockets.js adds `uWebSockets: 20` to every answer unless told not to
 * (src/server/uws.ts): no answer of the gateway, public or admin, names its server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseConfig, rawRequest, startGatewayProcess, startUpstream, writeConfig, type GatewayProcess, type Upstream } from '../harness.js';

let up: Upstream;
let gw: GatewayProcess;

beforeAll(async () => {
  up = await startUpstream();
  gw = await startGatewayProcess(
    writeConfig(
      baseConfig({
        issuers: [{ name: 'corp', issuer: 'https://idp.example', jwksUri: 'http://127.0.0.1:1/certs', audience: ['api'] }],
        upstreams: { u: { url: up.url } },
        routes: [
          { path: '/open/', upstream: 'u', auth: 'none', methods: ['GET'] },
          { path: '/api/', upstream: 'u', auth: 'token' },
        ],
      }),
    ),
  );
});

afterAll(async () => {
  await gw?.stop();
  await up?.close();
});

const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n${extra}\r\n`;

describe('no answer names the server software', () => {
  it('proxied, refused, malformed and admin answers carry no uWebSockets header', async () => {
    const answers: [number, string, RegExp][] = [
      [gw.port, get('/open/x'), /^HTTP\/1\.1 200 /],
      [gw.port, get('/nowhere'), /^HTTP\/1\.1 404 /],
      [gw.port, `POST /open/x HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`, /^HTTP\/1\.1 405 /],
      [gw.port, get('/api/x'), /^HTTP\/1\.1 401 /],
      [gw.port, get('/api/x', 'authorization: Bearer a.b.c\r\n'), /^HTTP\/1\.1 401 /],
      [gw.port, get('/open/%2e%2e/%2e%2e/x'), /^HTTP\/1\.1 400 /],
      [gw.adminPort, get('/healthz'), /^HTTP\/1\.1 200 /],
      [gw.adminPort, get('/readyz'), /^HTTP\/1\.1 503 /],
      [gw.adminPort, get('/metrics'), /^HTTP\/1\.1 200 /],
      [gw.adminPort, get('/other'), /^HTTP\/1\.1 404 /],
    ];
    for (const [port, req, status] of answers) {
      const { text } = await rawRequest(port, req, 500);
      expect(text, req).toMatch(status);
      const head = text.slice(0, text.indexOf('\r\n\r\n'));
      expect(head, req).not.toMatch(/^uwebsockets:/im);
      expect(head.toLowerCase(), req).not.toContain('uwebsockets');
    }
    expect(up.received).toHaveLength(1);
  });
});
