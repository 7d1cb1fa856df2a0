/**
 * What `imagegate audit` runs (its flags are in audit.ts): `--once`, and the service —
 * the policy loaded and watched as `serve` does (a new bundle or configuration re-audits
 * everything), objects listed then watched, PolicyReports published, health and metrics
 * on the health port, and with `--leader-elect` only the replica holding the Lease audits.
 *
 * The service ends in exactly two ways: stop() (a signal), or `failed` — the audit gave up
 * on the API server, lost its Lease, or met a bug. Either way stop() releases the Lease
 * (a standby takes over at once) and closes everything, and the command exits.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { Auditor } from '../audit/auditor.ts';
import type { AuditedObject } from '../audit/evaluate.ts';
import { Kube, loadKubeConfig } from '../audit/kube.ts';
import { LeaderElection } from '../audit/leader.ts';
import { createAuditMetrics } from '../audit/metrics.ts';
import { AuditStopped } from '../audit/retry.ts';
import { PolicyHolder } from '../policy/holder.ts';
import { loadPolicy, type PolicySource } from '../policy/loader.ts';
import { createHealthApp } from '../server/health.ts';
import { servePolicy } from '../server/policy-reload.ts';
import { type RegistryOptions, startRegistryFacts } from '../server/registry-facts.ts';
import { standaloneTufRoots, type TufRootsOptions } from '../server/tuf-roots.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import { InputError } from '../shared/input-error.ts';
import type { Logger } from '../shared/logger.ts';
import { createMetrics } from '../shared/metrics.ts';

export interface AuditOptions {
  readonly source: PolicySource;
  readonly kubeconfig: string | undefined;
  readonly registry: RegistryOptions;
  /** Trust roots kept in TUF repositories: their cache, how often refreshed. */
  readonly tuf?: TufRootsOptions | undefined;
  readonly once: boolean;
  readonly output: 'table' | 'json';
  readonly healthPort: number;
  readonly host: string;
  readonly watchIntervalMs: number;
  readonly pageSize: number;
  readonly leaderElect: boolean;
  readonly leaseNamespace: string;
  readonly leaseIdentity: string;
  /** How long API calls may keep failing before the audit gives up. */
  readonly giveUpAfterMs: number;
  readonly write: (text: string) => void;
}

/** Registry lookups per second per registry the audit may make, by default. */
export const DEFAULT_AUDIT_REGISTRY_RATE = 5;
/** One object's facts may take this long: no webhook waits on the audit. */
const AUDIT_BUDGET_MS = 30_000;

export interface Auditing {
  readonly healthPort: number;
  /** Resolves with why the audit cannot go on; never rejects. */
  readonly failed: Promise<unknown>;
  /** Releases the Lease (when leading) and closes everything. */
  stop(): Promise<void>;
}

function registryFor(options: AuditOptions): RegistryOptions {
  return {
    ...options.registry,
    budgetMs: AUDIT_BUDGET_MS,
    ratePerSecond: options.registry.ratePerSecond ?? DEFAULT_AUDIT_REGISTRY_RATE,
  };
}

/** The cluster's API, or an InputError saying what is wrong with the kubeconfig. */
function kubeFor(options: AuditOptions): Kube {
  try {
    return new Kube(loadKubeConfig(options.kubeconfig));
  } catch (error) {
    const where = options.kubeconfig ?? 'the in-cluster service account';
    throw new InputError(`cannot use ${where}: ${describeThrown(error)}`, { cause: error });
  }
}

/** `--once`: the exit code (1 when anything fails or errs). */
export async function auditOnce(options: AuditOptions, logger: Logger): Promise<number> {
  const tuf = await standaloneTufRoots(options.tuf ?? {}, options.registry, logger);
  const { engine } = await loadPolicy({ ...options.source, tufRoots: tuf.source }).finally(() =>
    tuf.close(),
  );
  for (const warning of engine.config.warnings) logger.warn({ warning }, 'configuration warning');
  const policy = new PolicyHolder();
  policy.swap(engine, options.source.bundle);
  const metrics = createMetrics({ processMetrics: false });
  const registry = await startRegistryFacts(registryFor(options), {
    policy,
    metrics,
    logger,
    intervalMs: 60_000,
  });
  try {
    const auditor = new Auditor({
      kube: kubeFor(options),
      policy,
      logger,
      facts: (e, input) => registry.withFacts(e, input, 'validate'),
      pageSize: options.pageSize,
      retry: { giveUpAfterMs: options.giveUpAfterMs },
    });
    await auditor.audit();
    const objects = auditor.store.namespaces().flatMap((ns) => auditor.store.objects(ns));
    const summary = auditor.store.summary();
    if (options.output === 'json') {
      options.write(
        `${JSON.stringify({ revision: engine.revision, summary, objects }, null, 2)}\n`,
      );
    } else {
      options.write(formatTable(objects, summary));
    }
    return summary.fail > 0 || summary.error > 0 ? 1 : 0;
  } finally {
    await registry.close();
  }
}

export function formatTable(
  objects: readonly AuditedObject[],
  summary: Record<string, number>,
): string {
  const rows = objects
    .flatMap((o) => o.results.filter((r) => r.result !== 'pass').map((r) => ({ o, r })))
    .sort(
      (a, b) =>
        a.o.namespace.localeCompare(b.o.namespace) ||
        a.o.kind.localeCompare(b.o.kind) ||
        a.o.name.localeCompare(b.o.name),
    )
    .map(({ o, r }) => [o.namespace, o.kind, o.name, r.result.toUpperCase(), r.rule, r.message]);
  const header = ['NAMESPACE', 'KIND', 'NAME', 'RESULT', 'RULE', 'MESSAGE'];
  const widths = header.map((h, i) =>
    i === header.length - 1 ? 0 : Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)),
  );
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ');
  const namespaces = new Set(objects.map((o) => o.namespace)).size;
  return `${[
    ...(rows.length > 0 ? [line(header), ...rows.map(line)] : []),
    `${objects.length} object(s) in ${namespaces} namespace(s): ${summary.fail ?? 0} failing, ${summary.warn ?? 0} warning, ${summary.error ?? 0} in error, ${summary.skip ?? 0} skipped, ${summary.pass ?? 0} passing`,
  ].join('\n')}\n`;
}

/** The audit service; resolves once it serves health (the first audit may still run). */
export async function startAudit(options: AuditOptions, logger: Logger): Promise<Auditing> {
  const kube = kubeFor(options);
  const metrics = createMetrics();
  const auditMetrics = createAuditMetrics({ processMetrics: false });
  const policy = new PolicyHolder();
  let auditor: Auditor | undefined;
  let firstAudit = false;
  let gaveUp: string | undefined;
  let leading = !options.leaderElect;
  let stopping = false;
  let failure: (error: unknown) => void = () => undefined;
  const failed = new Promise<unknown>((resolve) => {
    failure = resolve;
  });
  const fail = (error: unknown) => {
    if (error instanceof AuditStopped || gaveUp !== undefined) return;
    gaveUp = describeThrown(error);
    failure(error);
  };
  const tuf = await standaloneTufRoots(options.tuf ?? {}, options.registry, logger);
  const policyWatch = await servePolicy({
    source: { ...options.source, tufRoots: tuf.source },
    policy,
    metrics,
    logger,
    intervalMs: options.watchIntervalMs,
    // A new bundle or configuration: everything is judged again.
    changed: () => {
      if (policy.engine !== undefined) tuf.retain(policy.engine.trustRoots.values());
      if (auditor !== undefined && firstAudit) auditor.reaudit();
    },
  }).catch(async (error: unknown) => {
    await tuf.close();
    throw error;
  });
  tuf.start(() => void policyWatch.reload('trust root'));
  const registry = await startRegistryFacts(registryFor(options), {
    policy,
    metrics,
    logger,
    intervalMs: options.watchIntervalMs,
  });
  const election = options.leaderElect
    ? new LeaderElection(kube, {
        namespace: options.leaseNamespace,
        name: 'imagegate-audit',
        identity: options.leaseIdentity,
        logger,
      })
    : undefined;
  const merged = Registry.merge([metrics.registry, auditMetrics.registry]);
  const health = createServer(
    createHealthApp({
      readiness: () => ({
        // A follower is ready while it can read its Lease: one that cannot never leads.
        ready:
          policy.engine !== undefined &&
          gaveUp === undefined &&
          (leading ? firstAudit : election?.lastAttempt?.answered === true),
        leading,
        audited: firstAudit,
        revision: policy.engine?.revision ?? null,
        objects: auditor?.store.size ?? 0,
        lastLoad: policy.lastLoad ?? null,
        configWarnings: policy.engine?.config.warnings ?? [],
        lease: election?.lastAttempt ?? null,
        failing: auditor?.health().failing ?? {},
      }),
      // Not alive once it gave up (it is exiting), or when the loop made no progress for
      // long: the kubelet then restarts it. A follower's loop is its Lease attempts.
      liveness: () => {
        if (gaveUp !== undefined) return { alive: false, gaveUp };
        if (auditor === undefined) return { alive: true, leading };
        return { ...auditor.health(), leading };
      },
      metrics: async () => ({ contentType: merged.contentType, text: await merged.metrics() }),
    }).callback(),
  );
  health.listen(options.healthPort, options.host);
  await once(health, 'listening');
  logger.info(
    { healthPort: (health.address() as AddressInfo).port },
    'imagegate audit serving health',
  );

  const start = async () => {
    if (election !== undefined) {
      const leads = await election.lead(() =>
        fail(new Error('lost the audit Lease: another replica may lead now')),
      );
      // Stopped before it ever led: nothing to audit.
      if (!leads || stopping) return;
      leading = true;
      logger.info({ identity: options.leaseIdentity }, 'leading the audit');
    }
    auditor = new Auditor({
      kube,
      policy,
      logger,
      facts: (e, input) => registry.withFacts(e, input, 'validate'),
      observer: auditMetrics,
      pageSize: options.pageSize,
      retry: { giveUpAfterMs: options.giveUpAfterMs },
      fail,
    });
    await auditor.run({ publish: true });
    firstAudit = true;
  };
  start().catch(fail);
  return {
    healthPort: (health.address() as AddressInfo).port,
    failed,
    async stop() {
      stopping = true;
      auditor?.stop();
      // Best effort, and short: with the API server unreachable the Lease expires anyway.
      await Promise.race([election?.release(), sleep(5000, undefined, { ref: false })]);
      policyWatch.stop();
      await tuf.close();
      await registry.close();
      await new Promise<void>((resolve) => health.close(() => resolve()));
    },
  };
}
