/**
 * `imagegate serve`: one gateway (its event loop for TLS and answers, its evaluation
 * threads for reviews), or with `--workers N` a primary that shares the HTTPS port among N
 * gateway workers (server/cluster.ts). A process forked as a worker always becomes one.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseBundleLocation } from '../distribution/bundle-location.ts';
import { isClusterWorker, startPrimary, startWorker } from '../server/cluster.ts';
import { type ServeOptions, startGateway } from '../server/gateway.ts';
import { DEFAULT_EVALUATION_THREADS } from '../server/pool/evaluation-pool.ts';
import { InputError } from '../shared/input-error.ts';
import { createLogger, type Logger } from '../shared/logger.ts';
import { defaultBundlePath, packageRoot } from '../shared/paths.ts';
import type { Command } from './command.ts';
import {
  BUNDLE_SOURCE_FLAGS,
  bundleSourceOptions,
  COLLECTOR_FLAGS,
  collectorSettings,
  type Flags,
  parseFlags,
  REGISTRY_FLAGS,
  registryOptions,
  TUF_FLAGS,
  tufOptions,
  VERIFICATION_FLAGS,
  verificationSettings,
} from './flags.ts';

const USAGE = `usage: imagegate serve [flags]

Runs the gateway: AdmissionReview (/v1/validate, /v1/mutate) and ImageReview
(/v1/imagereview) over HTTPS, /healthz, /readyz and /metrics over plain HTTP.

flags:
  --port N              HTTPS port (default 8443)
  --health-port N       /healthz, /readyz, /metrics (default 8080)
  --host ADDR           listen address (default 0.0.0.0)
  --bundle SOURCE       policy bundle: a .tar.gz or a directory holding one, watched
                        (default: the embedded bundles/imagegate.tar.gz); or
                        oci://REGISTRY/REPO:TAG (or @sha256:...), OPA's OCI layout, through
                        the --registry-* settings; or https://... an OPA bundle service.
                        A remote source is polled; see README, "Run a fleet"
  --bundle-poll-interval-ms N   how often a remote source is asked (default 60000, +-10%)
  --bundle-max-backoff-ms N     longest wait between attempts while it fails (default 120000)
  --bundle-persist-dir DIR      keep the last good remote bundle here (a writable volume);
                        served at start when the source cannot answer
  --bundle-timeout-ms N         one request to a bundle service (default 10000)
  --bundle-long-poll-s N        bundle service: ask the server to hold requests up to N s
                        until the bundle changes (OPA long polling; default 0: off)
  --bundle-token-file FILE      bundle service: bearer token, read at every request
  --bundle-client-cert FILE, --bundle-client-key FILE   bundle service: TLS client auth
  --bundle-ca FILE              bundle service: extra trusted CA (PEM), repeatable
  --bundle-cosign-key FILE      oci://: the artifact must carry a cosign signature by this
                        key (PEM; repeatable: any one of them)
  --bundle-cosign-trust-root FILE   oci://: a Sigstore trusted_root.json checking that
                        signature's transparency-log entry
  --config FILE         policy configuration (YAML or JSON), watched
  --tls-cert FILE       serving certificate (PEM), watched; default: self-signed
  --tls-key FILE        its key (PEM), watched
  --client-ca FILE      require client certificates signed by this CA, watched
  --verification-key FILE   PEM public key: refuse unsigned or wrongly signed bundles
  --verification-key-id ID, --verification-scope S, --verification-alg ALG
                        as opa's --verification-key-id, --scope, --signing-alg (RS256)
  --collector-url URL   a collector speaking OPA's APIs (decision logs, status)
  --decision-logs       send decision logs there: gzipped JSON batches POSTed to
                        URL/logs, OPA's format, never the reviewed object
  --decision-log-interval-ms N  how often (default 10000); failures back off
  --decision-log-buffer N       events kept while it is down (default 10000; past it
                        the oldest are dropped, counted in imagegate_decision_logs_dropped_total)
  --status              send status there (OPA's format, POST URL/status): at start,
                        on every change, and every --status-interval-ms (default 60000)
  --status-interval-ms N
  --label KEY=VALUE     a label on every event and report (e.g. cluster=prod-eu-1), repeatable
  --collector-token-file FILE   bearer token, read at every request
  --collector-ca FILE   extra trusted CA (PEM), repeatable
  --collector-client-cert FILE, --collector-client-key FILE   TLS client auth
  --state-dir DIR       where the self-signed CA is kept (default <package>/.state)
  --log-level LEVEL     fatal, error, warn, info, debug, trace, silent (default info)
  --evaluation-threads N  threads that parse and evaluate reviews, one wasm instance
                        each, off the event loop (default 2, even on one CPU: a costly
                        review holds one while the other serves; 0: on the event loop)
  --workers N|auto      whole gateways sharing the port, each with its own threads
                        (default 1; docs/sizing.md)
  --watch-interval-ms N how often watched files are compared (default 2000)
  --registry-credentials FILE   a .dockerconfigjson for registries (pinDigests,
                        signatures), watched; never logged
  --registry-ca FILE    extra CA certificates (PEM) registries are trusted with (repeatable)
  --registry-timeout-ms N   one registry request, at most (default 2000)
  --registry-budget-ms N    all registry lookups of one review, at most (default 3000;
                        keep it well inside the webhook's timeoutSeconds)
  --tuf-cache-dir DIR   where trust roots kept in TUF repositories (trustRoots with a
                        mirror) are cached, verified (default $TMPDIR/imagegate-tuf); a
                        restart while the mirror is down serves them until they expire
  --tuf-refresh-interval-ms N   how often each TUF mirror is asked (default 14400000,
                        4 h; sooner with backoff while it fails)
  -h, --help            this text

Every flag can also be given as IMAGEGATE_<FLAG> (IMAGEGATE_HEALTH_PORT=9090).
SIGTERM or SIGINT: readiness turns false, in-flight reviews finish, exit 0.
Exit codes: 0 stopped by a signal, 2 bad flags or a policy that does not load.
`;

const FLAGS = {
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
  'evaluation-threads': { type: 'string' },
  'watch-interval-ms': { type: 'string' },
  ...VERIFICATION_FLAGS,
  ...REGISTRY_FLAGS,
  ...TUF_FLAGS,
  ...BUNDLE_SOURCE_FLAGS,
  ...COLLECTOR_FLAGS,
} as const;

interface Serving {
  /** The HTTPS port actually bound (the option's, in a cluster). */
  readonly port: number;
  /** The self-signed CA when no certificate was given, to tell the user. */
  readonly caPath: string | undefined;
  /** Readiness goes false, in-flight reviews finish, the servers close. */
  stop(): Promise<void>;
}

async function startServing(
  options: ServeOptions,
  workers: number,
  logger: Logger,
): Promise<Serving> {
  if (isClusterWorker()) {
    const gateway = await startWorker(logger);
    // The IPC channel to the primary would keep a drained worker alive: let it go.
    return {
      port: options.port,
      caPath: undefined,
      stop: () => gateway.close().then(() => process.disconnect?.()),
    };
  }
  if (workers > 1) {
    const primary = await startPrimary(options, workers, logger);
    return { port: options.port, caPath: primary.caPath, stop: () => primary.close() };
  }
  const gateway = await startGateway(options, logger);
  return { port: gateway.port, caPath: gateway.caPath, stop: () => gateway.close() };
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

function serveOptions(flags: Flags): ServeOptions {
  const bundle = flags.string('bundle') ?? defaultBundlePath();
  // Parsed now, so a malformed source is a bad flag (exit 2), not a gateway polling nothing.
  const remote = parseBundleLocation(bundle).kind !== 'file';
  return {
    port: flags.port('port', 8443),
    healthPort: flags.port('health-port', 8080),
    host: flags.string('host') ?? '0.0.0.0',
    bundle,
    ...(remote ? { remote: bundleSourceOptions(flags) } : {}),
    collector: collectorSettings(flags),
    config: flags.string('config'),
    tlsCert: flags.string('tls-cert'),
    tlsKey: flags.string('tls-key'),
    clientCa: flags.string('client-ca'),
    verification: verificationSettings(flags),
    stateDir: flags.string('state-dir') ?? join(packageRoot(), '.state'),
    watchIntervalMs: flags.integer('watch-interval-ms', 2000, 10),
    registry: registryOptions(flags),
    tuf: tufOptions(flags),
    evaluationThreads: flags.integer('evaluation-threads', DEFAULT_EVALUATION_THREADS, 0, 64),
  };
}

export const command: Command = {
  usage: USAGE,
  flags: FLAGS,
  async run(args, context) {
    const flags = parseFlags('serve', args, FLAGS, context.env);
    const logger = createLogger(flags.logLevel('info'));
    const options = serveOptions(flags);
    const serving = await startServing(options, workerCount(flags.string('workers')), logger);
    if (serving.caPath !== undefined) {
      context.tell(
        `imagegate: serving https://localhost:${serving.port} with a self-signed certificate; its CA is ${serving.caPath}\n`,
      );
    }
    // SIGTERM (kubelet) and SIGINT (a terminal): readiness goes false, in-flight requests
    // finish, then exit 0. With workers, the primary tells each worker to drain.
    const signal = await context.stopSignal();
    logger.info({ signal }, 'shutting down: no new connections, finishing in-flight requests');
    await serving.stop();
    logger.info('stopped');
    return 0;
  },
};
