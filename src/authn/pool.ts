/**
 * The verifier's worker pool (README "Token verification"): never-seen tokens go to
 * Piscina worker threads in batches, many verifications in flight per worker.
 *
 * Why batches, and not Piscina's `concurrentTasksPerWorker`. A Piscina task is one
 * message each way, a wake-up of the worker and of the main thread, and (for the task
 * timeout) an AbortSignal: measured on one pinned core, one task costs 75-117 µs of
 * CPU with its signal before any work is done, more than jose's whole RS256
 * verification (48-68 µs). And Piscina 5 hands a task with an abort signal only to an
 * idle worker and counts that worker as full while it runs (LeastBusyBalancer,
 * `isRunningAbortableTask`): aborting a task ends its worker, so nothing else may be on
 * it. With the task timeout, `concurrentTasksPerWorker` changes nothing (measured: 2,000
 * verifications/s with 1 and with 16). So the main thread sends each worker one batch
 * at a time, of up to `verifier.concurrency` tokens, one message each way; the worker
 * verifies a batch's tokens concurrently, their WebCrypto signature checks overlapping
 * on libuv's thread pool (bench/README.md "The cold path"). Tokens that arrive while
 * every worker holds a batch wait here and leave together in the next one, so batches
 * grow with the load and a quiet gateway sends each token at once.
 *
 * The bounds stay those of one task each: at most `threads × concurrency` tokens in the
 * workers and `maxQueue` more waiting (Piscina 5 does not bound tasks that carry an
 * abort signal, so the count is kept here, per token), and every token answered within
 * `taskTimeout` of its submission, the queue wait included: a batch is abandoned at
 * its oldest token's deadline (Piscina then ends the worker running it), and a token
 * still queued at its deadline is answered without being sent.
 *
 * A worker that dies fails the batch it held. Each token of it is sent once more, alone
 * and one at a time (two retries in one worker would be co-passengers again), so that
 * only the token that kills a worker is refused for it (503): a co-passenger is not.
 */
import { performance } from 'node:perf_hooks';
import { Piscina } from 'piscina';
import type { CompiledIssuer } from '../config/state.js';
import { tokenFailure } from './failures.js';
import type { StoredKey } from './jwks.js';
import type { TokenFailure, VerifierReadiness } from './types.js';
import {
  MISSING,
  PROBE_ANSWER,
  type BatchAnswer,
  type BatchItem,
  type IssuerDefinition,
  type KeyDefinition,
  type ProbeTask,
  type VerifyBatch,
  type VerifyTaskResult,
} from './worker/verify.js';

/** The settings the pool reads at every dispatch (a reload may change all but `threads`). */
export interface PoolSettings {
  readonly threads: number;
  readonly concurrency: number;
  readonly maxQueue: number;
  readonly taskTimeoutMs: number;
}

export interface PoolHooks {
  log(level: 'error', msg: string, fields: Record<string, unknown>): void;
  /** One verification abandoned after `taskTimeout`. */
  onTimeout(): void;
}

/** The worker's answer, or the 503 failure when there was none. */
export type PoolAnswer = VerifyTaskResult | TokenFailure;

interface Job {
  readonly item: BatchItem;
  readonly key: StoredKey;
  readonly issuer: CompiledIssuer;
  /** performance.now() at submission; the deadline is `taskTimeout` later. */
  readonly started: number;
  readonly deadline: number;
  readonly resolve: (answer: PoolAnswer) => void;
  /** Already sent again alone after a worker died under it. */
  retried: boolean;
}

const UNAVAILABLE = tokenFailure('verifier_unavailable');
const OVERLOADED = tokenFailure('overloaded');
const POOL_OK: VerifierReadiness['pool'] = Object.freeze({ ok: true });
const PROBE: ProbeTask = Object.freeze({ probe: true });
/** Piscina rejects a task it has no room for with one of these (piscina/dist/errors.js). */
const QUEUE_FULL = /^(Task queue is at limit|No task queue available)/;

type Task = VerifyBatch | ProbeTask;
type Answer = BatchAnswer | typeof PROBE_ANSWER;

export class VerifyPool {
  private readonly pool: Piscina<Task, Answer>;
  /** Tokens not sent yet, oldest first, from `head` on. */
  private queue: Job[] = [];
  private head = 0;
  /** Tokens in batches a worker holds (or Piscina is handing to one). */
  private inWorkers = 0;
  /** Batches sent and not settled: at most one per worker. */
  private batches = 0;
  private flushScheduled = false;
  /** Tokens to send again alone, one at a time, after a worker died under them. */
  private retries: Job[] = [];
  private retrying = false;
  private expiry: NodeJS.Timeout | null = null;
  /** Numbers of keys (one per key of each loaded key-set version) and of compiled issuers. */
  private readonly numbers = new WeakMap<object, number>();
  private nextNumber = 1;
  private closed = false;
  /** Verifications abandoned after `taskTimeout`, since start. */
  timeouts = 0;
  // Health, on the monotonic clock (task timeouts are real time, whatever the verifier's clock says).
  /** When the pool last went from idle to busy. */
  private busySince = 0;
  /** When a batch or a probe last came back from a worker. */
  private lastCompleted = performance.now();
  /** When the latest token that timed out had been submitted; -Infinity: none has. */
  private lastTimedOutStart = Number.NEGATIVE_INFINITY;
  private probing = false;
  private readonly flushNow = () => this.flush();
  private readonly expireNow = () => this.expire();

  constructor(
    file: URL,
    private readonly settings: () => PoolSettings,
    private readonly hooks: PoolHooks,
  ) {
    const s = settings();
    this.pool = new Piscina<Task, Answer>({
      filename: file.href,
      minThreads: s.threads,
      maxThreads: s.threads,
      // One batch per worker at a time (the top of this file); the tokens are bounded here.
      maxQueue: s.maxQueue,
    });
    // A worker that dies outside a task must not become an unhandled 'error' event
    // that takes the gateway down; Piscina replaces it.
    this.pool.on('error', (err: Error) => hooks.log('error', 'verifier worker failed', { error: err.message }));
  }

  /** Tokens submitted and not answered yet: queued or in a worker. */
  get pending(): number {
    return this.queue.length - this.head + this.inWorkers + this.retries.length;
  }

  /** Tokens waiting for room in a worker. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  get utilization(): number {
    return this.pool.utilization;
  }

  /** Verifies `token` with `key` in a worker; never rejects. */
  run(token: string, key: StoredKey, issuer: CompiledIssuer, alg: string, nowMs: number): Promise<PoolAnswer> {
    if (this.closed) return Promise.resolve(UNAVAILABLE);
    const s = this.settings();
    if (this.pending >= s.threads * s.concurrency + s.maxQueue) return Promise.resolve(OVERLOADED);
    const started = performance.now();
    if (this.pending === 0) this.busySince = started;
    const item: BatchItem = { token, key: this.number(key), issuer: this.number(issuer), alg, nowMs };
    return new Promise<PoolAnswer>((resolve) => {
      this.queue.push({ item, key, issuer, started, deadline: started + s.taskTimeoutMs, resolve, retried: false });
      this.schedule();
      if (this.expiry === null) this.armExpiry(s.taskTimeoutMs);
    });
  }

  /**
   * Sends the queue at the end of this turn of the event loop (setImmediate runs after
   * the poll phase, so every request the front end read in this turn is in it), when a
   * worker is free; otherwise the batch that comes back calls this again.
   */
  private schedule(): void {
    if (this.flushScheduled || this.head === this.queue.length) return;
    if (this.batches >= this.settings().threads) return;
    this.flushScheduled = true;
    setImmediate(this.flushNow);
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.closed) return;
    const s = this.settings();
    const now = performance.now();
    // The waiting tokens, shared out evenly over the free workers, `concurrency` at most each.
    while (this.batches < s.threads && this.head < this.queue.length) {
      const free = s.threads - this.batches;
      const size = Math.min(s.concurrency, Math.ceil((this.queue.length - this.head) / free));
      const jobs: Job[] = [];
      while (jobs.length < size && this.head < this.queue.length) {
        const job = this.queue[this.head]!;
        this.queue[this.head++] = undefined as unknown as Job;
        if (job.deadline <= now) this.timedOut([job]);
        else jobs.push(job);
      }
      if (jobs.length > 0) this.send(jobs, false);
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    }
  }

  /**
   * One batch to a worker. `define`: attach the definitions of its keys and issuers
   * (the worker answered MISSING, or the batch is a retry that may reach a fresh worker).
   * `retry`: the one retry in flight; the next follows when it settles.
   */
  private send(jobs: Job[], define: boolean, retry = false): void {
    let deadline = Number.POSITIVE_INFINITY;
    for (const job of jobs) if (job.deadline < deadline) deadline = job.deadline;
    const signal = AbortSignal.timeout(Math.max(1, Math.ceil(deadline - performance.now())));
    const batch: VerifyBatch = define ? { items: jobs.map((j) => j.item), ...this.definitions(jobs) } : { items: jobs.map((j) => j.item) };
    this.inWorkers += jobs.length;
    this.batches++;
    this.pool.run(batch, { signal }).then(
      (answer) => {
        this.batches--;
        this.inWorkers -= jobs.length;
        this.lastCompleted = performance.now();
        // A worker without the definitions: the same batch again at once, with them (its
        // worker is free and its tokens are counted already).
        if (answer === MISSING && !define && !this.closed) return this.send(jobs, true, retry);
        this.answered(jobs, answer);
        this.settled(retry);
      },
      (err: unknown) => {
        this.batches--;
        this.inWorkers -= jobs.length;
        this.failed(jobs, err, signal);
        this.settled(retry);
      },
    );
  }

  private settled(retry: boolean): void {
    if (retry) {
      this.retrying = false;
      this.nextRetry();
    }
    this.schedule();
  }

  private nextRetry(): void {
    if (this.retrying || this.closed) return;
    const now = performance.now();
    let job: Job | undefined;
    while ((job = this.retries.shift()) !== undefined && job.deadline <= now) this.timedOut([job]);
    if (job === undefined) return;
    this.retrying = true;
    this.send([job], true, true);
  }

  private answered(jobs: Job[], answer: Answer): void {
    if (this.closed) {
      for (const job of jobs) job.resolve(UNAVAILABLE);
      return;
    }
    if (!Array.isArray(answer) || answer.length !== jobs.length) {
      // Not an answer this protocol gives: a bug, never a token's fault (503, not cached).
      this.hooks.log('error', 'verifier worker answered out of protocol', { answer: answer === MISSING ? MISSING : typeof answer });
      for (const job of jobs) job.resolve(UNAVAILABLE);
      return;
    }
    for (let i = 0; i < jobs.length; i++) jobs[i]!.resolve(answer[i] as VerifyTaskResult);
  }

  private failed(jobs: Job[], err: unknown, signal: AbortSignal): void {
    if (this.closed) {
      for (const job of jobs) job.resolve(UNAVAILABLE);
      return;
    }
    if (signal.aborted) return this.timedOut(jobs);
    const message = (err as Error)?.message ?? String(err);
    if (QUEUE_FULL.test(message)) {
      for (const job of jobs) job.resolve(OVERLOADED);
      return;
    }
    // A worker died under this batch. When it held more than this one token, each is
    // tried once more alone, so that only the token that kills a worker is refused for it.
    for (const job of jobs) {
      if (jobs.length > 1 && !job.retried) {
        job.retried = true;
        this.retries.push(job);
        continue;
      }
      this.hooks.log('error', 'verifier worker task failed', { issuer: job.issuer.name, error: message });
      job.resolve(UNAVAILABLE);
    }
    this.nextRetry();
  }

  /** Tokens past `taskTimeout`: 503, counted, one log line per issuer. */
  private timedOut(jobs: Job[]): void {
    const byIssuer = new Map<string, number>();
    for (const job of jobs) {
      this.timeouts++;
      if (job.started > this.lastTimedOutStart) this.lastTimedOutStart = job.started;
      byIssuer.set(job.issuer.name, (byIssuer.get(job.issuer.name) ?? 0) + 1);
      try {
        this.hooks.onTimeout();
      } catch {
        // A failing metrics callback must not turn a timeout into something else.
      }
      job.resolve(UNAVAILABLE);
    }
    const timeoutMs = this.settings().taskTimeoutMs;
    for (const [issuer, n] of byIssuer) this.hooks.log('error', 'verifier task timed out', { issuer, timeoutMs, ...(n > 1 ? { verifications: n } : {}) });
  }

  /** Answers the queued tokens whose deadline passed while no worker had room (a stalled pool). */
  private expire(): void {
    this.expiry = null;
    if (this.closed) return;
    const now = performance.now();
    const late: Job[] = [];
    let next = Number.POSITIVE_INFINITY;
    const kept: Job[] = [];
    for (let i = this.head; i < this.queue.length; i++) {
      const job = this.queue[i]!;
      if (job.deadline <= now) late.push(job);
      else {
        kept.push(job);
        if (job.deadline < next) next = job.deadline;
      }
    }
    if (late.length > 0) {
      this.queue = kept;
      this.head = 0;
      this.timedOut(late);
    }
    if (next !== Number.POSITIVE_INFINITY) this.armExpiry(next - now);
  }

  private armExpiry(ms: number): void {
    this.expiry = setTimeout(this.expireNow, Math.max(1, Math.ceil(ms)));
    this.expiry.unref();
  }

  private number(of: object): number {
    let n = this.numbers.get(of);
    if (n === undefined) {
      n = this.nextNumber++;
      this.numbers.set(of, n);
    }
    return n;
  }

  private definitions(jobs: readonly Job[]): { keys: Record<number, KeyDefinition>; issuers: Record<number, IssuerDefinition> } {
    const keys: Record<number, KeyDefinition> = {};
    const issuers: Record<number, IssuerDefinition> = {};
    for (const { item, key, issuer: i } of jobs) {
      keys[item.key] = { jwk: key.jwk, keyId: key.id };
      issuers[item.issuer] = {
        algorithms: i.algorithms,
        issuer: i.issuer,
        issuerName: i.name,
        claims: i.claims,
        audience: i.audience,
        clockToleranceSec: i.clockToleranceSec,
        typ: i.typ,
      };
    }
    return { keys, issuers };
  }

  /**
   * The pool is stalled when it stops completing tasks: a verification has waited
   * longer than the task timeout with none completed meanwhile, or one timed out and
   * none has completed since it was submitted. Timeouts alone do not make it stalled
   * while other tasks complete (one slow worker, or an overloaded queue).
   */
  health(): VerifierReadiness['pool'] {
    if (this.closed) return POOL_OK;
    const limit = this.settings().taskTimeoutMs;
    if (this.lastTimedOutStart > this.lastCompleted) {
      return { ok: false, error: `worker pool stalled: a verification timed out after ${limit} ms and none has completed since` };
    }
    const quiet = performance.now() - Math.max(this.busySince, this.lastCompleted);
    if (this.pending > 0 && quiet > limit) {
      return { ok: false, error: `worker pool stalled: ${this.pending} verifications pending, none completed for ${Math.round(quiet)} ms` };
    }
    return POOL_OK;
  }

  /** One task at a time that verifies nothing; its answer counts as a completion. */
  probe(): void {
    if (this.probing || this.closed) return;
    this.probing = true;
    const started = performance.now();
    const signal = AbortSignal.timeout(this.settings().taskTimeoutMs);
    this.pool
      .run(PROBE, { signal })
      .then(
        (answer) => {
          if (answer === PROBE_ANSWER) this.lastCompleted = performance.now();
        },
        () => {
          if (signal.aborted) this.lastTimedOutStart = Math.max(this.lastTimedOutStart, started);
        },
      )
      .finally(() => {
        this.probing = false;
      });
  }

  /** Answers everything queued (503) and ends the workers; batches in flight answer 503 too. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.expiry !== null) clearTimeout(this.expiry);
    this.expiry = null;
    const queued = [...this.queue.slice(this.head), ...this.retries];
    this.queue = [];
    this.head = 0;
    this.retries = [];
    for (const job of queued) job.resolve(UNAVAILABLE);
    await this.pool.destroy();
  }
}
