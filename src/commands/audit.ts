/**
 * `imagegate audit`: what already runs, judged by the policy in force (SPEC "Audit"): its
 * flags and usage here, what it runs in audit-service.ts.
 *
 * - `--once`: list everything, evaluate, print a table (or JSON) and exit 1 when anything
 *   fails; nothing is written to the cluster.
 * - otherwise a service, until a signal (exit 0) or until it cannot go on (exit 1, its
 *   Lease released first).
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { AuditGaveUp } from '../audit/retry.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import { createLogger } from '../shared/logger.ts';
import { defaultBundlePath } from '../shared/paths.ts';
import {
  type AuditOptions,
  auditOnce,
  DEFAULT_AUDIT_REGISTRY_RATE,
  startAudit,
} from './audit-service.ts';
import type { Command, CommandContext } from './command.ts';
import {
  parseFlags,
  REGISTRY_FLAGS,
  registryOptions,
  TUF_FLAGS,
  tufOptions,
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
  --lease-identity NAME    who holds it (default: the host name, which is the pod's name)
  --page-size N         objects per list page, 1 to 5000 (default 500)
  --log-level LEVEL     fatal, error, warn, info, debug, trace, silent
                        (default info; warn with --once, on standard error)
  --give-up-after-s N   how long API calls may keep failing (retried with backoff and
                        jitter) before the audit gives up: it releases its Lease and exits 1
                        (default 300)
  --watch-interval-ms N how often watched files are compared (default 2000)
  --registry-rate N     registry requests per second per registry, 1 to 1000 (default 5)
  --registry-credentials FILE, --registry-ca FILE, --registry-timeout-ms N,
  --registry-budget-ms N   as for serve
  --tuf-cache-dir DIR, --tuf-refresh-interval-ms N   trust roots kept in TUF
                        repositories, as for serve
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
  'lease-identity': { type: 'string' },
  'page-size': { type: 'string' },
  'registry-rate': { type: 'string' },
  'log-level': { type: 'string' },
  'watch-interval-ms': { type: 'string' },
  'give-up-after-s': { type: 'string' },
  ...VERIFICATION_FLAGS,
  ...REGISTRY_FLAGS,
  ...TUF_FLAGS,
} as const;

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
    // --once writes its table (or JSON) to standard output: logs go to standard error.
    const logger = createLogger(
      flags.logLevel(once ? 'warn' : 'info'),
      once ? { write: (line: string) => context.tell(line) } : undefined,
    );
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
      tuf: tufOptions(flags),
      once,
      output,
      healthPort: flags.port('health-port', 8080),
      host: flags.string('host') ?? '0.0.0.0',
      watchIntervalMs: flags.integer('watch-interval-ms', 2000, 10),
      pageSize: flags.integer('page-size', 500, 1, 5000),
      leaderElect: flags.boolean('leader-elect'),
      leaseNamespace: flags.string('lease-namespace') ?? (await podNamespace(context.env)),
      leaseIdentity: flags.string('lease-identity') ?? hostname(),
      giveUpAfterMs: flags.integer('give-up-after-s', 300, 1, 86_400) * 1000,
      write: context.write,
    };
    if (options.once) {
      try {
        return await auditOnce(options, logger);
      } catch (error) {
        if (!(error instanceof AuditGaveUp)) throw error;
        context.tell(`imagegate: audit: ${error.message}\n`);
        return 1;
      }
    }
    const auditing = await startAudit(options, logger);
    const outcome = await Promise.race([
      context.stopSignal().then((signal) => ({ signal, error: undefined })),
      auditing.failed.then((error) => ({ signal: undefined, error })),
    ]);
    if (outcome.signal !== undefined)
      logger.info({ signal: outcome.signal }, 'audit shutting down');
    else logger.fatal({ error: describeThrown(outcome.error) }, 'audit gave up; exiting');
    await auditing.stop();
    return outcome.signal === undefined ? 1 : 0;
  },
};
