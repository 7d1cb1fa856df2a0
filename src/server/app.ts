/**
 * The HTTPS application: one route per protocol over a shared core. Each handler is early
 * guards, then one translation in (review → input), one evaluation, one translation out.
 * Errors become responses in one place (the first middleware).
 */
import { randomUUID } from 'node:crypto';
import Router from '@koa/router';
import Koa from 'koa';
import { parseAdmissionReview } from '../admission-review.ts';
import type { PolicyEngine } from '../engine.ts';
import { describeThrown } from '../errors/engine-error.ts';
import { InputError } from '../errors/input-error.ts';
import { parseImageReview } from '../image-review.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { PolicyHolder } from '../policy-holder.ts';
import { admissionInput, imageReviewInput, type PolicyInput } from '../policy-input.ts';
import {
  admissionFailure,
  imageReviewFailure,
  imageReviewResponse,
  mutationResponse,
  validationResponse,
} from '../responses.ts';
import { readJsonBody } from './body.ts';

export interface AppDeps {
  readonly policy: PolicyHolder;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Largest accepted body in bytes. */
  readonly maxBodyBytes: number;
}

type Endpoint = 'validate' | 'mutate' | 'imagereview';

interface Outcome {
  readonly body: unknown;
  readonly outcome: 'allowed' | 'denied' | 'patched' | 'error';
  readonly log: Record<string, unknown>;
}

export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

export function createApp(deps: AppDeps): Koa {
  const app = new Koa();
  app.silent = true;
  const router = new Router();

  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      if (error instanceof InputError) {
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

  const handle =
    (endpoint: Endpoint, decide: (body: unknown, engine: PolicyEngine | undefined) => Outcome) =>
    async (ctx: Koa.Context) => {
      const stop = deps.metrics.requestDuration.startTimer({ endpoint });
      const decisionId = randomUUID();
      try {
        const body = await readJsonBody(ctx.req, deps.maxBodyBytes);
        const started = performance.now();
        const result = decide(body, deps.policy.engine);
        ctx.status = 200;
        ctx.body = result.body;
        deps.metrics.requests.inc({ endpoint, outcome: result.outcome });
        const line = {
          decisionId,
          endpoint,
          ...result.log,
          revision: deps.policy.engine?.revision ?? '',
          durationMs: Number((performance.now() - started).toFixed(3)),
        };
        if (result.outcome === 'error') deps.logger.error(line, 'decision');
        else deps.logger.info(line, 'decision');
      } catch (error) {
        deps.metrics.requests.inc({
          endpoint,
          outcome: error instanceof InputError ? 'bad_request' : 'error',
        });
        throw error;
      } finally {
        stop();
      }
    };

  const evaluate = <T>(
    engine: PolicyEngine | undefined,
    entrypoint: string,
    run: (e: PolicyEngine) => T,
  ): T => {
    if (engine === undefined) throw new Error('no policy is loaded');
    const stop = deps.metrics.evaluationDuration.startTimer({ entrypoint });
    try {
      return run(engine);
    } finally {
      stop();
    }
  };

  router.post(
    '/v1/validate',
    handle('validate', (body, engine) => {
      const review = parseAdmissionReview(body);
      const { uid } = review.request;
      let input: PolicyInput | undefined;
      try {
        input = admissionInput(review.apiVersion, review.request);
        const current = input;
        const decision = evaluate(engine, 'validate', (e) => e.validate(current));
        return {
          body: validationResponse(review.apiVersion, uid, decision),
          outcome: decision.allowed ? 'allowed' : 'denied',
          log: {
            ...summary(input),
            allowed: decision.allowed,
            reasons: decision.reasons,
            warnings: decision.warnings,
            enforcement: decision.enforcement,
            exempt: decision.exempt,
            breakGlass: decision.breakGlass,
          },
        };
      } catch (error) {
        return failure(review.apiVersion, uid, input, error);
      }
    }),
  );

  router.post(
    '/v1/mutate',
    handle('mutate', (body, engine) => {
      const review = parseAdmissionReview(body);
      const { uid } = review.request;
      let input: PolicyInput | undefined;
      try {
        input = admissionInput(review.apiVersion, review.request);
        const current = input;
        const decision = evaluate(engine, 'mutate', (e) => e.mutate(current));
        return {
          body: mutationResponse(review.apiVersion, uid, decision),
          outcome: decision.patch.length > 0 ? 'patched' : 'allowed',
          log: { ...summary(input), allowed: true, mutations: decision.messages },
        };
      } catch (error) {
        return failure(review.apiVersion, uid, input, error);
      }
    }),
  );

  router.post(
    '/v1/imagereview',
    handle('imagereview', (body, engine) => {
      const review = parseImageReview(body);
      let input: PolicyInput | undefined;
      try {
        input = imageReviewInput(review);
        const current = input;
        const decision = evaluate(engine, 'validate', (e) => e.validate(current));
        return {
          body: imageReviewResponse(decision),
          outcome: decision.allowed ? 'allowed' : 'denied',
          log: {
            ...summary(input),
            allowed: decision.allowed,
            reasons: decision.reasons,
            auditAnnotations: decision.auditAnnotations,
            enforcement: decision.enforcement,
            breakGlass: decision.breakGlass,
          },
        };
      } catch (error) {
        const message = describeThrown(error);
        return {
          body: imageReviewFailure(message),
          outcome: 'error',
          log: { ...summary(input), allowed: false, error: message },
        };
      }
    }),
  );

  function failure(
    apiVersion: Parameters<typeof admissionFailure>[0],
    uid: string,
    input: PolicyInput | undefined,
    error: unknown,
  ): Outcome {
    const message = describeThrown(error);
    return {
      body: admissionFailure(apiVersion, uid, message),
      outcome: 'error',
      log: { uid, ...summary(input), allowed: false, error: message },
    };
  }

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
  };
}
