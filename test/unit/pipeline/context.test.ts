import { describe, expect, it } from 'vitest';
import { tmpdir } from 'node:os';
import { compileConfig } from '../../../src/config/load.js';
import { RequestContext } from '../../../src/pipeline/context.js';
import type { Services } from '../../../src/pipeline/services.js';
import { RecordingAnswerer } from '../../../src/explain/recorder.js';
import { PLAIN } from '../../../src/pipeline/answer.js';

const state = compileConfig(
  { server: { trustedProxies: ['10.0.0.0/8'] }, upstreams: { u: { url: 'http://127.0.0.1:9' } }, routes: [{ path: '/', upstream: 'u', auth: 'none' }] },
  tmpdir(),
);
// The constructor reads nothing of the services; explain passes its own (src/explain/explain.ts).
const services = {} as Services;

describe('RequestContext.fromValues (explain)', () => {
  it('fills every field the uWS constructor fills, by the same code', () => {
    const answerer = new RecordingAnswerer();
    const ctx = RequestContext.fromValues(
      {
        method: 'get',
        path: '/a/../b',
        query: 'x=1',
        headers: [
          ['host', 'api.example'],
          ['authorization', 'Bearer abc'],
          ['x-forwarded-for', '203.0.113.7'],
          ['x-request-id', 'trace-42'],
          ['content-length', '0'],
        ],
        remote: '10.1.2.3',
      },
      state,
      services,
      answerer,
    );
    expect(ctx).toMatchObject({ method: 'GET', rawPath: '/a/../b', query: 'x=1', host: 'api.example', hostCount: 1, authorization: 'Bearer abc', authCount: 1 });
    expect(ctx.headers).toEqual(['host', 'api.example', 'authorization', 'Bearer abc', 'x-forwarded-for', '203.0.113.7', 'x-request-id', 'trace-42', 'content-length', '0']);
    expect(ctx.remote).toBe('10.1.2.3');
    // A trusted peer: the client is the address it forwarded for.
    expect(ctx.client).toBe('203.0.113.7');
    expect(ctx.requestId).toBe('trace-42');
    expect(ctx.hasBody).toBe(false);
    expect(ctx.state).toBe(state);
    expect(ctx.responder).toBe(answerer);

    answerer.bind(ctx);
    answerer.answer(PLAIN.not_found);
    expect(answerer.done).toBe(true);
    expect(answerer.answered).toBe(PLAIN.not_found);
    expect(ctx).toMatchObject({ reason: 'not_found', status: 404 });
  });

  it('reads an IPv6 peer, generates a request id for one that does not look like one, and keeps two Host lines apart', () => {
    const ctx = RequestContext.fromValues(
      { method: 'OPTIONS', path: '/', query: undefined, headers: [['host', 'a'], ['host', 'b'], ['x-request-id', 'has space']], remote: '2001:db8::1' },
      state,
      services,
      new RecordingAnswerer(),
    );
    expect(ctx.method).toBe('OPTIONS');
    expect(ctx.remote).toBe('2001:db8::1');
    expect(ctx.client).toBe('2001:db8::1');
    expect(ctx.hostCount).toBe(2);
    expect(ctx.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(ctx.query).toBeUndefined();
  });
});
