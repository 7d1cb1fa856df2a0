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
import type { PolicySnapshot } from '../../policy/loader.ts';
import { describeThrown } from '../../shared/describe-thrown.ts';
import type { Logger } from '../../shared/logger.ts';
import type { ReviewEvaluator } from '../evaluator.ts';
import type { GatherFacts } from '../facts-step.ts';
import type { Endpoint, ReviewResult } from '../review-core.ts';
import type { FromWorker, ToWorker } from './messages.ts';

/** The default: two threads, even on one CPU (above); docs/sizing.md for more. */
export const DEFAULT_EVALUATION_THREADS = 2;

interface Thread {
  readonly worker: Worker;
  /** Reviews sent and not answered, by id. */
  readonly reviews: Map<number, (result: ReviewResult) => void>;
  /** Preparations it has not answered, by generation. */
  readonly preparing: Map<number, (error: string | undefined) => void>;
  /** Serving the committed policy (a replacement is not, until it has caught up). */
  ready: boolean;
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

  /** `limits`: each thread's V8 heap bounds (tests use small ones to kill a thread). */
  constructor(size: number, gather: GatherFacts, logger: Logger, limits?: ResourceLimits) {
    this.#gather = gather;
    this.#logger = logger;
    this.#limits = limits;
    for (let i = 0; i < Math.max(1, size); i++) this.#threads.push(this.#spawn(true));
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
    const thread = this.#leastBusy();
    const id = ++this.#nextId;
    return new Promise((resolve) => {
      thread.reviews.set(id, resolve);
      this.#send(thread, { type: 'review', id, endpoint, bytes });
    });
  }

  async close(): Promise<void> {
    this.#closing = true;
    await Promise.all(this.#threads.map((t) => t.worker.terminate()));
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

  #spawn(ready: boolean): Thread {
    const worker = new Worker(
      WORKER_URL,
      this.#limits === undefined ? {} : { resourceLimits: this.#limits },
    );
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
        const resolve = thread.reviews.get(message.id);
        thread.reviews.delete(message.id);
        resolve?.(message.result);
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
    for (const resolve of thread.reviews.values())
      resolve(lostResult(`evaluation thread exited (${code})`));
    thread.reviews.clear();
    for (const resolve of thread.preparing.values()) resolve(`evaluation thread exited (${code})`);
    thread.preparing.clear();
    if (this.#closing || at < 0) return;
    this.#logger.error({ code }, 'evaluation thread exited; starting another');
    const replacement = this.#spawn(false);
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
