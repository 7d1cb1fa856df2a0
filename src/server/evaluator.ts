/**
 * Who evaluates a review: the pool of evaluation threads (server/pool/), or the event loop
 * itself (`--evaluation-threads 0`). Both run review-core.ts, so they answer alike.
 */

import type { FactsStep } from '../policy/engine.ts';
import type { PolicyHolder } from '../policy/holder.ts';
import {
  type Endpoint,
  type ReviewOptions,
  type ReviewResult,
  reviewBytes,
} from './review-core.ts';

export interface ReviewEvaluator {
  review(endpoint: Endpoint, bytes: Uint8Array): Promise<ReviewResult>;
  close(): Promise<void>;
}

/** On the event loop, with the engine in service (read once per review). */
export function inProcessEvaluator(
  policy: PolicyHolder,
  facts: FactsStep | undefined,
  options: ReviewOptions = {},
): ReviewEvaluator {
  return {
    review: (endpoint, bytes) => reviewBytes(policy.engine, endpoint, bytes, facts, options),
    close: async () => undefined,
  };
}
