/**
 * The registry-facts step of a review, where the policy runs (a worker thread or the
 * event loop): ask the policy which facts the decision needs, bound them by maxLookups,
 * have them gathered where the registry client is, put them on the images.
 *
 * With the bundle's `imagegate/facts/decided` entrypoint, a warm review costs one
 * evaluation: the lookups a review of the same shape needed last time (a memo per engine,
 * per thread) are gathered first — from the caches, when warm — and the decision is
 * evaluated with them on the images. That evaluation also says which lookups the decision
 * needs; if they are exactly the ones given, the decision stands. If not (a new shape, a
 * changed exemption), they are gathered and the decision evaluated again: never more
 * than two evaluations, never a decision made on facts it did not ask for.
 */
import { LRUCache } from 'lru-cache';
import type { FactsStep, PolicyEngine } from '../policy/engine.ts';
import type { FactRequest, ImageFacts } from '../registry/facts.ts';
import type { PolicyInput } from '../review/policy-input.ts';
import { EngineError } from '../shared/engine-error.ts';
import { LimitError } from '../shared/input-error.ts';
import type { JsonObject } from '../shared/json.ts';

/** The facts for these requests, by image index: registry I/O, on the main thread. */
export type GatherFacts = (
  requests: readonly FactRequest[],
  namespace: string,
  decision: 'mutate' | 'validate',
) => Promise<ReadonlyMap<number, ImageFacts>>;

type Decision = 'mutate' | 'validate';

/** Reviews' shapes longer than this are not remembered (a pod with hundreds of images). */
const MAX_SHAPE_CHARS = 16 * 1024;

/**
 * What the policy needed for reviews of one shape (decision, namespace, kind, operation,
 * images in order), per engine: a reload starts afresh. Bounded by size: a tenant writing
 * a new pod shape per request evicts, it does not grow.
 */
export class LookupMemo {
  readonly #byEngine = new WeakMap<PolicyEngine, LRUCache<string, readonly FactRequest[]>>();

  #table(engine: PolicyEngine): LRUCache<string, readonly FactRequest[]> {
    let table = this.#byEngine.get(engine);
    if (table === undefined) {
      table = new LRUCache({
        maxSize: 4 * 1024 * 1024,
        sizeCalculation: (lookups, shape) => shape.length + 128 * (lookups.length + 1),
      });
      this.#byEngine.set(engine, table);
    }
    return table;
  }

  get(engine: PolicyEngine, shape: string | undefined): readonly FactRequest[] {
    return shape === undefined ? [] : (this.#table(engine).get(shape) ?? []);
  }

  set(engine: PolicyEngine, shape: string | undefined, lookups: readonly FactRequest[]): void {
    if (shape !== undefined) this.#table(engine).set(shape, lookups);
  }
}

/** The key reviews that likely need the same lookups share; undefined when too long. */
export function shapeOf(input: PolicyInput, decision: Decision): string | undefined {
  let shape = `${decision}\n${input.namespace}\n${input.kind.kind}\n${input.operation}`;
  for (const image of input.images) {
    shape += `\n${image.raw}`;
    if (shape.length > MAX_SHAPE_CHARS) return undefined;
  }
  return shape;
}

/**
 * Which facts the decision needs (the policy says), bounded by maxLookups, gathered by
 * `gather` and put on the images: where the policy runs (a worker thread or the event
 * loop), while `gather` runs where the registry client is. `memo` is the thread's.
 */
export function factsStep(gather: GatherFacts, memo = new LookupMemo()): FactsStep {
  const gathered = async (
    input: PolicyInput,
    requests: readonly FactRequest[],
    decision: Decision,
  ) =>
    requests.length === 0
      ? input
      : attachFacts(input, await gather(requests, input.namespace, decision));

  return async (engine, input, decision) => {
    if (!engine.decidesWithLookups) {
      const needed = engine.factsNeeded(input, decision);
      bound(needed[decision], needed.maxLookups);
      return { input: await gathered(input, needed[decision], decision) };
    }
    const shape = shapeOf(input, decision);
    // What this shape needed last time passed the bound then (the namespace, hence the
    // bound, is part of the shape), and is checked against this evaluation's below.
    const expected = memo.get(engine, shape);
    const guessed = await gathered(input, expected, decision);
    let started = performance.now();
    const first = engine.decided(guessed, decision);
    if (sameLookups(first.lookups, expected)) {
      bound(expected, first.maxLookups);
      return { input: guessed, decided: first.decision, evaluationSeconds: since(started) };
    }
    bound(first.lookups, first.maxLookups);
    const withFacts = await gathered(input, first.lookups, decision);
    started = performance.now();
    const second = engine.decided(withFacts, decision);
    if (!sameLookups(second.lookups, first.lookups)) {
      throw new EngineError(
        'the policy asks for other registry lookups once given the facts it asked for (imagegate/facts/decided must not depend on input.images[_].facts)',
      );
    }
    memo.set(engine, shape, first.lookups);
    return { input: withFacts, decided: second.decision, evaluationSeconds: since(started) };
  };
}

const since = (started: number) => (performance.now() - started) / 1000;

/** A pod spec chooses how many lookups its review costs: bounded before any is made. */
function bound(requests: readonly FactRequest[], maxLookups: number): void {
  const distinct = new Set(requests.map(lookupKey)).size;
  if (distinct > maxLookups) {
    throw new LimitError(
      `the object needs ${distinct} registry lookups; a review may make at most ${maxLookups} (maxLookups)`,
      'lookups',
    );
  }
}

/** Two requests that make the same registry calls are one lookup. */
export const lookupKey = (r: FactRequest) =>
  `${r.registry}/${r.repository}:${r.tag}@${r.digest}|${r.verification}`;

/** The same requests for the same images, in any order. */
function sameLookups(a: readonly FactRequest[], b: readonly FactRequest[]): boolean {
  if (a.length !== b.length) return false;
  const keys = (list: readonly FactRequest[]) =>
    list.map((r) => `${r.index}|${lookupKey(r)}`).sort();
  const [left, right] = [keys(a), keys(b)];
  return left.every((key, i) => key === right[i]);
}

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
