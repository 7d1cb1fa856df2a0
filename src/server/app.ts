/**
 * The HTTPS application: one route per protocol over a shared core. Each request is early
 * guards (body, review), then one translation in, one evaluation, one translation out.
 * Errors become responses in one place (the first middleware).
 */
import { randomUUID } from 'node:crypto';
import Router from '@koa/router';
import Koa from 'koa';
import type { PolicyHolder } from '../policy/holder.ts';
import { loggedFacts } from '../registry/facts.ts';
import type { PolicyInput } from '../review/policy-input.ts';
import { RequestError } from '../review/request-error.ts';
import { admissionFailure } from '../review/responses.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import { InputError, LimitError } from '../shared/input-error.ts';
import type { Logger } from '../shared/logger.ts';
import type { Metrics } from '../shared/metrics.ts';
import { readJsonBody } from './body.ts';
import {
  type Answer,
  imageReviewProtocol,
  mutateProtocol,
  type Protocol,
  validateProtocol,
} from './protocols.ts';
import type { RegistryFacts } from './registry-facts.ts';

export interface AppDeps {
  readonly policy: PolicyHolder;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Largest accepted body in bytes. */
  readonly maxBodyBytes: number;
  /** True once shutdown has begun. */
  readonly draining?: () => boolean;
  /** Registry facts (pinDigests, signatures); without it none are gathered. */
  readonly facts?: RegistryFacts;
}

export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

export function createApp(deps: AppDeps): Koa {
  const app = new Koa();
  app.silent = true;
  const router = new Router();

  // While draining, answers say Connection: close, so a kept-alive client (the API server)
  // lets go after its in-flight review instead of holding shutdown for the grace period.
  // Checked when the answer is ready: the request may have begun before shutdown did.
  app.use(async (ctx, next) => {
    await next();
    if (deps.draining?.() === true) ctx.set('Connection', 'close');
  });

  app.use(async (ctx, next) => {
    try {
      await next();
      // Koa and the router answer these in text/plain; every error here is JSON.
      if (ctx.status === 404 && ctx.body === undefined) {
        ctx.status = 404;
        ctx.body = {
          error: `no endpoint ${ctx.method} ${ctx.path}; POST to /v1/validate, /v1/mutate or /v1/imagereview`,
        };
      } else if (ctx.status === 405) {
        ctx.body = {
          error: `${ctx.method} is not allowed on ${ctx.path}; use ${ctx.response.get('Allow') || 'POST'}`,
        };
      }
    } catch (error) {
      if (error instanceof RequestError) {
        // The uid is known: answer with a denying review the API server can show.
        ctx.status = 200;
        ctx.body = admissionFailure(error.apiVersion, error.uid, error.message, 400);
        deps.logger.info(
          { path: ctx.path, uid: error.uid, error: error.message },
          'malformed request denied',
        );
      } else if (error instanceof InputError) {
        ctx.status = error.status;
        ctx.body = { error: error.message };
        deps.logger.info(
          { path: ctx.path, status: error.status, error: error.message },
          'bad request',
        );
      } else {
        ctx.status = 500;
        ctx.body = { error: 'internal error' };
        deps.logger.error({ path: ctx.path, error: describeThrown(error) }, 'unexpected error');
      }
    }
  });

  /** Evaluates one review; any failure past parsing is a fail-closed answer, not a throw. */
  async function decide<Review>(
    endpoint: string,
    protocol: Protocol<Review>,
    review: Review,
  ): Promise<Answer & { input?: PolicyInput }> {
    let input: PolicyInput | undefined;
    try {
      const engine = deps.policy.engine;
      if (engine === undefined) throw new Error('no policy is loaded');
      // Counted before anything is built from them: a review's cost is bounded before
      // it is paid (docs/sizing.md).
      const images = protocol.images(review);
      if (images > engine.config.maxImages) {
        throw new LimitError(
          `the object has ${images} images; a review may have at most ${engine.config.maxImages} (maxImages)`,
          'images',
        );
      }
      input = protocol.input(review);
      // Registry facts come before the evaluation (which is synchronous), from the same
      // engine: a reload meanwhile does not mix two policies in one decision.
      if (deps.facts !== undefined)
        input = await deps.facts.withFacts(engine, input, protocol.facts);
      const stop = deps.metrics.evaluationDuration.startTimer({ entrypoint: protocol.entrypoint });
      try {
        return { ...protocol.answer(review, engine, input), input };
      } finally {
        stop();
      }
    } catch (error) {
      const message = describeThrown(error);
      if (error instanceof LimitError) deps.metrics.limits.inc({ endpoint, limit: error.limit });
      // A malformed object is the client's mistake (400 inside, counted as a bad request);
      // anything else is the policy failing (500 inside, an error).
      const clients = error instanceof InputError;
      return {
        body: protocol.failure(review, message, clients ? 400 : 500),
        outcome: clients ? 'bad_request' : 'error',
        log: { allowed: false, error: message },
        ...(input === undefined ? {} : { input }),
      };
    }
  }

  function route<Review>(path: string, endpoint: string, protocol: Protocol<Review>): void {
    router.post(path, async (ctx) => {
      const stop = deps.metrics.requestDuration.startTimer({ endpoint });
      try {
        const review = protocol.parse(await readJsonBody(ctx.req, deps.maxBodyBytes));
        const started = performance.now();
        const answer = await decide(endpoint, protocol, review);
        ctx.status = 200;
        ctx.body = answer.body;
        deps.metrics.requests.inc({ endpoint, outcome: answer.outcome });
        const line = {
          decisionId: randomUUID(),
          endpoint,
          ...summary(answer.input),
          ...answer.log,
          revision: deps.policy.engine?.revision ?? '',
          durationMs: Number((performance.now() - started).toFixed(3)),
        };
        if (answer.outcome === 'error') deps.logger.error(line, 'decision');
        else deps.logger.info(line, 'decision');
      } catch (error) {
        const outcome = error instanceof InputError ? 'bad_request' : 'error';
        deps.metrics.requests.inc({ endpoint, outcome });
        throw error;
      } finally {
        stop();
      }
    });
  }

  route('/v1/validate', 'validate', validateProtocol);
  route('/v1/mutate', 'mutate', mutateProtocol);
  route('/v1/imagereview', 'imagereview', imageReviewProtocol);
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
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
