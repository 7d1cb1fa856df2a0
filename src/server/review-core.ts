/**
 * One review, from its body's bytes to its answer's text: parse, narrow, bound, translate
 * into the policy input, gather registry facts (through `facts`), evaluate, translate back.
 * This is what the evaluation pool runs on a worker thread (server/pool/), and what runs on
 * the event loop where there is no pool; the HTTP layer (app.ts) only reads bytes and
 * writes the result. Every failure becomes a result here — never a throw — so a worker
 * answers whatever happens, and both paths answer the same.
 */
import {
  EngineMemoryError,
  type FactsStep,
  type PolicyEngine,
  type WithFacts,
} from '../policy/engine.ts';
import { loggedFacts } from '../registry/logged-facts.ts';
import type { PolicyInput } from '../review/policy-input.ts';
import { RequestError } from '../review/request-error.ts';
import { admissionFailure } from '../review/responses.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import { InputError, LimitError } from '../shared/input-error.ts';
import { parseJsonBytes } from './body.ts';
import {
  type Answer,
  imageReviewProtocol,
  mutateProtocol,
  type Outcome,
  type Protocol,
  validateProtocol,
} from './protocols.ts';

export type Endpoint = 'validate' | 'mutate' | 'imagereview';

export const ENDPOINTS: readonly Endpoint[] = ['validate', 'mutate', 'imagereview'];

/** What the HTTP layer writes, counts and logs for one review. */
export interface ReviewResult {
  readonly status: number;
  /** The answer, as JSON text. */
  readonly body: string;
  readonly outcome: Outcome;
  /** A bound the review went past (maxImages: images, maxLookups: lookups). */
  readonly limit?: string;
  /** Seconds spent in the policy (the evaluation histogram). */
  readonly evaluationSeconds?: number;
  /** The line to log: a decision (identifiers, images, facts; never the object) or why not. */
  readonly log: {
    readonly level: 'info' | 'error';
    readonly message: 'decision' | 'bad request' | 'malformed request denied' | 'unexpected error';
    readonly fields: Record<string, unknown>;
  };
  /** The revision that judged it ("" when none did). */
  readonly revision: string;
  /**
   * The policy ran out of its instance's wasm memory: the answer fails closed, and the
   * pool gives the review to its large lane instead (server/pool/).
   */
  readonly outOfMemory?: true;
}

function protocolOf(endpoint: Endpoint): Protocol<unknown> {
  switch (endpoint) {
    case 'validate':
      return validateProtocol as Protocol<unknown>;
    case 'mutate':
      return mutateProtocol as Protocol<unknown>;
    case 'imagereview':
      return imageReviewProtocol as Protocol<unknown>;
  }
}

export interface ReviewOptions {
  /**
   * Whether anyone reads an allowed or denied decision's line (the log at `info`, or a
   * decision collector): without a reader its fields (ids, images, facts, reasons) are not
   * built, nor copied from the thread. Errors keep theirs (they are logged at `error`).
   */
  readonly decisionLines?: boolean;
}

/** The body's bytes → the answer, with `engine` (read once: a reload does not mix two). */
export async function reviewBytes(
  engine: PolicyEngine | undefined,
  endpoint: Endpoint,
  bytes: Uint8Array,
  facts: FactsStep | undefined,
  options: ReviewOptions = {},
): Promise<ReviewResult> {
  const protocol = protocolOf(endpoint);
  let review: unknown;
  try {
    review = protocol.parse(parseJsonBytes(bytes));
  } catch (error) {
    return refused(error, engine);
  }
  const answer = await decide(engine, protocol, review, facts);
  return {
    status: 200,
    body: JSON.stringify(answer.body),
    outcome: answer.outcome,
    ...(answer.limit === undefined ? {} : { limit: answer.limit }),
    ...(answer.evaluationSeconds === undefined
      ? {}
      : { evaluationSeconds: answer.evaluationSeconds }),
    log: {
      level: answer.outcome === 'error' ? 'error' : 'info',
      message: 'decision',
      fields:
        answer.outcome === 'error' || options.decisionLines !== false
          ? { ...summary(answer.input), ...answer.log }
          : {},
    },
    revision: engine?.revision ?? '',
    ...(answer.outOfMemory === true ? { outOfMemory: true } : {}),
  };
}

/** A body that is no review: answered as SPEC says, with why. */
function refused(error: unknown, engine: PolicyEngine | undefined): ReviewResult {
  const revision = engine?.revision ?? '';
  if (error instanceof RequestError) {
    // The uid is known: answer with a denying review the API server can show.
    return {
      status: 200,
      body: JSON.stringify(admissionFailure(error.apiVersion, error.uid, error.message, 400)),
      outcome: 'bad_request',
      log: {
        level: 'info',
        message: 'malformed request denied',
        fields: { uid: error.uid, error: error.message },
      },
      revision,
    };
  }
  if (error instanceof InputError) {
    return {
      status: error.status,
      body: JSON.stringify({ error: error.message }),
      outcome: 'bad_request',
      log: {
        level: 'info',
        message: 'bad request',
        fields: { status: error.status, error: error.message },
      },
      revision,
    };
  }
  return {
    status: 500,
    body: JSON.stringify({ error: 'internal error' }),
    outcome: 'error',
    log: { level: 'error', message: 'unexpected error', fields: { error: describeThrown(error) } },
    revision,
  };
}

interface Decided extends Answer {
  readonly input?: PolicyInput;
  readonly limit?: string;
  readonly evaluationSeconds?: number;
  readonly outOfMemory?: true;
}

/** Evaluates one review; any failure past parsing is a fail-closed answer, not a throw. */
async function decide(
  engine: PolicyEngine | undefined,
  protocol: Protocol<unknown>,
  review: unknown,
  facts: FactsStep | undefined,
): Promise<Decided> {
  let input: PolicyInput | undefined;
  try {
    if (engine === undefined) throw new Error('no policy is loaded');
    // Counted before anything is built from them: a review's cost is bounded before it is
    // paid (docs/sizing.md).
    const images = protocol.images(review);
    if (images > engine.config.maxImages) {
      throw new LimitError(
        `the object has ${images} images; a review may have at most ${engine.config.maxImages} (maxImages)`,
        'images',
      );
    }
    if (images > engine.largeAbove) {
      throw new EngineMemoryError(
        `the object has ${images} images, more than an evaluation thread judges (${engine.largeAbove})`,
      );
    }
    input = protocol.input(review);
    // Registry facts come before the evaluation (which is synchronous), from the same
    // engine: a reload meanwhile does not mix two policies in one decision.
    const withFacts: WithFacts =
      facts === undefined ? { input } : await facts(engine, input, protocol.facts);
    input = withFacts.input;
    if (withFacts.decided !== undefined) {
      const answer = protocol.respond(review, withFacts.decided);
      return { ...answer, input, evaluationSeconds: withFacts.evaluationSeconds ?? 0 };
    }
    const started = performance.now();
    const answer = protocol.respond(review, engine.decision(input, protocol.facts));
    return { ...answer, input, evaluationSeconds: (performance.now() - started) / 1000 };
  } catch (error) {
    const lane =
      error instanceof EngineMemoryError && engine !== undefined && engine.largeAbove < Infinity;
    // Seen only when the pool's large lane did not take it (busy, or stopping).
    const message = `${describeThrown(error)}${lane ? '; the large lane, which judges such reviews one at a time, could not take it' : ''}`;
    // A malformed object is the client's mistake (400 inside, counted as a bad request);
    // anything else is the policy failing (500 inside, an error).
    const clients = error instanceof InputError;
    return {
      body: protocol.failure(review, message, clients ? 400 : 500),
      outcome: clients ? 'bad_request' : 'error',
      log: { allowed: false, error: message },
      ...(error instanceof LimitError ? { limit: error.limit } : {}),
      ...(error instanceof EngineMemoryError ? { outOfMemory: true } : {}),
      ...(input === undefined ? {} : { input }),
    };
  }
}

/** What a decision line says about the request: identifiers and images, never the object. */
function summary(input: PolicyInput | undefined): Record<string, unknown> {
  if (input === undefined) return {};
  return {
    uid: input.uid,
    kind: input.kind.kind,
    namespace: input.namespace,
    name: input.name,
    operation: input.operation,
    subResource: input.subResource,
    images: input.images.map((i) => i.raw),
    ...(input.images.some((i) => i.facts !== undefined)
      ? {
          facts: input.images.flatMap((i) =>
            i.facts === undefined ? [] : [{ image: i.raw, ...loggedFacts(i.facts) }],
          ),
        }
      : {}),
  };
}
