/** The plain-HTTP health port: /healthz (alive), /readyz (a policy is serving), /metrics. */
import Router from '@koa/router';
import Koa from 'koa';
import type { Metrics } from '../metrics.ts';
import type { LoadStatus, PolicyHolder } from '../policy-holder.ts';

/** The TLS files serving now and how their last (re)load went; shown on /readyz. */
export interface TlsStatus {
  readonly cert: string;
  readonly clientCa: string | null;
  /** When the serving certificate in use expires. */
  readonly notAfter: string;
  readonly lastLoad: LoadStatus;
}

export interface HealthDeps {
  readonly policy: PolicyHolder;
  readonly metrics: Metrics;
  /** False once shutdown has begun, so load balancers stop sending traffic first. */
  readonly accepting: () => boolean;
  /** The serving certificate's state; a refused rotation shows here, not only in logs. */
  readonly tls?: () => TlsStatus | undefined;
}

export function createHealthApp(deps: HealthDeps): Koa {
  const app = new Koa();
  app.silent = true;
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.body = 'ok\n';
  });
  router.get('/readyz', (ctx) => {
    const engine = deps.policy.engine;
    const ready = engine !== undefined && deps.accepting();
    ctx.status = ready ? 200 : 503;
    ctx.body = {
      ready,
      shuttingDown: !deps.accepting(),
      revision: engine?.revision ?? null,
      bundleDigest: engine?.bundleDigest ?? null,
      config: engine?.config ?? null,
      lastLoad: deps.policy.lastLoad ?? null,
      tls: deps.tls?.() ?? null,
    };
  });
  router.get('/metrics', async (ctx) => {
    ctx.type = deps.metrics.registry.contentType;
    ctx.body = await deps.metrics.registry.metrics();
  });
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
