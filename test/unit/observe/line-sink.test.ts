import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { LineSink } from '../../../src/observe/line-sink.js';

const dir = mkdtempSync(join(tmpdir(), 'line-sink-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const file = () => join(dir, `sink-${n++}.log`);
const open = (path: string) => openSync(path, 'a');

describe('the line sink', () => {
  it('keeps lines whole and in order across many slabs, lines larger than a slab and non-ASCII text', async () => {
    const path = file();
    const sink = new LineSink(open(path), { bufferBytes: 4096, maxBufferBytes: 64 * 1024 * 1024, flushIntervalMs: 1000 });
    const lines: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const body = i % 997 === 0 ? 'x'.repeat(200_000) : i % 3 === 0 ? `é€😀${i}` : `line ${i}`;
      lines.push(`${JSON.stringify({ i, body })}\n`);
    }
    for (const l of lines) sink.write(l);
    await sink.close();
    expect(readFileSync(path, 'utf8')).toBe(lines.join(''));
    expect(sink.dropped).toBe(0);
  });

  it('drops and counts what exceeds maxBufferBytes while a write is in flight, never a part of a line', async () => {
    const path = file();
    const sink = new LineSink(open(path), { bufferBytes: 0, maxBufferBytes: 10_000, flushIntervalMs: 1000 });
    const line = `${'y'.repeat(999)}\n`;
    for (let i = 0; i < 100; i++) sink.write(line);
    await sink.close();
    const text = readFileSync(path, 'utf8');
    expect(text.length % 1000).toBe(0);
    expect(text.length / 1000 + sink.dropped).toBe(100);
    expect(sink.dropped).toBeGreaterThan(0);
  });

  it('writes what is left, synchronously, when the process exits without closing it', () => {
    const path = file();
    const module = resolve(import.meta.dirname, '../../../dist/observe/line-sink.js');
    const script = `import { LineSink } from ${JSON.stringify(module)}; import { openSync } from 'node:fs';
      const s = new LineSink(openSync(${JSON.stringify(path)}, 'a'), { bufferBytes: 1 << 20, maxBufferBytes: 1 << 24, flushIntervalMs: 60000 });
      for (let i = 0; i < 1000; i++) s.write('exit ' + i + '\\n');
      process.exit(0);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(path, 'utf8').split('\n').filter(Boolean)).toHaveLength(1000);
  });
});
