/**
 * `imagegate audit`: what already runs, judged by the policy in force (SPEC "Audit").
 *
 * - `--once`: list everything, evaluate, print a table (or JSON) and exit 1 when anything
 *   fails; nothing is written to the cluster.
 * - otherwise a service: the policy loaded and watched as `serve` does (a new bundle or
 *   configuration re-audits everything), objects listed then watched, PolicyReports
 *   published, health and metrics on the health port, and with `--leader-elect` only the
 *   replica holding the Lease audits.
 */
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { Registry } from 'prom-client';
import { Auditor } from '../audit/auditor.ts';
import type { AuditedObject } from '../audit/evaluate.ts';
import { Kube, loadKubeConfig } from '../audit/kube.ts';
import { LeaderElection } from '../audit/leader.ts';
import { createAuditMetrics } from '../audit/metrics.ts';
import { PolicyHolder } from '../policy/holder.ts';
import { loadPolicy, type PolicySource } from '../policy/loader.ts';
import { createHealthApp } from '../server/health.ts';
import { servePolicy } from '../server/policy-reload.ts';
import { type RegistryOptions, startRegistryFacts } from '../server/registry-facts.ts';
import type { Watch } from '../shared/file-watch.ts';
import type { Logger } from '../shared/logger.ts';
import { createLogger } from '../shared/logger.ts';
import { createMetrics } from '../shared/metrics.ts';
import { defaultBundlePath } from '../shared/paths.ts';
import type { Command, CommandContext } from './command.ts';
import {
  parseFlags,
  REGISTRY_FLAGS,
  registryOptions,
  VERIFICATION_FLAGS,
  verificationSettings,
} from './flags.ts';

const USAGE = `usage: imagegate audit [flags]

Judges what the cluster already runs (Pods and every workload) with the bundle and
configuration the gateways use, and publishes wgpolicyk8s.io/v1alpha2 PolicyReports (one
per namespace, named imagegate) and a ClusterPolicyReport; or, with --once, prints them.

flags:
  --kubeconfig FILE     the cluster (default: in-cluster service account)
  --bundle PATH         policy bundle (.tar.gz or a directory holding one), watched
                        (default: the embedded bundles/imagegate.tar.gz)
  --config FILE         policy configuration (YAML or JSON), watched
  --verification-key FILE (and --verification-key-id, --verification-scope,
                        --verification-alg) as for serve
  --once                list, judge, print a table and exit (1 when anything fails);
                        writes nothing to the cluster
  -o, --output table|json   (with --once)
  --health-port N       /healthz, /readyz, /metrics (default 8080)
  --host ADDR           listen address of the health port (default 0.0.0.0)
  --leader-elect        audit only while holding the Lease imagegate-audit
  --lease-namespace NAME   where that Lease is (default: the pod's namespace)
  --page-size N         objects per list page, 1 to 5000 (default 500)
  --log-level LEVEL     fatal, error, warn, info, debug, trace, silent
                        (default info; warn with --once)
  --watch-interval-ms N how often watched files are compared (default 2000)
  --registry-rate N     registry requests per second per registry, 1 to 1000 (default 5)
  --registry-credentials FILE, --registry-ca FILE, --registry-timeout-ms N,
  --registry-budget-ms N   as for serve
  -h, --help            this text

Every flag can also be given as IMAGEGATE_<FLAG> (IMAGEGATE_KUBECONFIG=...).
Exit codes: 0 stopped by a signal (or --once: nothing fails); 1 --once found failures,
or the audit could not recover from API errors (it releases its Lease first); 2 bad input.
`;

const FLAGS = {
  kubeconfig: { type: 'string' },
  bundle: { type: 'string' },
  config: { type: 'string' },
  once: { type: 'boolean' },
  output: { type: 'string', short: 'o' },
  'health-port': { type: 'string' },
  host: { type: 'string' },
  'leader-elect': { type: 'boolean' },
  'lease-namespace': { type: 'string' },
  'page-size': { type: 'string' },
  'registry-rate': { type: 'string' },
  'log-level': { type: 'string' },
  'watch-interval-ms': { type: 'string' },
  ...VERIFICATION_FLAGS,
  ...REGISTRY_FLAGS,
} as const;

interface AuditOptions {
  readonly source: PolicySource;
  readonly kubeconfig: string | undefined;
  readonly registry: RegistryOptions;
  readonly once: boolean;
  readonly output: 'table' | 'json';
  readonly healthPort: number;
  readonly host: string;
  readonly watchIntervalMs: number;
  readonly pageSize: number;
  readonly leaderElect: boolean;
  readonly leaseNamespace: string;
  readonly write: (text: string) => void;
}

/** Registry lookups per second per registry the audit may make, by default. */
const DEFAULT_AUDIT_REGISTRY_RATE = 5;
/** One object's facts may take this long: no webhook waits on the audit. */
const AUDIT_BUDGET_MS = 30_000;

interface Auditing {
  readonly healthPort: number;
  stop(): Promise<void>;
}

function registryFor(options: AuditOptions): RegistryOptions {
  return {
    ...options.registry,
    budgetMs: AUDIT_BUDGET_MS,
    ratePerSecond: options.registry.ratePerSecond ?? DEFAULT_AUDIT_REGISTRY_RATE,
  };
}

/** `--once`: the exit code (1 when anything fails or errs). */
async function auditOnce(options: AuditOptions, logger: Logger): Promise<number> {
  const { engine } = await loadPolicy(options.source);
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
      kube: new Kube(loadKubeConfig(options.kubeconfig)),
      policy,
      logger,
      facts: (e, input) => registry.withFacts(e, input, 'validate'),
      pageSize: options.pageSize,
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
async function startAudit(options: AuditOptions, logger: Logger): Promise<Auditing> {
  const metrics = createMetrics();
  const auditMetrics = createAuditMetrics({ processMetrics: false });
  const policy = new PolicyHolder();
  const watches: Watch[] = [];
  let auditor: Auditor | undefined;
  let firstAudit = false;
  let leading = !options.leaderElect;
  watches.push(
    await servePolicy({
      source: options.source,
      policy,
      metrics,
      logger,
      intervalMs: options.watchIntervalMs,
      // A new bundle or configuration: everything is judged again.
      changed: () => {
        if (auditor !== undefined && firstAudit) void auditor.reaudit();
      },
    }),
  );
  const registry = await startRegistryFacts(registryFor(options), {
    policy,
    metrics,
    logger,
    intervalMs: options.watchIntervalMs,
  });
  const merged = Registry.merge([metrics.registry, auditMetrics.registry]);
  const health = createServer(
    createHealthApp({
      readiness: () => ({
        ready: policy.engine !== undefined && (firstAudit || !leading),
        leading,
        audited: firstAudit,
        revision: policy.engine?.revision ?? null,
        objects: auditor?.store.size ?? 0,
        lastLoad: policy.lastLoad ?? null,
        configWarnings: policy.engine?.config.warnings ?? [],
      }),
      metrics: async () => ({ contentType: merged.contentType, text: await merged.metrics() }),
    }).callback(),
  );
  health.listen(options.healthPort, options.host);
  await once(health, 'listening');
  logger.info(
    { healthPort: (health.address() as AddressInfo).port },
    'imagegate audit serving health',
  );
  const kube = new Kube(loadKubeConfig(options.kubeconfig));
  const election = options.leaderElect
    ? new LeaderElection(kube, {
        namespace: options.leaseNamespace,
        name: 'imagegate-audit',
        identity: hostname(),
      })
    : undefined;

  const start = async () => {
    if (election !== undefined) {
      const leads = await election.lead(() => {
        logger.error('lost the audit lease; exiting so that another replica leads');
        process.exit(1);
      });
      // Stopped before it ever led: nothing to audit.
      if (!leads) return;
      leading = true;
      logger.info({ identity: hostname() }, 'leading the audit');
    }
    auditor = new Auditor({
      kube,
      policy,
      logger,
      facts: (e, input) => registry.withFacts(e, input, 'validate'),
      observer: auditMetrics,
      pageSize: options.pageSize,
    });
    await auditor.run({ publish: true });
    firstAudit = true;
  };
  const running = start().catch((error: unknown) => {
    logger.fatal({ error: String(error) }, 'audit failed');
    process.exitCode = 1;
  });
  return {
    healthPort: (health.address() as AddressInfo).port,
    async stop() {
      election?.stop();
      auditor?.stop();
      await auditor?.flush().catch(() => undefined);
      for (const watch of watches) watch.stop();
      await registry.close();
      await new Promise<void>((resolve) => health.close(() => resolve()));
      void running;
    },
  };
}

/** The namespace this pod runs in (its service account's), else imagegate-system. */
async function podNamespace(env: CommandContext['env']): Promise<string> {
  const fromEnv = env.POD_NAMESPACE;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  try {
    return (
      await readFile('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8')
    ).trim();
  } catch {
    return 'imagegate-system';
  }
}

export const command: Command = {
  usage: USAGE,
  flags: FLAGS,
  async run(args, context) {
    const flags = parseFlags('audit', args, FLAGS, context.env);
    const once = flags.boolean('once');
    const output = flags.choice('output', ['table', 'json'], 'table');
    const logger = createLogger(flags.logLevel(once ? 'warn' : 'info'));
    const options: AuditOptions = {
      source: {
        bundle: flags.string('bundle') ?? defaultBundlePath(),
        config: flags.string('config'),
        verification: verificationSettings(flags),
      },
      kubeconfig: flags.string('kubeconfig'),
      registry: {
        ...registryOptions(flags),
        ratePerSecond: flags.integer('registry-rate', DEFAULT_AUDIT_REGISTRY_RATE, 1, 1000),
      },
      once,
      output,
      healthPort: flags.port('health-port', 8080),
      host: flags.string('host') ?? '0.0.0.0',
      watchIntervalMs: flags.integer('watch-interval-ms', 2000, 10),
      pageSize: flags.integer('page-size', 500, 1, 5000),
      leaderElect: flags.boolean('leader-elect'),
      leaseNamespace: flags.string('lease-namespace') ?? (await podNamespace(context.env)),
      write: context.write,
    };
    if (options.once) return auditOnce(options, logger);
    const auditing = await startAudit(options, logger);
    const signal = await context.stopSignal();
    logger.info({ signal }, 'audit shutting down');
    await auditing.stop();
    return 0;
  },
};
