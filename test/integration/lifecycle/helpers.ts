/**
 * Shared pieces of the token-lifecycle tests against the built gateway: a request with
 * any headers (the `DPoP` header may be sent twice), and the audit line of a request,
 * found by the request id the test gave it.
 */
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import type { GatewayProcess } from '../harness.js';
import { recordToken } from '../leaks.js';

export interface Answer {
  readonly status: number;
  readonly challenge: string | undefined;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Record<string, unknown>;
  readonly text: string;
  /** The request id sent, for {@link auditLine}. */
  readonly requestId: string;
}

export interface CallOptions {
  readonly method?: 'GET' | 'POST' | 'DELETE';
  /** `Authorization: <scheme> <token>`. */
  readonly token?: string;
  readonly scheme?: 'Bearer' | 'DPoP';
  /** One `DPoP` field line per entry. */
  readonly proofs?: readonly string[];
  readonly headers?: Record<string, string>;
  readonly body?: string;
}

export async function call(base: string, path: string, o: CallOptions = {}): Promise<Answer> {
  recordToken(o.token);
  const requestId = randomUUID();
  const headers: Record<string, string | string[]> = { 'x-request-id': requestId, ...o.headers };
  if (o.token !== undefined) headers['authorization'] = `${o.scheme ?? 'Bearer'} ${o.token}`;
  if (o.proofs !== undefined && o.proofs.length > 0) headers['dpop'] = o.proofs.length === 1 ? o.proofs[0]! : [...o.proofs];
  const res = await request(`${base}${path}`, { method: o.method ?? 'GET', headers, ...(o.body !== undefined ? { body: o.body } : {}) });
  const text = await res.body.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    /* not JSON: the assertions on `text` say so */
  }
  return { status: res.statusCode, challenge: res.headers['www-authenticate'] as string | undefined, headers: res.headers, body, text, requestId };
}

/** The audit line of the request `requestId` (audit lines go to stdout, unbuffered in these tests). */
export async function auditLine(gw: GatewayProcess, requestId: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const line = gw.logLines().find((l) => l['msg'] === 'audit' && l['request_id'] === requestId);
    if (line !== undefined) return line;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no audit line for request ${requestId}`);
}

/** The value of one sample of a Prometheus exposition (`name{labels}`), or undefined. */
export async function metric(gw: GatewayProcess, sample: string): Promise<number | undefined> {
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}
