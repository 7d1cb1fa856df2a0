/**
 * The registry-facts step of a review, where the policy runs (a worker thread or the
 * event loop): ask the policy which facts the decision needs, bound them by maxLookups,
 * have them gathered where the registry client is, put them on the images.
 */

import type { FactsStep } from '../policy/engine.ts';
import type { FactRequest, ImageFacts } from '../registry/facts.ts';
import type { PolicyInput } from '../review/policy-input.ts';
import { LimitError } from '../shared/input-error.ts';
import type { JsonObject } from '../shared/json.ts';

/** The facts for these requests, by image index: registry I/O, on the main thread. */
export type GatherFacts = (
  requests: readonly FactRequest[],
  namespace: string,
  decision: 'mutate' | 'validate',
) => Promise<ReadonlyMap<number, ImageFacts>>;

/**
 * Which facts the decision needs (the policy says), bounded by maxLookups, gathered by
 * `gather` and put on the images: where the policy runs (a worker thread or the event
 * loop), while `gather` runs where the registry client is.
 */
export function factsStep(gather: GatherFacts): FactsStep {
  return async (engine, input, decision) => {
    const needed = engine.factsNeeded(input, decision);
    const requests = needed[decision];
    if (requests.length === 0) return input;
    // A pod spec chooses how many lookups its review costs: bounded before any is made.
    const distinct = new Set(requests.map(lookupKey)).size;
    if (distinct > needed.maxLookups) {
      throw new LimitError(
        `the object needs ${distinct} registry lookups; a review may make at most ${needed.maxLookups} (maxLookups)`,
        'lookups',
      );
    }
    return attachFacts(input, await gather(requests, input.namespace, decision));
  };
}

/** Two requests that make the same registry calls are one lookup. */
export const lookupKey = (r: FactRequest) =>
  `${r.registry}/${r.repository}:${r.tag}@${r.digest}|${r.keys.join(',')}|${r.trustRoot ?? ''}`;

/** The input with `facts` on the images gathered for (a copy: the input is not changed). */
export function attachFacts(
  input: PolicyInput,
  gathered: ReadonlyMap<number, ImageFacts>,
): PolicyInput {
  return {
    ...input,
    images: input.images.map((image, index) => {
      const facts = gathered.get(index);
      return facts === undefined ? image : { ...image, facts: facts as unknown as JsonObject };
    }),
  };
}
