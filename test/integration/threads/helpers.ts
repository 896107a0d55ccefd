/** Requests on fresh connections and /metrics reading for the threads' tests. */
import { get } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
import { Client, request } from 'undici';
import type { GatewayProcess } from '../harness.js';

/** One GET on a connection of its own (agent: false), so the kernel picks a thread for each. */
export function fresh(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

export async function metricsText(gw: GatewayProcess): Promise<string> {
  const res = await request(`${gw.adminUrl}/metrics`);
  expect(res.statusCode).toBe(200);
  return res.body.text();
}

/** The value of each sample of a metric, by its label text (`{thread="0"}`, or '' without labels). */
export function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const cut = line.lastIndexOf(' ');
    out.set(line.slice(name.length, cut), Number(line.slice(cut + 1)));
  }
  return out;
}
export const total = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);

export async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await cond()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** One GET on a kept-alive connection; its status. */
export async function onConnection(c: Client, path: string, headers: Record<string, string> = {}): Promise<number> {
  const r = await c.request({ method: 'GET', path, headers });
  await r.body.text();
  return r.statusCode;
}

/**
 * A kept-alive connection to each of two threads: each connection's thread is learned
 * from which `mfa_gateway_thread_requests_total{thread}` moved after one request on it
 * (`path`: a route that answers 200). The connections left over are closed.
 */
export async function connectionPerThread(gw: GatewayProcess, path: string): Promise<[Client, Client]> {
  const byThread = new Map<string, Client>();
  const spare: Client[] = [];
  for (let i = 0; i < 24 && byThread.size < 2; i++) {
    const c = new Client(gw.url, { pipelining: 1, keepAliveTimeout: 60_000 });
    const before = samples(await metricsText(gw), 'mfa_gateway_thread_requests_total');
    expect(await onConnection(c, `${path}which-${i}`)).toBe(200);
    const after = samples(await metricsText(gw), 'mfa_gateway_thread_requests_total');
    const moved = [...after.entries()].filter(([k, v]) => v !== before.get(k)).map(([k]) => k);
    expect(moved).toHaveLength(1);
    if (!byThread.has(moved[0]!)) byThread.set(moved[0]!, c);
    else spare.push(c);
  }
  await Promise.all(spare.map((c) => c.destroy()));
  expect(byThread.size).toBe(2);
  return [...byThread.values()] as [Client, Client];
}
