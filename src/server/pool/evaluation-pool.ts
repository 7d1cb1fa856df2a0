/**
 * Reviews evaluated off the event loop, on a pool of worker threads (node:worker_threads
 * directly: a review goes back and forth between a thread and the event loop for its
 * registry facts, and a new policy must reach every thread before any serves it — neither
 * fits a stateless task pool such as piscina). The event loop keeps TLS, body bytes,
 * registry I/O and the answers; each thread has its own wasm instance.
 *
 * Fair under hostile load: a review goes to the thread with the fewest reviews in hand,
 * so one costly review holds one thread while the others go on — and the operating system
 * shares a single CPU between the threads, where one event loop would have run the costly
 * review to its end first. A thread that dies fails its reviews closed and is replaced.
 */
import { type ResourceLimits, Worker } from 'node:worker_threads';
import { LANE_IMAGES, LARGE_MEMORY_BYTES } from '../../policy/engine.ts';
import type { PolicySnapshot } from '../../policy/loader.ts';
import { describeThrown } from '../../shared/describe-thrown.ts';
import type { Logger } from '../../shared/logger.ts';
import type { ReviewEvaluator } from '../evaluator.ts';
import type { GatherFacts } from '../facts-step.ts';
import type { Endpoint, ReviewResult } from '../review-core.ts';
import type { FromWorker, ToWorker, WorkerData } from './messages.ts';

/**
 * Reviews waiting for the large lane, at most (each holds its body); past it, and after
 * LANE_WAIT_MS waiting (the API server gives up after its webhook timeout, 5 s as deployed,
 * 30 s at most), a review keeps the thread's fail-closed answer.
 */
export const LANE_QUEUE = 4;
export const LANE_WAIT_MS = 10_000;
const LANE_FULL = 'the large lane has reviews enough waiting; this one fails closed';
const LANE_LATE = 'a review waited too long for the large lane; it fails closed';

/** The default: two threads, even on one CPU (above); docs/sizing.md for more. */
export const DEFAULT_EVALUATION_THREADS = 2;

/** A review sent to a thread and not answered. */
interface Pending {
  readonly endpoint: Endpoint;
  readonly bytes: Uint8Array;
  readonly resolve: (result: ReviewResult) => void;
}

export interface PoolOptions {
  /** Each thread's V8 heap bounds (tests use small ones to kill a thread). */
  readonly limits?: ResourceLimits;
  /** The threads' wasm memory (the engine's MAX_MEMORY_BYTES when absent; tests). */
  readonly memoryBytes?: number;
  /** The large lane's wasm memory (LARGE_MEMORY_BYTES; 0: no lane). */
  readonly laneMemoryBytes?: number;
  /** Reviews with more images go to the lane untried (LANE_IMAGES; tests). */
  readonly laneImages?: number;
  /** ReviewOptions.decisionLines (review-core.ts). */
  readonly decisionLines?: boolean;
}

interface Thread {
  readonly worker: Worker;
  /** Reviews sent and not answered, by id. */
  readonly reviews: Map<number, Pending>;
  /** Preparations it has not answered, by generation. */
  readonly preparing: Map<number, (error: string | undefined) => void>;
  /** Serving the committed policy (a replacement is not, until it has caught up). */
  ready: boolean;
  /** The generation it serves (the large lane's thread is started with one). */
  generation?: number;
}

const WORKER_URL = new URL(
  import.meta.url.endsWith('.ts') ? './evaluation-worker.ts' : './evaluation-worker.js',
  import.meta.url,
);

/** What a review lost with its thread gets: the opaque 500 of an unexpected error. */
const lostResult = (why: string): ReviewResult => ({
  status: 500,
  body: JSON.stringify({ error: 'internal error' }),
  outcome: 'error',
  log: { level: 'error', message: 'unexpected error', fields: { error: why } },
  revision: '',
});

export class EvaluationPool implements ReviewEvaluator {
  readonly #threads: Thread[] = [];
  readonly #gather: GatherFacts;
  readonly #logger: Logger;
  #nextId = 0;
  #generation = 0;
  /** The policy every thread serves, for a replacement thread. */
  #committed: { readonly generation: number; readonly snapshot: PolicySnapshot } | undefined;
  #closing = false;

  readonly #limits: ResourceLimits | undefined;
  /**
   * The large lane: reviews a thread's engine ran out of wasm memory for, judged one at a
   * time by a thread of its own whose engine has `#laneMemory` (LARGE_MEMORY_BYTES), started
   * when one comes and stopped when none is left, so its memory goes back to the system.
   * Only one such instance exists at a time: the Deployment's limit counts one
   * (docs/sizing.md). 0: no lane, such a review fails closed.
   */
  readonly #laneMemory: number;
  readonly #laneJobs: {
    readonly pending: Pending;
    readonly failed: ReviewResult;
    readonly queuedAt: number;
  }[] = [];
  #lane: Thread | undefined;
  /** The last lane thread's termination. */
  #laneStopped: Promise<unknown> = Promise.resolve();
  #laneBusy = false;

  /** What the pool's threads are started with (the large lane: its own memory, no limit). */
  readonly #workerData: WorkerData;

  constructor(size: number, gather: GatherFacts, logger: Logger, options: PoolOptions = {}) {
    this.#gather = gather;
    this.#logger = logger;
    this.#limits = options.limits;
    this.#laneMemory = options.laneMemoryBytes ?? LARGE_MEMORY_BYTES;
    this.#workerData = {
      ...(options.memoryBytes === undefined ? {} : { memoryBytes: options.memoryBytes }),
      ...(options.decisionLines === undefined ? {} : { decisionLines: options.decisionLines }),
      // Only with a lane to hand them to: without one, every review is tried.
      ...(this.#laneMemory > 0 ? { largeAbove: options.laneImages ?? LANE_IMAGES } : {}),
    };
    for (let i = 0; i < Math.max(1, size); i++)
      this.#threads.push(this.#spawn(true, this.#workerData));
  }

  /** Whether the large lane's thread runs now (tests). */
  get laneRunning(): boolean {
    return this.#lane !== undefined;
  }

  get size(): number {
    return this.#threads.length;
  }

  /** Reviews in hand, per thread. */
  load(): number[] {
    return this.#threads.map((t) => t.reviews.size);
  }

  /**
   * Builds the policy in every thread; resolves with a commit that swaps all of them to
   * it, or rejects (discarding it everywhere) when any thread cannot build it.
   */
  async prepare(snapshot: PolicySnapshot): Promise<() => void> {
    const generation = ++this.#generation;
    const answers = this.#threads.map((thread) => this.#prepareIn(thread, generation, snapshot));
    const errors = (await Promise.all(answers)).filter((e) => e !== undefined);
    if (errors.length > 0) {
      for (const thread of this.#threads) this.#send(thread, { type: 'discard', generation });
      throw new Error(`an evaluation thread refused the policy: ${errors[0]}`);
    }
    return () => {
      this.#committed = { generation, snapshot };
      for (const thread of this.#threads) {
        this.#send(thread, { type: 'commit', generation });
        thread.ready = true;
      }
    };
  }

  review(endpoint: Endpoint, bytes: Uint8Array): Promise<ReviewResult> {
    return new Promise((resolve) =>
      this.#sendReview(this.#leastBusy(), { endpoint, bytes, resolve }),
    );
  }

  async close(): Promise<void> {
    this.#closing = true;
    for (const job of this.#laneJobs.splice(0)) job.pending.resolve(job.failed);
    this.#stopLane();
    await Promise.all([this.#laneStopped, ...this.#threads.map((t) => t.worker.terminate())]);
  }

  #sendReview(thread: Thread, pending: Pending): void {
    const id = ++this.#nextId;
    thread.reviews.set(id, pending);
    this.#send(thread, { type: 'review', id, endpoint: pending.endpoint, bytes: pending.bytes });
  }

  /** A review a thread's engine ran out of memory for: to the large lane, in turn. */
  #toLane(pending: Pending, failed: ReviewResult): void {
    if (this.#laneMemory <= 0 || this.#closing) {
      pending.resolve(failed);
    } else if (this.#laneJobs.length >= LANE_QUEUE) {
      // Bounded: each waits with its body, and the API server gives up on it soon anyway.
      this.#logger.warn({ waiting: this.#laneJobs.length }, LANE_FULL);
      pending.resolve(failed);
    } else {
      this.#laneJobs.push({ pending, failed, queuedAt: performance.now() });
      void this.#pumpLane();
    }
  }

  async #pumpLane(): Promise<void> {
    if (this.#laneBusy) return;
    const job = this.#laneJobs.shift();
    if (job === undefined || this.#closing) {
      // Nothing left: stop the thread, so its memory goes back to the system.
      this.#stopLane();
      if (job !== undefined) job.pending.resolve(job.failed);
      return;
    }
    if (performance.now() - job.queuedAt > LANE_WAIT_MS) {
      this.#logger.warn({ waitedMs: Math.round(performance.now() - job.queuedAt) }, LANE_LATE);
      job.pending.resolve(job.failed);
      void this.#pumpLane();
      return;
    }
    this.#laneBusy = true;
    let result = job.failed;
    try {
      const lane = await this.#laneThread();
      // Without a lane, the thread's answer stands: it failed closed.
      if (lane !== undefined) {
        result = await new Promise<ReviewResult>((resolve) =>
          this.#sendReview(lane, { ...job.pending, resolve }),
        );
      }
    } catch (error) {
      this.#logger.error({ error: describeThrown(error) }, 'the large lane failed');
    } finally {
      job.pending.resolve(result);
      this.#laneBusy = false;
      void this.#pumpLane();
    }
  }

  /** Stops the lane's thread; the next one starts only once this one is gone. */
  #stopLane(): void {
    const lane = this.#lane;
    this.#lane = undefined;
    if (lane !== undefined) this.#laneStopped = lane.worker.terminate();
  }

  /** The lane's thread, serving the committed policy (a new one after a reload). */
  async #laneThread(): Promise<Thread | undefined> {
    const committed = this.#committed;
    if (committed === undefined || this.#closing) return undefined;
    const running = this.#lane;
    if (running !== undefined && running.generation === committed.generation) return running;
    // One lane instance at a time, the Deployment's limit counts one: the old one first goes.
    this.#stopLane();
    await this.#laneStopped;
    if (this.#closing) return undefined;
    const { largeAbove: _tried, ...shared } = this.#workerData;
    const lane = this.#spawn(false, { ...shared, memoryBytes: this.#laneMemory });
    this.#lane = lane;
    const error = await this.#prepareIn(lane, committed.generation, committed.snapshot);
    if (error !== undefined || this.#lane !== lane || this.#closing) {
      if (error !== undefined) {
        this.#logger.error({ error }, 'the large lane could not load the policy');
      }
      if (this.#lane === lane) this.#stopLane();
      else void lane.worker.terminate();
      return undefined;
    }
    this.#send(lane, { type: 'commit', generation: committed.generation });
    lane.generation = committed.generation;
    lane.ready = true;
    return lane;
  }

  #leastBusy(): Thread {
    let best: Thread | undefined;
    for (const thread of this.#threads) {
      if (!thread.ready) continue;
      if (best === undefined || thread.reviews.size < best.reviews.size) best = thread;
    }
    // Before the first policy, every thread answers alike (no policy loaded: fail closed).
    return best ?? (this.#threads[0] as Thread);
  }

  #prepareIn(thread: Thread, generation: number, snapshot: PolicySnapshot) {
    return new Promise<string | undefined>((resolve) => {
      thread.preparing.set(generation, resolve);
      this.#send(thread, { type: 'prepare', generation, snapshot });
    });
  }

  #send(thread: Thread, message: ToWorker): void {
    thread.worker.postMessage(message);
  }

  #spawn(ready: boolean, workerData: WorkerData): Thread {
    const worker = new Worker(WORKER_URL, {
      workerData,
      ...(this.#limits === undefined ? {} : { resourceLimits: this.#limits }),
    });
    const thread: Thread = { worker, reviews: new Map(), preparing: new Map(), ready };
    worker.on('message', (message: FromWorker) => this.#receive(thread, message));
    worker.on('error', (error) => {
      this.#logger.error({ error: describeThrown(error) }, 'evaluation thread failed');
    });
    worker.on('exit', (code) => this.#exited(thread, code));
    return thread;
  }

  #receive(thread: Thread, message: FromWorker): void {
    switch (message.type) {
      case 'prepared': {
        const resolve = thread.preparing.get(message.generation);
        thread.preparing.delete(message.generation);
        resolve?.(message.error);
        return;
      }
      case 'result': {
        const pending = thread.reviews.get(message.id);
        thread.reviews.delete(message.id);
        if (pending === undefined) return;
        if (message.result.outOfMemory === true && thread !== this.#lane) {
          this.#toLane(pending, message.result);
        } else {
          pending.resolve(message.result);
        }
        return;
      }
      case 'gather': {
        const { id, requests, namespace, decision, cachedOnly } = message;
        this.#gather(requests, namespace, decision, cachedOnly).then(
          (gathered) =>
            this.#send(
              thread,
              gathered === undefined
                ? { type: 'facts', id }
                : {
                    type: 'facts',
                    id,
                    gathered: [...gathered.facts],
                    ...(gathered.until === undefined ? {} : { until: gathered.until }),
                  },
            ),
          // gather answers every failure as facts; this is a bug, and the review fails closed.
          (error: unknown) => {
            this.#logger.error({ error: describeThrown(error) }, 'registry facts failed');
            this.#send(thread, { type: 'facts', id, gathered: [] });
          },
        );
        return;
      }
    }
  }

  #exited(thread: Thread, code: number): void {
    const at = this.#threads.indexOf(thread);
    for (const pending of thread.reviews.values())
      pending.resolve(lostResult(`evaluation thread exited (${code})`));
    thread.reviews.clear();
    for (const resolve of thread.preparing.values()) resolve(`evaluation thread exited (${code})`);
    thread.preparing.clear();
    if (thread === this.#lane) this.#lane = undefined;
    if (this.#closing || at < 0) return;
    this.#logger.error({ code }, 'evaluation thread exited; starting another');
    const replacement = this.#spawn(false, this.#workerData);
    this.#threads[at] = replacement;
    const committed = this.#committed;
    if (committed === undefined) {
      replacement.ready = true;
      return;
    }
    void this.#prepareIn(replacement, committed.generation, committed.snapshot).then((error) => {
      if (error !== undefined) {
        this.#logger.error({ error }, 'a replacement evaluation thread refused the policy');
        return;
      }
      this.#send(replacement, { type: 'commit', generation: committed.generation });
      replacement.ready = true;
    });
  }
}
