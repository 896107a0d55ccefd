/** Requests on fresh connections and /metrics reading for the threads' tests. */
import { get } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
import { request } from 'undici';
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
