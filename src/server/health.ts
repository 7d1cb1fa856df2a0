/**
 * The plain-HTTP health port: /healthz (alive: the kubelet restarts the process when it
 * is not), /readyz (a policy is serving), /metrics.
 * One app for both shapes of gateway: a single process answers for itself, a cluster
 * primary for all its workers; each passes what ready means and where metrics come from.
 */
import Router from '@koa/router';
import Koa from 'koa';
import type { SourceStatus } from '../distribution/source-status.ts';
import type { LoadStatus, PolicyHolder } from '../policy/holder.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import type { Metrics } from '../shared/metrics.ts';

/** The TLS files serving now and how their last (re)load went; shown on /readyz. */
export interface TlsStatus {
  readonly cert: string;
  readonly clientCa: string | null;
  /** When the serving certificate in use expires. */
  readonly notAfter: string;
  readonly lastLoad: LoadStatus;
}

/** The /readyz body: 200 when `ready`, 503 otherwise. */
export interface Readiness {
  readonly ready: boolean;
  readonly [detail: string]: unknown;
}

/** The /healthz body when it is not simply "ok": 200 when `alive`, 503 otherwise. */
export interface Liveness {
  readonly alive: boolean;
  readonly [detail: string]: unknown;
}

export interface HealthSources {
  readiness(): Readiness;
  /** Without it /healthz answers "ok" while the process serves at all. */
  liveness?(): Liveness;
  metrics(): Promise<{ readonly contentType: string; readonly text: string }>;
}

export function createHealthApp(sources: HealthSources): Koa {
  const app = new Koa();
  app.silent = true;
  const router = new Router();
  router.get('/healthz', (ctx) => {
    const liveness = sources.liveness?.();
    if (liveness === undefined) {
      ctx.body = 'ok\n';
      return;
    }
    ctx.status = liveness.alive ? 200 : 503;
    ctx.body = liveness;
  });
  router.get('/readyz', (ctx) => {
    const readiness = sources.readiness();
    ctx.status = readiness.ready ? 200 : 503;
    ctx.body = readiness;
  });
  router.get('/metrics', async (ctx) => {
    try {
      const { contentType, text } = await sources.metrics();
      ctx.type = contentType;
      ctx.body = text;
    } catch (error) {
      ctx.status = 503;
      ctx.body = `# metrics unavailable: ${describeThrown(error)}\n`;
    }
  });
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

export interface GatewayHealth {
  readonly policy: PolicyHolder;
  readonly metrics: Metrics;
  /** False once shutdown has begun, so load balancers stop sending traffic first. */
  readonly accepting: () => boolean;
  /** The serving certificate's state; a refused rotation shows here, not only in logs. */
  readonly tls: () => TlsStatus | undefined;
  /** A remote bundle source: where the policy came from, since when, how polls go. */
  readonly source?: () => SourceStatus | undefined;
}

/** One gateway process: ready while it has a policy and accepts connections. */
export function gatewayHealth(deps: GatewayHealth): HealthSources {
  return {
    readiness() {
      const engine = deps.policy.engine;
      return {
        ready: engine !== undefined && deps.accepting(),
        shuttingDown: !deps.accepting(),
        revision: engine?.revision ?? null,
        bundleDigest: engine?.bundleDigest ?? null,
        config: engine?.config ?? null,
        lastLoad: deps.policy.lastLoad ?? null,
        bundleSource: deps.source?.() ?? null,
        tls: deps.tls() ?? null,
        // The Sigstore trust roots in force: files, what they name, when they run out.
        trustRoots:
          engine === undefined
            ? null
            : Object.fromEntries([...engine.trustRoots].map(([name, r]) => [name, r.summary])),
      };
    },
    async metrics() {
      const { registry } = deps.metrics;
      return { contentType: registry.contentType, text: await registry.metrics() };
    },
  };
}
