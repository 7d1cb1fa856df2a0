/**
 * The gateway: `startGateway` wires the policy, its watchers, the HTTPS and health servers
 * and returns a handle, so tests run the real HTTPS server in-process. `imagegate serve`
 * (commands/serve.ts) starts one, or a cluster of them; signals stay in cli.ts.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { parseBundleLocation } from '../distribution/bundle-location.ts';
import type { SourceStatus } from '../distribution/source-status.ts';
import type { ConfigInForce } from '../policy/engine.ts';
import { type LoadStatus, PolicyHolder } from '../policy/holder.ts';
import type { LoadedPolicy, VerificationSettings } from '../policy/loader.ts';
import type { Watch } from '../shared/file-watch.ts';
import type { Logger } from '../shared/logger.ts';
import { createMetrics, type Metrics } from '../shared/metrics.ts';
import { packageVersion } from '../shared/paths.ts';
import { ensureDevCertificates } from '../tls/dev-certs.ts';
import { createApp, DEFAULT_MAX_BODY_BYTES } from './app.ts';
import {
  type RemoteSourceOptions,
  type StartedSource,
  startBundleSource,
} from './bundle-source.ts';
import { type Collector, type CollectorSettings, startCollector } from './collector.ts';
import { inProcessEvaluator } from './evaluator.ts';
import { createHealthApp, gatewayHealth, type TlsStatus } from './health.ts';
import { type PolicyWatch, servePolicy } from './policy-reload.ts';
import { DEFAULT_EVALUATION_THREADS, EvaluationPool } from './pool/evaluation-pool.ts';
import { type RegistryOptions, startRegistryFacts } from './registry-facts.ts';
import { serveRemotePolicy } from './remote-policy.ts';
import { loadServingTls, type ServingTls } from './tls-reload.ts';
import { TUF_REQUEST_TIMEOUT_MS, TufRoots, type TufRootsOptions } from './tuf-roots.ts';

/**
 * How long an idle connection stays open: longer than kube-apiserver's webhook client
 * keeps one (Go's http.Transport, IdleConnTimeout 90 s; FACTS.md). That client does not
 * retry a POST on a connection the server closed, so a server that lets go first races
 * it: "failed calling webhook ... EOF", which failurePolicy: Fail turns into a refused
 * pod. With the client closing first there is no race. headersTimeout and requestTimeout
 * do not shorten this: Node counts them only once a request's first byte has arrived.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 120_000;

export interface ServeOptions {
  readonly port: number;
  /** null: no health server (a cluster worker; the primary serves health for all). */
  readonly healthPort: number | null;
  readonly host: string;
  /** A path, `oci://registry/repo:tag` or an OPA bundle service URL (distribution/). */
  readonly bundle: string;
  /** How a remote `bundle` is polled, kept and authenticated to. */
  readonly remote?: RemoteSourceOptions | undefined;
  readonly config: string | undefined;
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  readonly clientCa: string | undefined;
  /** When set, unsigned or wrongly signed bundles are refused. */
  readonly verification?: VerificationSettings | undefined;
  readonly stateDir: string;
  readonly maxBodyBytes?: number;
  /** How often watched files are polled. */
  readonly watchIntervalMs?: number;
  /**
   * A client must send its headers within this long, and its whole request within
   * requestTimeoutMs (slowloris); defaults 10 s and 30 s, the API server's own webhook
   * timeout being at most 30 s.
   */
  readonly headersTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
  /** Registry access for pinDigests and signatures (credentials, CAs, timeouts). */
  readonly registry?: RegistryOptions | undefined;
  /**
   * Threads that parse and evaluate reviews (server/pool/), each with its own wasm
   * instance; 0 evaluates on the event loop. Default DEFAULT_EVALUATION_THREADS.
   */
  readonly evaluationThreads?: number | undefined;
  /** Trust roots kept in TUF repositories: where they are cached, how often refreshed. */
  readonly tuf?: TufRootsOptions | undefined;
  /** Decision logs and status to a collector (OPA's APIs); undefined: none. */
  readonly collector?: CollectorSettings | undefined;
  /** Told after every load, reload or refusal (cluster workers report to the primary). */
  readonly onStatus?: (status: GatewayStatus) => void;
}

export interface GatewayStatus {
  readonly revision: string;
  readonly bundleDigest: string;
  readonly config: ConfigInForce | null;
  readonly lastLoad: LoadStatus | undefined;
  readonly tls: TlsStatus | undefined;
  /** A remote bundle source's state (undefined for a file bundle). */
  readonly source?: SourceStatus | undefined;
}

export interface Gateway {
  readonly port: number;
  readonly healthPort: number | null;
  readonly policy: PolicyHolder;
  readonly metrics: Metrics;
  readonly caPath: string | undefined;
  /** A remote bundle source's state, when `bundle` names one. */
  readonly source: () => SourceStatus | undefined;
  /** Stops accepting, lets in-flight requests finish, closes both servers. */
  close(graceMs?: number): Promise<void>;
}

export async function startGateway(options: ServeOptions, logger: Logger): Promise<Gateway> {
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) {
    throw new Error('--tls-cert and --tls-key go together');
  }
  const metrics = createMetrics();
  const policy = new PolicyHolder();
  let tls: ServingTls | undefined;
  let remote: StartedSource | undefined;
  let collector: Collector | undefined;
  let tuf: TufRoots | undefined;
  const report = () => {
    // Only the mirrors the policy in service names are asked again.
    if (policy.engine !== undefined) tuf?.retain(policy.engine.trustRoots.values());
    collector?.changed();
    options.onStatus?.({
      revision: policy.engine?.revision ?? '',
      bundleDigest: policy.engine?.bundleDigest ?? '',
      config: policy.engine?.config ?? null,
      lastLoad: policy.lastLoad,
      tls: tls?.status(),
      source: remote?.remote.status,
    });
  };
  const location = parseBundleLocation(options.bundle);
  const intervalMs = options.watchIntervalMs ?? 2000;
  const watches: Watch[] = [];
  const facts = await startRegistryFacts(options.registry ?? {}, {
    policy,
    metrics,
    logger,
    intervalMs,
  });
  tuf = new TufRoots(options.tuf ?? {}, {
    http: (addresses) => facts.httpFor(addresses, TUF_REQUEST_TIMEOUT_MS),
    logger,
    metrics,
  });
  const source = {
    bundle: options.bundle,
    config: options.config,
    verification: options.verification,
    tufRoots: tuf.source,
  };
  if (options.collector !== undefined) {
    collector = await startCollector(options.collector, {
      policy,
      source: () => remote?.remote.status,
      metrics,
      logger,
      id: randomUUID(),
      version: packageVersion(),
    });
  }
  const threads = options.evaluationThreads ?? DEFAULT_EVALUATION_THREADS;
  // A decision line is built only for a reader: the log at info, or the collector.
  const decisionLines = logger.isLevelEnabled('info') || collector !== undefined;
  const pool =
    threads > 0 ? new EvaluationPool(threads, facts.gather, logger, { decisionLines }) : undefined;
  const evaluator = pool ?? inProcessEvaluator(policy, facts.withFacts, { decisionLines });
  const reloadDeps = {
    source,
    policy,
    metrics,
    logger,
    intervalMs,
    changed: report,
    ...(pool === undefined
      ? {}
      : { prepare: (loaded: LoadedPolicy) => pool.prepare(loaded.snapshot) }),
  };
  // Whatever fails from here on (the policy, the certificate, the port) must not leave
  // threads, watches, a bundle source, the collector or the registry client behind: the
  // threads would keep the process up.
  const abandon = async () => {
    for (const watch of watches) watch.stop();
    await remote?.close();
    await collector?.close();
    await evaluator.close();
    await tuf?.close();
    await facts.close();
  };
  try {
    return await serve();
  } catch (error) {
    await abandon();
    throw error;
  }

  async function serve(): Promise<Gateway> {
    let served: PolicyWatch;
    if (location.kind === 'file') {
      served = await servePolicy(reloadDeps);
    } else {
      if (options.remote === undefined) throw new Error(`${options.bundle}: no remote options`);
      remote = await startBundleSource(location, options.remote, {
        facts,
        metrics,
        logger,
        changed: report,
      });
      served = await serveRemotePolicy(reloadDeps, remote.remote);
    }
    watches.push(served);
    // From the first policy on: a root its TUF mirror changed (or that expired) rebuilds it.
    tuf?.start(() => void served.reload('trust root'));

    let caPath: string | undefined;
    let certPath = options.tlsCert;
    let keyPath = options.tlsKey;
    if (certPath === undefined || keyPath === undefined) {
      const dev = await ensureDevCertificates(options.stateDir);
      ({ caPath, certPath, keyPath } = dev);
      logger.info(
        { ca: dev.caPath, created: dev.createdCa },
        'serving with a self-signed certificate; trust this CA to call the gateway',
      );
    }
    const files = { cert: certPath, key: keyPath, clientCa: options.clientCa };
    tls = await loadServingTls(files, { metrics, logger, intervalMs, changed: report });
    report();

    const headersTimeoutMs = options.headersTimeoutMs ?? 10_000;
    const requestTimeoutMs = Math.max(options.requestTimeoutMs ?? 30_000, headersTimeoutMs);
    let accepting = true;
    const app = createApp({
      evaluator,
      logger,
      metrics,
      maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
      draining: () => !accepting,
      decisions: collector?.decisions,
    });
    const https: HttpsServer = createHttpsServer(
      {
        ...tls.initial,
        minVersion: 'TLSv1.2',
        ...(files.clientCa === undefined ? {} : { requestCert: true, rejectUnauthorized: true }),
        // A slow client must not hold a socket for ever (slowloris). Node checks the
        // deadlines every connectionsCheckingInterval (30 s by default), so that is tied to
        // them: otherwise a cut-off could lag by up to 30 s.
        requestTimeout: requestTimeoutMs,
        headersTimeout: headersTimeoutMs,
        connectionsCheckingInterval: Math.max(
          100,
          Math.min(headersTimeoutMs, requestTimeoutMs) / 4,
        ),
        // A client that never finishes its TLS handshake holds a socket too (Node: 120 s).
        handshakeTimeout: headersTimeoutMs,
      },
      app.callback(),
    );
    https.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    watches.push(await tls.watch(https));

    const health: HttpServer | undefined =
      options.healthPort === null
        ? undefined
        : createHttpServer(
            createHealthApp(
              gatewayHealth({
                policy,
                metrics,
                accepting: () => accepting,
                tls: tls.status,
                source: () => remote?.remote.status,
              }),
            ).callback(),
          );

    https.listen(options.port, options.host);
    if (health !== undefined) health.listen(options.healthPort ?? 0, options.host);
    try {
      await Promise.all([once(https, 'listening'), ...(health ? [once(health, 'listening')] : [])]);
    } catch (error) {
      // A port taken: let go of the other one too.
      https.close();
      health?.close();
      throw error;
    }
    const port = (https.address() as AddressInfo).port;
    const healthPort = health === undefined ? null : (health.address() as AddressInfo).port;
    logger.info(
      { port, healthPort, clientAuth: files.clientCa !== undefined },
      'imagegate serving',
    );

    return {
      port,
      healthPort,
      policy,
      metrics,
      caPath,
      source: () => remote?.remote.status,
      async close(graceMs = 25_000) {
        accepting = false;
        for (const watch of watches) watch.stop();
        await remote?.close();
        const closed = new Promise<void>((resolve) => https.close(() => resolve()));
        // Connections that finish their request while draining are closed by the
        // Connection: close header; sweep the ones that were idle in between as well.
        const sweep = setInterval(() => https.closeIdleConnections(), 50);
        https.closeIdleConnections();
        const timer = setTimeout(() => https.closeAllConnections(), graceMs);
        await closed;
        clearInterval(sweep);
        clearTimeout(timer);
        await evaluator.close();
        await tuf?.close();
        await facts.close();
        // After the last review: its decision is in the final upload.
        await collector?.close();
        if (health !== undefined) {
          await new Promise<void>((resolve) => {
            health.close(() => resolve());
            health.closeAllConnections();
          });
        }
      },
    };
  }
}
