/**
 * Where audit lines go: each line is encoded once, straight into a slab of memory, and
 * whole slabs are written to the file descriptor off the request's path, one write in
 * flight at a time, so lines stay whole and in order.
 *
 * Why not sonic-boom (pino's destination), which the audit used before: it keeps its
 * buffer as one growing string, so each line costs a UTF-8 length scan and a string
 * append, and every write flattens and re-encodes the whole buffer. Counted with
 * callgrind on a cached request, that was about a third of the gateway's instructions
 * (bench/README.md, "What the profile showed"); writing into a Buffer is a memcpy.
 *
 * Behaviour, as the audit config documents it: lines wait until `bufferBytes` are pending
 * or `flushIntervalMs` has passed; beyond `maxBufferBytes` waiting, lines are dropped and
 * counted rather than growing memory without bound; `close()` writes everything and
 * closes the file (never stdout or stderr); at process exit what is left is written
 * synchronously.
 */
import { close as closeFd, closeSync, write as writeFd, writeSync } from 'node:fs';

export interface LineSinkOptions {
  /** Start a write once this many bytes wait (0: write every line at once). */
  readonly bufferBytes: number;
  /** Most bytes held waiting; lines beyond it are dropped (and counted). */
  readonly maxBufferBytes: number;
  /** Waiting bytes are written at least this often. */
  readonly flushIntervalMs: number;
  readonly onError?: (err: Error) => void;
}

/** Slab size: large enough that nearly every line fits the slab being filled. */
const SLAB = 64 * 1024;
/** Below this much room left, a slab is retired at its next hand-over rather than filled further. */
const MIN_ROOM = 4 * 1024;
/** A UTF-16 code unit is at most 3 bytes of UTF-8 (a surrogate pair, 2 units, is 4). */
const MAX_BYTES_PER_UNIT = 3;

export class LineSink {
  /** Filled slabs (or parts of them) waiting to be written, in order. */
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private slab: Buffer = Buffer.allocUnsafe(SLAB);
  /** Bytes of the slab filled so far. */
  private used = 0;
  /** Where in the slab the bytes not yet handed to the write queue start. */
  private start = 0;
  private writing = false;
  private closing: Promise<void> | null = null;
  private closedResolve: (() => void) | null = null;
  private readonly timer: NodeJS.Timeout;
  private readonly onExit = (): void => this.flushSync();
  /** Lines dropped because too much was waiting. */
  dropped = 0;

  constructor(
    private readonly fd: number,
    private readonly opts: LineSinkOptions,
  ) {
    this.timer = setInterval(() => this.flush(), Math.max(1, opts.flushIntervalMs));
    this.timer.unref();
    process.on('exit', this.onExit);
  }

  /**
   * Appends one line (its newline included), or `lines` whole lines in one string (a
   * front-end thread's batch, src/threads/). Never blocks; may drop it when full.
   */
  write(line: string, lines = 1): void {
    if (this.closing !== null) return;
    const room = SLAB - this.used;
    if (line.length * MAX_BYTES_PER_UNIT > room) {
      // Near the end of the slab (or a line larger than one): measure it exactly.
      const bytes = Buffer.byteLength(line);
      if (this.queued + this.used - this.start + bytes > this.opts.maxBufferBytes) {
        this.dropped += lines;
        return;
      }
      if (bytes > room) {
        this.rotate(true);
        if (bytes > SLAB) {
          this.queue.push(Buffer.from(line));
          this.queued += bytes;
          this.kick();
          return;
        }
      }
    } else if (this.queued + this.used - this.start + line.length > this.opts.maxBufferBytes) {
      this.dropped += lines;
      return;
    }
    this.used += this.slab.write(line, this.used, 'utf8');
    if (this.used - this.start >= this.opts.bufferBytes) this.flush();
  }

  /** Starts writing what waits, if no write is in flight. */
  flush(): void {
    this.rotate();
    this.kick();
  }

  /** Writes everything, then closes the descriptor (stdout and stderr stay open). Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      clearInterval(this.timer);
      process.off('exit', this.onExit);
      this.rotate();
      this.closedResolve = resolve;
      this.kick(); // writes what waits, then closes (or closes at once when nothing does)
    });
    return this.closing;
  }

  /**
   * Hands what was written since the last hand-over to the write queue. The slab goes on
   * being filled after it (what is queued is never written over); a new slab is taken
   * only when this one is full, so a flush every few lines costs no allocation.
   */
  private rotate(fresh = false): void {
    if (this.used > this.start) {
      this.queue.push(this.slab.subarray(this.start, this.used));
      this.queued += this.used - this.start;
    }
    if (fresh || SLAB - this.used < MIN_ROOM) {
      this.slab = Buffer.allocUnsafe(SLAB);
      this.used = 0;
    }
    this.start = this.used;
  }

  private kick(): void {
    if (this.writing) return;
    const next = this.queue.shift();
    if (next === undefined) {
      if (this.closedResolve !== null) this.finishClose();
      return;
    }
    this.writing = true;
    this.writeOut(next);
  }

  private writeOut(buf: Buffer): void {
    writeFd(this.fd, buf, 0, buf.length, null, (err, written) => {
      if (err) {
        // A pipe that is full (a non-blocking stdout) says EAGAIN: try again shortly.
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
          setTimeout(() => this.writeOut(buf), 10).unref();
          return;
        }
        // A full disk or a closed pipe must not take the gateway down: report, drop this slab.
        this.queued -= buf.length;
        this.writing = false;
        this.opts.onError?.(err);
        this.kick();
        return;
      }
      if (written < buf.length) {
        this.queued -= written;
        this.writeOut(buf.subarray(written));
        return;
      }
      this.queued -= buf.length;
      this.writing = false;
      this.kick();
    });
  }

  private finishClose(): void {
    const resolve = this.closedResolve;
    this.closedResolve = null;
    if (this.fd > 2) {
      closeFd(this.fd, () => resolve?.());
    } else resolve?.();
  }

  /** At process exit: whatever waits, written synchronously (the write in flight finishes first). */
  private flushSync(): void {
    this.rotate();
    for (const buf of this.queue) {
      let off = 0;
      while (off < buf.length) {
        try {
          off += writeSync(this.fd, buf, off, buf.length - off);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return;
        }
      }
    }
    this.queue.length = 0;
    if (this.fd > 2) {
      try {
        closeSync(this.fd);
      } catch {
        // already closed
      }
    }
  }
}
