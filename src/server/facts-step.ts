/**
 * The registry-facts step of a review, where the policy runs (a worker thread or the
 * event loop): ask the policy which facts the decision needs, bound them by maxLookups,
 * have them gathered where the registry client is, put them on the images.
 *
 * With the bundle's `imagegate/facts/decided` entrypoint, a warm review costs one
 * evaluation: the lookups a review of the same shape needed last time (a memo per engine,
 * per thread) are read from the caches — never from a registry: a guess must not cost
 * registry time or make requests the review did not ask for — and the decision is
 * evaluated with them on the images. That evaluation also says which lookups the decision
 * needs; if they are exactly the ones given, the decision stands. If not (a new shape, a
 * changed exemption), they are gathered and the decision evaluated again: never more
 * than two evaluations, never a decision made on facts it did not ask for.
 *
 * A bundle whose manifest says its lookups follow from the shape alone (`lookupsByShape`,
 * the default bundle) skips that comparison for a shape seen before: the lookups were
 * computed for this very shape by this engine, so the decision entrypoint alone is
 * evaluated (it does not compute the lookups again). A new shape is judged as above.
 */
import { LRUCache } from 'lru-cache';
import type { FactsStep, PolicyEngine } from '../policy/engine.ts';
import type { FactRequest, ImageFacts } from '../registry/facts.ts';
import type { PolicyInput } from '../review/policy-input.ts';
import { EngineError } from '../shared/engine-error.ts';
import { LimitError } from '../shared/input-error.ts';
import type { JsonObject } from '../shared/json.ts';

/**
 * The facts for these requests, by image index: registry I/O, on the main thread. With
 * `cachedOnly`, only what the caches hold, and undefined at the first miss: no registry
 * request is made (for a guess; a review's lookups get one budget, never two).
 */
export type GatherFacts = (
  requests: readonly FactRequest[],
  namespace: string,
  decision: 'mutate' | 'validate',
  cachedOnly?: boolean,
) => Promise<Gathered | undefined>;

export interface Gathered {
  readonly facts: ReadonlyMap<number, ImageFacts>;
  /**
   * A cache-only read's: when the first of these facts leaves the gateway's caches (epoch
   * ms). Until then the thread may use them again without asking.
   */
  readonly until?: number;
}

/** What one review shape needed, and the facts last read for it while they stay cached. */
interface Remembered {
  readonly lookups: readonly FactRequest[];
  readonly facts?: ReadonlyMap<number, ImageFacts>;
  readonly until?: number;
  /**
   * The bound the lookups were checked against when the step remembered them; undefined
   * for lookups it did not compute itself (those are a guess to check, never trusted).
   */
  readonly maxLookups?: number;
}

const NOTHING: Remembered = { lookups: [] };

type Decision = 'mutate' | 'validate';

/** Reviews' shapes longer than this are not remembered (a pod with hundreds of images). */
const MAX_SHAPE_CHARS = 16 * 1024;

/**
 * What the policy needed for reviews of one shape (decision, namespace, kind, operation,
 * images in order), per engine: a reload starts afresh. Bounded by size: a tenant writing
 * a new pod shape per request evicts, it does not grow.
 */
export class LookupMemo {
  readonly #byEngine = new WeakMap<PolicyEngine, LRUCache<string, Remembered>>();

  #table(engine: PolicyEngine): LRUCache<string, Remembered> {
    let table = this.#byEngine.get(engine);
    if (table === undefined) {
      table = new LRUCache({
        maxSize: 8 * 1024 * 1024,
        sizeCalculation: (remembered, shape) =>
          shape.length +
          JSON.stringify(remembered.lookups).length +
          (remembered.facts === undefined
            ? 0
            : JSON.stringify([...remembered.facts.values()]).length),
      });
      this.#byEngine.set(engine, table);
    }
    return table;
  }

  get(engine: PolicyEngine, shape: string | undefined): readonly FactRequest[] {
    return this.remembered(engine, shape).lookups;
  }

  remembered(engine: PolicyEngine, shape: string | undefined): Remembered {
    return shape === undefined ? NOTHING : (this.#table(engine).get(shape) ?? NOTHING);
  }

  set(
    engine: PolicyEngine,
    shape: string | undefined,
    lookups: readonly FactRequest[],
    { read, maxLookups }: { readonly read?: Gathered; readonly maxLookups?: number } = {},
  ): void {
    if (shape === undefined) return;
    this.#table(engine).set(shape, {
      lookups,
      ...(read?.until === undefined ? {} : { facts: read.facts, until: read.until }),
      ...(maxLookups === undefined ? {} : { maxLookups }),
    });
  }
}

/**
 * The key reviews that likely need the same lookups share (a guess: what they need is
 * checked); undefined when too long.
 */
export function shapeOf(input: PolicyInput, decision: Decision): string | undefined {
  const shape = JSON.stringify([
    decision,
    input.protocol,
    input.namespace,
    input.kind.group,
    input.kind.kind,
    input.operation,
    input.subResource,
    input.controller !== null,
    input.images.map((image) => [image.raw, image.new === true, image.list]),
  ]);
  return shape.length > MAX_SHAPE_CHARS ? undefined : shape;
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
  ): Promise<PolicyInput> => {
    if (requests.length === 0) return input;
    const gathered = await gather(requests, input.namespace, decision);
    if (gathered === undefined) throw new Error('registry facts were not gathered');
    return attachFacts(input, gathered.facts);
  };
  /**
   * The remembered facts of a shape, if the caches hold every one: as read last time while
   * they stay cached (no message, no lookup), else read from the caches again.
   */
  const cachedFor = async (
    engine: PolicyEngine,
    shape: string | undefined,
    remembered: Remembered,
    input: PolicyInput,
    decision: Decision,
  ): Promise<Gathered | undefined> => {
    if (remembered.lookups.length === 0) return undefined;
    if (remembered.facts !== undefined && Date.now() < (remembered.until ?? 0)) {
      return { facts: remembered.facts };
    }
    const read = await gather(remembered.lookups, input.namespace, decision, true);
    if (read !== undefined) {
      memo.set(engine, shape, remembered.lookups, {
        read,
        ...(remembered.maxLookups === undefined ? {} : { maxLookups: remembered.maxLookups }),
      });
    }
    return read;
  };

  return async (engine, input, decision) => {
    if (!engine.decidesWithLookups) {
      const needed = engine.factsNeeded(input, decision);
      bound(needed[decision], needed.maxLookups);
      return { input: await gathered(input, needed[decision], decision) };
    }
    const shape = shapeOf(input, decision);
    // What this shape needed last time, if every fact is cached: read without a registry
    // request, so a wrong guess costs an evaluation, never registry time.
    const remembered = memo.remembered(engine, shape);
    const expected = remembered.lookups;
    const cached = await cachedFor(engine, shape, remembered, input, decision);
    const guess = cached === undefined ? input : attachFacts(input, cached.facts);
    let started = performance.now();
    const trusted = remembered.maxLookups;
    if (
      engine.lookupsByShape &&
      trusted !== undefined &&
      (cached !== undefined || expected.length === 0)
    ) {
      // This engine computed these lookups for this very shape, and they follow from the
      // shape alone, the bundle says: the decision alone is evaluated, with their facts.
      bound(expected, trusted);
      const decided = engine.decision(guess, decision);
      return { input: guess, decided, evaluationSeconds: since(started) };
    }
    const given = cached === undefined ? [] : expected;
    const first = engine.decided(guess, decision);
    if (sameLookups(first.lookups, given)) {
      bound(given, first.maxLookups);
      // Remembered as computed here: a shape that needs none too, so it is known next time.
      if (remembered.maxLookups === undefined || given.length !== expected.length) {
        memo.set(engine, shape, given, {
          ...(cached === undefined ? {} : { read: cached }),
          maxLookups: first.maxLookups,
        });
      }
      return { input: guess, decided: first.decision, evaluationSeconds: since(started) };
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
    memo.set(engine, shape, first.lookups, { maxLookups: second.maxLookups });
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
