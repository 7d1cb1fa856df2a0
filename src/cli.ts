#!/usr/bin/env node
/**
 * The entry point, and the only module with process-wide side effects: arguments,
 * environment, exit codes. Every flag can also be set as IMAGEGATE_<NAME>.
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { parseArgs } from 'node:util';
import {
  type AuditOptions,
  auditOnce,
  DEFAULT_AUDIT_REGISTRY_RATE,
  startAudit,
} from './commands/audit.ts';
import { bundleConfigMap, formatInspection, inspectBundle } from './commands/bundle.ts';
import { runCerts } from './commands/certs.ts';
import { runCheck } from './commands/check.ts';
import { startServing } from './commands/serve.ts';
import { BundleError } from './policy/bundle-error.ts';
import { ConfigError } from './policy/config-error.ts';
import type { VerificationSettings } from './policy/loader.ts';
import type { ServeOptions } from './server/gateway.ts';
import type { RegistryOptions } from './server/registry-facts.ts';
import { describeThrown } from './shared/describe-thrown.ts';
import { InputError } from './shared/input-error.ts';
import { createLogger, LOG_LEVELS } from './shared/logger.ts';
import { defaultBundlePath, packageRoot } from './shared/paths.ts';

const USAGE = `usage: imagegate <command> [flags]

commands:
  serve                 run the gateway (HTTPS reviews, plain-HTTP health port)
      --port N            HTTPS port (default 8443)
      --health-port N     /healthz, /readyz, /metrics (default 8080)
      --host ADDR         listen address (default 0.0.0.0)
      --bundle PATH       policy bundle (.tar.gz or a directory holding one), watched
      --config FILE       policy configuration (YAML or JSON), watched
      --tls-cert FILE     serving certificate (PEM), watched; default: self-signed
      --tls-key FILE      its key (PEM), watched
      --client-ca FILE    require client certificates signed by this CA
      --verification-key FILE   PEM public key: refuse unsigned or wrongly signed bundles
      --verification-key-id ID, --verification-scope S, --verification-alg ALG
                          as opa's --verification-key-id, --scope, --signing-alg (RS256)
      --state-dir DIR     where the self-signed CA is kept (default <package>/.state)
      --log-level LEVEL   fatal, error, warn, info, debug, trace, silent (default info)
      --workers N|auto    gateways sharing the port, one wasm instance each (default 1)
      --watch-interval-ms N   how often watched files are compared (default 2000)
      --registry-credentials FILE   a .dockerconfigjson for registries (pinDigests,
                          signatures), watched; never logged
      --registry-ca FILE  extra CA certificates (PEM) registries are trusted with (repeatable)
      --registry-timeout-ms N   one registry request, at most (default 2000)
      --registry-budget-ms N    all registry lookups of one review, at most (default 3000;
                          keep it well inside the webhook's timeoutSeconds)

  check -f FILE|DIR|-   evaluate Kubernetes manifests offline (mutate, then validate)
      --bundle PATH       policy bundle (.tar.gz or a directory holding one); default: the embedded one
      --config FILE       policy configuration (YAML or JSON)
      --output human|json
      --namespace NAME    namespace for manifests that name none (default "default")
      --verification-key FILE (and -key-id, -scope, -alg) as for serve
      --registry-credentials FILE, --registry-ca FILE, --registry-timeout-ms N,
      --registry-budget-ms N   as for serve
      --offline           ask no registry: images pinDigests or signatures need facts
                          about are reported as unverified

  audit                 judge what the cluster already runs; publish PolicyReports
      --kubeconfig FILE   the cluster (default: in-cluster service account)
      --bundle PATH, --config FILE, --verification-key FILE (…)   as for serve, watched
      --once              list, judge, print a table and exit (1 when anything fails);
                          writes nothing to the cluster
      --output table|json (with --once)
      --health-port N     /healthz, /readyz, /metrics (default 8080)
      --leader-elect      audit only while holding the Lease imagegate-audit
      --lease-namespace NAME   where that Lease is (default: the pod's namespace)
      --page-size N       objects per list page (default 500)
      --registry-rate N   registry requests per second per registry (default 5);
                          --registry-credentials, --registry-ca as for serve

  certs                 a CA, a serving and a client certificate, and the files deploy/ needs
      --out DIR           where to write them (default ./imagegate-certs)
      --service NAME      the gateway's Service (default imagegate)
      --namespace NAME    its namespace (default imagegate-system)
      --ip ADDR           an extra IP SAN (repeatable)
      --days N            certificate validity (default 365; the CA gets twice that)
      --control-plane-dir DIR   where kube-apiserver reads the kubeconfigs
                          (default /etc/kubernetes/imagegate)
      --allow-ttl N, --deny-ttl N   ImagePolicyWebhook cache TTLs (default 50;
                          write --allow-ttl=-1 for "no cache")
      --imagepolicy-server URL   the ImagePolicyWebhook backend the API server calls
                          (default https://SERVICE.NAMESPACE.svc:443/v1/imagereview)

  bundle configmap --bundle FILE   print a ConfigMap carrying the bundle (binaryData)
      --name NAME         (default imagegate-bundle)
      --namespace NAME    (default imagegate-system)
      --key NAME          the file name in the mounted directory (default imagegate.tar.gz)
      --verification-key FILE (and -key-id, -scope, -alg) refuse what serve would refuse
  bundle inspect FILE   revision, roots, entrypoints, files, signature status
      --output human|json
      --verification-key FILE (and -key-id, -scope, -alg) verify the signature; exit 1 if invalid

every flag can also be given as IMAGEGATE_<FLAG> (e.g. IMAGEGATE_BUNDLE)
exit codes: 0 allowed, 1 denied, 2 bad input
`;

async function audit(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
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
    },
    strict: true,
    allowPositionals: false,
  });
  const output = setting(values, 'output') ?? 'table';
  if (output !== 'table' && output !== 'json') {
    throw new InputError(`--output must be table or json, not ${JSON.stringify(output)}`);
  }
  const level = setting(values, 'log-level') ?? (values.once === true ? 'warn' : 'info');
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new InputError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  }
  const pageSize = integer(setting(values, 'page-size'), 500, 'page-size');
  if (pageSize < 1 || pageSize > 5000) throw new InputError('--page-size must be from 1 to 5000');
  const rate = integer(
    setting(values, 'registry-rate'),
    DEFAULT_AUDIT_REGISTRY_RATE,
    'registry-rate',
  );
  if (rate < 1 || rate > 1000) throw new InputError('--registry-rate must be from 1 to 1000');
  const options: AuditOptions = {
    source: {
      bundle: setting(values, 'bundle') ?? defaultBundlePath(),
      config: setting(values, 'config'),
      verification: verification(values),
    },
    kubeconfig: setting(values, 'kubeconfig'),
    registry: { ...registryOptions(values), ratePerSecond: rate },
    once: values.once === true,
    output,
    healthPort: port(setting(values, 'health-port'), 8080, 'health-port'),
    host: setting(values, 'host') ?? '0.0.0.0',
    watchIntervalMs: integer(setting(values, 'watch-interval-ms'), 2000, 'watch-interval-ms'),
    pageSize,
    leaderElect: values['leader-elect'] === true,
    leaseNamespace: setting(values, 'lease-namespace') ?? (await podNamespace()),
    write: (text) => process.stdout.write(text),
  };
  const logger = createLogger(level);
  if (options.once) return auditOnce(options, logger);
  const auditing = await startAudit(options, logger);
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  logger.info({ signal }, 'audit shutting down');
  await auditing.stop();
  return 0;
}

/** The namespace this pod runs in (its service account's), else imagegate-system. */
async function podNamespace(): Promise<string> {
  const fromEnv = process.env.POD_NAMESPACE;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  try {
    return (
      await readFile('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8')
    ).trim();
  } catch {
    return 'imagegate-system';
  }
}

const REGISTRY_FLAGS = {
  'registry-credentials': { type: 'string' },
  'registry-ca': { type: 'string', multiple: true },
  'registry-timeout-ms': { type: 'string' },
  'registry-budget-ms': { type: 'string' },
} as const;

/** --registry-* as the gateway and check want them. */
function registryOptions(values: Record<string, unknown>): RegistryOptions {
  const ca = Array.isArray(values['registry-ca']) ? (values['registry-ca'] as string[]) : [];
  const envCa = setting({}, 'registry-ca');
  const timeout = integer(setting(values, 'registry-timeout-ms'), 2000, 'registry-timeout-ms');
  const budget = integer(setting(values, 'registry-budget-ms'), 3000, 'registry-budget-ms');
  if (budget < 100 || budget > 25_000)
    throw new InputError('--registry-budget-ms must be from 100 to 25000');
  if (timeout < 100 || timeout > budget) {
    throw new InputError('--registry-timeout-ms must be from 100 to --registry-budget-ms');
  }
  return {
    credentials: setting(values, 'registry-credentials'),
    ca: ca.length > 0 ? ca : envCa === undefined ? [] : envCa.split(','),
    requestTimeoutMs: timeout,
    budgetMs: budget,
  };
}

const VERIFICATION_FLAGS = {
  'verification-key': { type: 'string' },
  'verification-key-id': { type: 'string' },
  'verification-scope': { type: 'string' },
  'verification-alg': { type: 'string' },
} as const;

/** --verification-key and friends, as the loader wants them; undefined without a key. */
function verification(values: Record<string, unknown>): VerificationSettings | undefined {
  const keyFile = setting(values, 'verification-key');
  const extra = {
    keyId: setting(values, 'verification-key-id'),
    scope: setting(values, 'verification-scope'),
    algorithm: setting(values, 'verification-alg'),
  };
  if (keyFile === undefined) {
    const stray = Object.entries(extra).find(([, v]) => v !== undefined);
    if (stray !== undefined)
      throw new InputError('--verification-key-id, -scope and -alg need --verification-key');
    return undefined;
  }
  return {
    keyFile,
    ...(extra.keyId === undefined ? {} : { keyId: extra.keyId }),
    ...(extra.scope === undefined ? {} : { scope: extra.scope }),
    ...(extra.algorithm === undefined ? {} : { algorithm: extra.algorithm }),
  };
}

/** The flag's value, else IMAGEGATE_<NAME> from the environment. */
function setting(values: Record<string, unknown>, name: string): string | undefined {
  const flag = values[name];
  if (typeof flag === 'string') return flag;
  const env = process.env[`IMAGEGATE_${name.toUpperCase().replaceAll('-', '_')}`];
  return env === undefined || env === '' ? undefined : env;
}

async function check(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      file: { type: 'string', short: 'f', multiple: true },
      bundle: { type: 'string' },
      config: { type: 'string' },
      output: { type: 'string', short: 'o' },
      namespace: { type: 'string', short: 'n' },
      offline: { type: 'boolean' },
      ...VERIFICATION_FLAGS,
      ...REGISTRY_FLAGS,
    },
    strict: true,
    allowPositionals: false,
  });
  const output = setting(values, 'output') ?? 'human';
  if (output !== 'human' && output !== 'json') {
    throw new InputError(`--output must be human or json, not ${JSON.stringify(output)}`);
  }
  return runCheck({
    files: values.file ?? [],
    bundle: setting(values, 'bundle') ?? defaultBundlePath(),
    config: setting(values, 'config'),
    verification: verification(values),
    output,
    namespace: setting(values, 'namespace') ?? 'default',
    registry: registryOptions(values),
    offline: values.offline === true || process.env.IMAGEGATE_OFFLINE === 'true',
    stdin: () => text(process.stdin),
    write: (out) => process.stdout.write(out),
  });
}

/** `{key: value}` when the value is set, `{}` otherwise (exactOptionalPropertyTypes). */
function optional<K extends string>(key: K, value: string | undefined): { [P in K]?: string } {
  return value === undefined ? {} : ({ [key]: value } as { [P in K]?: string });
}

function integer(value: string | undefined, fallback: number, flag: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n))
    throw new InputError(`--${flag} must be a whole number, not ${JSON.stringify(value)}`);
  return n;
}

async function certs(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      out: { type: 'string' },
      service: { type: 'string' },
      namespace: { type: 'string', short: 'n' },
      ip: { type: 'string', multiple: true },
      days: { type: 'string' },
      'secret-name': { type: 'string' },
      'control-plane-dir': { type: 'string' },
      'allow-ttl': { type: 'string' },
      'deny-ttl': { type: 'string' },
      'imagepolicy-server': { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  const out = setting(values, 'out') ?? 'imagegate-certs';
  const written = await runCerts({
    out,
    service: setting(values, 'service') ?? 'imagegate',
    namespace: setting(values, 'namespace') ?? 'imagegate-system',
    secretName: setting(values, 'secret-name') ?? 'imagegate-tls',
    ips: values.ip ?? [],
    days: integer(setting(values, 'days'), 365, 'days'),
    controlPlaneDir: setting(values, 'control-plane-dir') ?? '/etc/kubernetes/imagegate',
    allowTtl: integer(setting(values, 'allow-ttl'), 50, 'allow-ttl'),
    denyTtl: integer(setting(values, 'deny-ttl'), 50, 'deny-ttl'),
    ...optional('imagePolicyServer', setting(values, 'imagepolicy-server')),
  });
  process.stdout.write(`wrote ${written.map((f) => join(out, f)).join('\n      ')}\n`);
  return 0;
}

async function bundle(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'configmap') {
    const { values } = parseArgs({
      args: rest,
      options: {
        bundle: { type: 'string' },
        name: { type: 'string' },
        namespace: { type: 'string', short: 'n' },
        key: { type: 'string' },
        ...VERIFICATION_FLAGS,
      },
      strict: true,
      allowPositionals: false,
    });
    const file = setting(values, 'bundle');
    if (file === undefined) throw new InputError('bundle configmap needs --bundle FILE');
    process.stdout.write(
      await bundleConfigMap({
        bundle: file,
        name: setting(values, 'name') ?? 'imagegate-bundle',
        namespace: setting(values, 'namespace') ?? 'imagegate-system',
        key: values.key ?? 'imagegate.tar.gz',
        verification: verification(values),
      }),
    );
    return 0;
  }
  if (sub === 'inspect') {
    const { values, positionals } = parseArgs({
      args: rest,
      options: { output: { type: 'string', short: 'o' }, ...VERIFICATION_FLAGS },
      strict: true,
      allowPositionals: true,
    });
    const [file, ...extra] = positionals;
    if (file === undefined || extra.length > 0)
      throw new InputError('bundle inspect needs exactly one FILE');
    const inspection = await inspectBundle(file, verification(values));
    const output = values.output ?? 'human';
    if (output !== 'human' && output !== 'json')
      throw new InputError('--output must be human or json');
    process.stdout.write(
      output === 'json' ? `${JSON.stringify(inspection, null, 2)}\n` : formatInspection(inspection),
    );
    return inspection.loads && inspection.signatureValid ? 0 : 1;
  }
  throw new InputError(
    'usage: imagegate bundle configmap --bundle FILE | imagegate bundle inspect FILE',
  );
}

function port(value: string | undefined, fallback: number, flag: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new InputError(`--${flag} must be a port number, not ${JSON.stringify(value)}`);
  }
  return n;
}

async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: 'string' },
      'health-port': { type: 'string' },
      host: { type: 'string' },
      bundle: { type: 'string' },
      config: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'client-ca': { type: 'string' },
      'state-dir': { type: 'string' },
      'log-level': { type: 'string' },
      workers: { type: 'string' },
      'watch-interval-ms': { type: 'string' },
      ...VERIFICATION_FLAGS,
      ...REGISTRY_FLAGS,
    },
    strict: true,
    allowPositionals: false,
  });
  const level = setting(values, 'log-level') ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new InputError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  }
  const logger = createLogger(level);
  const options: ServeOptions = {
    port: port(setting(values, 'port'), 8443, 'port'),
    healthPort: port(setting(values, 'health-port'), 8080, 'health-port'),
    host: setting(values, 'host') ?? '0.0.0.0',
    bundle: setting(values, 'bundle') ?? defaultBundlePath(),
    config: setting(values, 'config'),
    tlsCert: setting(values, 'tls-cert'),
    tlsKey: setting(values, 'tls-key'),
    clientCa: setting(values, 'client-ca'),
    verification: verification(values),
    stateDir: setting(values, 'state-dir') ?? join(packageRoot(), '.state'),
    watchIntervalMs: integer(setting(values, 'watch-interval-ms'), 2000, 'watch-interval-ms'),
    registry: registryOptions(values),
  };
  if (options.watchIntervalMs !== undefined && options.watchIntervalMs < 10) {
    throw new InputError('--watch-interval-ms must be at least 10');
  }
  const serving = await startServing(options, workerCount(setting(values, 'workers')), logger);
  if (serving.caPath !== undefined) {
    process.stderr.write(
      `imagegate: serving https://localhost:${serving.port} with a self-signed certificate; its CA is ${serving.caPath}\n`,
    );
  }
  // SIGTERM (kubelet) and SIGINT (a terminal): readiness goes false, in-flight requests
  // finish, then exit 0. With workers, the primary tells each worker to drain.
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  logger.info({ signal }, 'shutting down: no new connections, finishing in-flight requests');
  await serving.stop();
  logger.info('stopped');
  return 0;
}

/** --workers N, or "auto" for one per available core; 1 (one event loop) by default. */
function workerCount(value: string | undefined): number {
  if (value === undefined) return 1;
  if (value === 'auto') return availableParallelism();
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64) {
    throw new InputError(
      `--workers must be auto or a whole number from 1 to 64, not ${JSON.stringify(value)}`,
    );
  }
  return n;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'check':
      return check(rest);
    case 'audit':
      return audit(rest);
    case 'certs':
      return certs(rest);
    case 'bundle':
      return bundle(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`imagegate: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return 2;
  }
}

/** Errors of the user's making exit 2 with one clear line; anything else is a bug. */
function exitCodeFor(error: unknown): number {
  const known =
    error instanceof InputError ||
    error instanceof ConfigError ||
    error instanceof BundleError ||
    (error instanceof TypeError &&
      'code' in error &&
      String(error.code).startsWith('ERR_PARSE_ARGS'));
  process.stderr.write(`imagegate: ${describeThrown(error)}\n`);
  return known ? 2 : 3;
}

// `imagegate ... | head` closes the pipe early: that is the reader's choice, not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.exitCode = exitCodeFor(error);
  },
);
