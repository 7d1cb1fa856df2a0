/**
 * The HTTPS application: one route per protocol. The event loop reads a request's bytes
 * (415, 413 here) and hands them to the evaluator (review-core.ts, on a thread of the
 * pool), which answers every review, parseable or not; the route writes, counts and logs
 * what it answered. Errors of the HTTP layer become responses in one place (the first
 * middleware).
 */
import { randomUUID } from 'node:crypto';
import Router from '@koa/router';
import Koa from 'koa';
import { describeThrown } from '../shared/describe-thrown.ts';
import { InputError } from '../shared/input-error.ts';
import type { Logger } from '../shared/logger.ts';
import type { Metrics } from '../shared/metrics.ts';
import { readBodyBytes } from './body.ts';
import type { ReviewEvaluator } from './evaluator.ts';
import type { Endpoint } from './review-core.ts';

export interface AppDeps {
  /** Who parses and judges reviews: the evaluation pool, or the event loop. */
  readonly evaluator: ReviewEvaluator;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Largest accepted body in bytes. */
  readonly maxBodyBytes: number;
  /** True once shutdown has begun. */
  readonly draining?: () => boolean;
  /** Told every decision line as it is logged (decision logs to a collector). */
  readonly decisions?: ((line: Readonly<Record<string, unknown>>) => void) | undefined;
}

/** The histogram label each endpoint's evaluation is filed under. */
const ENTRYPOINTS: Record<Endpoint, 'validate' | 'mutate'> = {
  validate: 'validate',
  mutate: 'mutate',
  imagereview: 'validate',
};

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

  function route(path: string, endpoint: Endpoint): void {
    router.post(path, async (ctx) => {
      const stop = deps.metrics.requestDuration.startTimer({ endpoint });
      try {
        // Only the bytes are read here: parsing, evaluation and the answer's text are the
        // evaluator's (a thread of the pool), so a costly review does not hold the event loop.
        const bytes = await readBodyBytes(ctx.req, deps.maxBodyBytes);
        const started = performance.now();
        const result = await deps.evaluator.review(endpoint, bytes);
        ctx.status = result.status;
        ctx.type = 'application/json';
        ctx.body = result.body;
        deps.metrics.requests.inc({ endpoint, outcome: result.outcome });
        if (result.limit !== undefined) deps.metrics.limits.inc({ endpoint, limit: result.limit });
        if (result.evaluationSeconds !== undefined) {
          deps.metrics.evaluationDuration.observe(
            { entrypoint: ENTRYPOINTS[endpoint] },
            result.evaluationSeconds,
          );
        }
        const { level, message, fields } = result.log;
        if (message !== 'decision') {
          deps.logger[level]({ path: ctx.path, ...fields }, message);
        } else if (deps.logger.isLevelEnabled(level) || deps.decisions !== undefined) {
          // Built only for a reader (the log at this level, or the collector).
          const line = {
            decisionId: randomUUID(),
            endpoint,
            ...fields,
            revision: result.revision,
            durationMs: Number((performance.now() - started).toFixed(3)),
          };
          deps.logger[level](line, message);
          deps.decisions?.(line);
        }
      } catch (error) {
        const outcome = error instanceof InputError ? 'bad_request' : 'error';
        deps.metrics.requests.inc({ endpoint, outcome });
        throw error;
      } finally {
        stop();
      }
    });
  }

  route('/v1/validate', 'validate');
  route('/v1/mutate', 'mutate');
  route('/v1/imagereview', 'imagereview');
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
