/**
 * An evaluation thread: its own wasm instance (one is single-threaded and not re-entrant),
 * and the whole of a review but the socket — JSON parsing, narrowing, input building,
 * evaluation, the answer's text. Registry facts are asked of the event loop, which owns
 * the registry client; while one review waits for them the thread serves others. An
 * engine is prepared when asked and served only once committed; a review keeps the engine
 * it began with.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { PolicyEngine } from '../../policy/engine.ts';
import { describeThrown } from '../../shared/describe-thrown.ts';
import { factsStep, type Gathered, LookupMemo } from '../facts-step.ts';
import { reviewBytes } from '../review-core.ts';
import type { FromWorker, ToWorker, WorkerData } from './messages.ts';

const port = parentPort;
if (port === null) throw new Error('evaluation-worker.ts runs as a worker thread');

const post = (message: FromWorker) => port.postMessage(message);

/** The wasm memory of this thread's engines: the pool's large lane gives more. */
const { memoryBytes, largeAbove, decisionLines } = (workerData ?? {}) as WorkerData;
const reviewOptions = decisionLines === undefined ? {} : { decisionLines };

let current: PolicyEngine | undefined;
const prepared = new Map<number, PolicyEngine>();
/** Reviews waiting for their registry facts, by id. */
const waiting = new Map<number, (gathered: Gathered | undefined) => void>();

/** What each review shape needed, for this thread's engines: shared by its reviews. */
const memo = new LookupMemo();

const factsFor = (id: number) =>
  factsStep(
    (requests, namespace, decision, cachedOnly = false) =>
      new Promise((resolve) => {
        waiting.set(id, resolve);
        post({ type: 'gather', id, requests: [...requests], namespace, decision, cachedOnly });
      }),
    memo,
  );

async function handle(message: ToWorker): Promise<void> {
  switch (message.type) {
    case 'prepare': {
      try {
        const { bundle, config } = message.snapshot;
        const engine = await PolicyEngine.create(
          { ...bundle, files: new Map() },
          config,
          undefined,
          undefined,
          undefined,
          {
            ...(memoryBytes === undefined ? {} : { memoryBytes }),
            ...(largeAbove === undefined ? {} : { largeAbove }),
          },
        );
        prepared.set(message.generation, engine);
        post({ type: 'prepared', generation: message.generation });
      } catch (error) {
        post({ type: 'prepared', generation: message.generation, error: describeThrown(error) });
      }
      return;
    }
    case 'commit': {
      const engine = prepared.get(message.generation);
      if (engine !== undefined) current = engine;
      for (const generation of prepared.keys()) {
        if (generation <= message.generation) prepared.delete(generation);
      }
      return;
    }
    case 'discard':
      prepared.delete(message.generation);
      return;
    case 'facts': {
      const resolve = waiting.get(message.id);
      waiting.delete(message.id);
      resolve?.(
        message.gathered === undefined
          ? undefined
          : {
              facts: new Map(message.gathered),
              ...(message.until === undefined ? {} : { until: message.until }),
            },
      );
      return;
    }
    case 'review': {
      // The engine in service now: a commit while this review waits does not change it.
      const engine = current;
      const facts =
        engine !== undefined && engine.registries.size > 0 ? factsFor(message.id) : undefined;
      const result = await reviewBytes(
        engine,
        message.endpoint,
        message.bytes,
        facts,
        reviewOptions,
      );
      post({ type: 'result', id: message.id, result });
    }
  }
}

port.on('message', (message: ToWorker) => {
  void handle(message);
});
