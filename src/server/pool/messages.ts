/**
 * What the event loop and the evaluation threads say to each other (structured clone:
 * plain data only). A review travels as its body's bytes and comes back as its answer's
 * text; registry facts are asked for by the thread and gathered by the event loop, which
 * owns the registry client. Engines are prepared in every thread, then committed or
 * discarded everywhere at once (a new policy everywhere or nowhere).
 */
import type { PolicySnapshot } from '../../policy/loader.ts';
import type { FactRequest, ImageFacts } from '../../registry/facts.ts';
import type { Endpoint, ReviewResult } from '../review-core.ts';

export type ToWorker =
  | { readonly type: 'prepare'; readonly generation: number; readonly snapshot: PolicySnapshot }
  | { readonly type: 'commit'; readonly generation: number }
  | { readonly type: 'discard'; readonly generation: number }
  | {
      readonly type: 'review';
      readonly id: number;
      readonly endpoint: Endpoint;
      readonly bytes: Uint8Array;
    }
  | {
      readonly type: 'facts';
      readonly id: number;
      /** Absent: a cache-only gather missed. */
      readonly gathered?: readonly (readonly [number, ImageFacts])[];
      /** A cache-only gather's: when the first fact leaves the caches (epoch ms). */
      readonly until?: number;
    };

export type FromWorker =
  | {
      readonly type: 'prepared';
      readonly generation: number;
      readonly error?: string;
    }
  | {
      readonly type: 'gather';
      readonly id: number;
      readonly requests: readonly FactRequest[];
      readonly namespace: string;
      readonly decision: 'mutate' | 'validate';
      readonly cachedOnly: boolean;
    }
  | { readonly type: 'result'; readonly id: number; readonly result: ReviewResult };

/** What a thread is started with. */
export interface WorkerData {
  /** Its engines' wasm memory (the engine's default when absent). */
  readonly memoryBytes?: number;
  /** Reviews with more images go to the large lane untried (EngineOptions.largeAbove). */
  readonly largeAbove?: number;
  /** ReviewOptions.decisionLines. */
  readonly decisionLines?: boolean;
}
