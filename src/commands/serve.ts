/**
 * `imagegate serve`: the gateway. `startGateway` wires everything and returns a handle, so
 * tests run the real HTTPS server in-process; signals stay in cli.ts.
 */
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import { resolveBundlePath } from '../bundle.ts';
import { ensureDevCertificates } from '../dev-certs.ts';
import type { ConfigInForce, PolicyEngine } from '../engine.ts';
import { describeThrown } from '../errors/engine-error.ts';
import { fingerprint, type Watch, watchContent } from '../file-watch.ts';
import type { Logger } from '../logger.ts';
import { createMetrics, type Metrics } from '../metrics.ts';
import { type LoadStatus, PolicyHolder } from '../policy-holder.ts';
import { loadPolicy, type VerificationSettings } from '../policy-loader.ts';
import { createApp, DEFAULT_MAX_BODY_BYTES } from '../server/app.ts';
import { createHealthApp, gatewayHealth, type TlsStatus } from '../server/health.ts';

export interface ServeOptions {
  readonly port: number;
  /** null: no health server (a cluster worker; the primary serves health for all). */
  readonly healthPort: number | null;
  readonly host: string;
  readonly bundle: string;
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
  /** Told after every load, reload or refusal (cluster workers report to the primary). */
  readonly onStatus?: (status: GatewayStatus) => void;
}

export interface GatewayStatus {
  readonly revision: string;
  readonly bundleDigest: string;
  readonly config: ConfigInForce | null;
  readonly lastLoad: LoadStatus | undefined;
  readonly tls: TlsStatus | undefined;
}

export interface Gateway {
  readonly port: number;
  readonly healthPort: number | null;
  readonly policy: PolicyHolder;
  readonly metrics: Metrics;
  readonly caPath: string | undefined;
  /** Stops accepting, lets in-flight requests finish, closes both servers. */
  close(graceMs?: number): Promise<void>;
}

export async function startGateway(options: ServeOptions, logger: Logger): Promise<Gateway> {
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) {
    throw new Error('--tls-cert and --tls-key go together');
  }
  const metrics = createMetrics();
  const policy = new PolicyHolder();
  let tlsStatus: TlsStatus | undefined;
  const report = () =>
    options.onStatus?.({
      revision: policy.engine?.revision ?? '',
      bundleDigest: policy.engine?.bundleDigest ?? '',
      config: policy.engine?.config ?? null,
      lastLoad: policy.lastLoad,
      tls: tlsStatus,
    });
  const watches: Watch[] = [];
  const interval = options.watchIntervalMs ?? 2000;

  // The first load must succeed: there is no last good policy to fall back on yet.
  const source = {
    bundle: options.bundle,
    config: options.config,
    verification: options.verification,
  };
  const { engine, signature } = await loadPolicy(source);
  policy.swap(engine, options.bundle);
  report();
  showServing(metrics, undefined, engine);
  logger.info(
    {
      bundle: options.bundle,
      revision: engine.revision,
      entrypoints: engine.entrypoints,
      signature,
    },
    'policy loaded',
  );

  const policyFiles = async () => [
    await resolveBundlePath(options.bundle).catch(() => options.bundle),
    ...(options.config === undefined ? [] : [options.config]),
    ...(options.verification === undefined ? [] : [options.verification.keyFile]),
  ];
  watches.push(
    watchContent(policyFiles, await fingerprint(await policyFiles()), interval, async () => {
      try {
        const { engine: next } = await loadPolicy(source);
        const previous = policy.engine;
        policy.swap(next, options.bundle);
        report();
        showServing(metrics, previous, next);
        metrics.reloads.inc({ kind: 'policy', result: 'ok' });
        logger.info(
          {
            revision: next.revision,
            previous: previous?.revision,
            config: next.config,
            previousConfig: previous?.config.digest,
          },
          'policy reloaded',
        );
      } catch (error) {
        policy.refuse(options.bundle, describeThrown(error));
        report();
        metrics.reloads.inc({ kind: 'policy', result: 'refused' });
        logger.error(
          { error: describeThrown(error), serving: policy.engine?.revision },
          'policy reload refused; the previous policy keeps serving',
        );
      }
    }),
  );

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
  const tlsFiles = { cert: certPath, key: keyPath, clientCa: options.clientCa };
  // The client CA is read with the pair and rotates with it: a kube-apiserver client
  // certificate from a new CA is accepted without a restart.
  const readTls = async () => {
    const pair = { cert: await readFile(tlsFiles.cert), key: await readFile(tlsFiles.key) };
    return tlsFiles.clientCa === undefined
      ? pair
      : { ...pair, ca: await readFile(tlsFiles.clientCa) };
  };
  /** Records a TLS load: `served` is the certificate now in use when it changed. */
  const tlsLoaded = (served: Buffer | undefined, problem?: string) => {
    const at = new Date().toISOString();
    tlsStatus = {
      cert: tlsFiles.cert,
      clientCa: tlsFiles.clientCa ?? null,
      notAfter: served === undefined ? (tlsStatus?.notAfter ?? '') : notAfter(served),
      lastLoad:
        problem === undefined
          ? { source: tlsFiles.cert, at, ok: true }
          : { source: tlsFiles.cert, at, ok: false, error: problem },
    };
    report();
  };
  const initialTls = await readTls();
  // A client CA that holds no certificate would refuse every client: a configuration error.
  if ('ca' in initialTls) {
    const problem = clientCaProblem(initialTls.ca);
    if (problem !== undefined) throw new Error(`--client-ca ${tlsFiles.clientCa}: ${problem}`);
  }
  const initialProblem = validityProblem(initialTls.cert);
  // Serving anyway lets a rotation fix it without a restart; say so loudly.
  if (initialProblem !== undefined) logger.error({ cert: tlsFiles.cert }, initialProblem);
  tlsLoaded(initialTls.cert, initialProblem);

  const headersTimeoutMs = options.headersTimeoutMs ?? 10_000;
  const requestTimeoutMs = Math.max(options.requestTimeoutMs ?? 30_000, headersTimeoutMs);
  let accepting = true;
  const app = createApp({
    policy,
    logger,
    metrics,
    maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    draining: () => !accepting,
  });
  const https: HttpsServer = createHttpsServer(
    {
      ...initialTls,
      minVersion: 'TLSv1.2',
      ...(tlsFiles.clientCa === undefined ? {} : { requestCert: true, rejectUnauthorized: true }),
      // A slow client must not hold a socket for ever (slowloris). Node checks the
      // deadlines every connectionsCheckingInterval (30 s by default), so that is tied to
      // them: otherwise a cut-off could lag by up to 30 s.
      requestTimeout: requestTimeoutMs,
      headersTimeout: headersTimeoutMs,
      connectionsCheckingInterval: Math.max(100, Math.min(headersTimeoutMs, requestTimeoutMs) / 4),
      // A client that never finishes its TLS handshake holds a socket too (Node: 120 s).
      handshakeTimeout: headersTimeoutMs,
    },
    app.callback(),
  );
  https.keepAliveTimeout = 60_000;
  const watchedTls = [
    tlsFiles.cert,
    tlsFiles.key,
    ...(tlsFiles.clientCa ? [tlsFiles.clientCa] : []),
  ];
  watches.push(
    watchContent(
      async () => watchedTls,
      await fingerprint(watchedTls),
      interval,
      async () => {
        try {
          const material = await readTls();
          createSecureContext(material); // throws on a key that does not match its certificate
          // An expired pair, or a client CA without a certificate, would fail every new
          // connection (the API server's): keep the last good files instead.
          const problem =
            validityProblem(material.cert) ??
            ('ca' in material ? clientCaProblem(material.ca) : undefined);
          if (problem !== undefined) throw new Error(problem);
          https.setSecureContext({ ...material, minVersion: 'TLSv1.2' });
          metrics.reloads.inc({ kind: 'certificate', result: 'ok' });
          logger.info(
            { cert: tlsFiles.cert, clientCa: tlsFiles.clientCa },
            'serving certificate reloaded',
          );
          tlsLoaded(material.cert);
        } catch (error) {
          metrics.reloads.inc({ kind: 'certificate', result: 'refused' });
          logger.error(
            { error: describeThrown(error) },
            'serving certificate reload refused; the previous one stays',
          );
          tlsLoaded(undefined, describeThrown(error));
        }
      },
    ),
  );

  const health: HttpServer | undefined =
    options.healthPort === null
      ? undefined
      : createHttpServer(
          createHealthApp(
            gatewayHealth({ policy, metrics, accepting: () => accepting, tls: () => tlsStatus }),
          ).callback(),
        );

  https.listen(options.port, options.host);
  if (health !== undefined) health.listen(options.healthPort ?? 0, options.host);
  await Promise.all([once(https, 'listening'), ...(health ? [once(health, 'listening')] : [])]);
  const port = (https.address() as AddressInfo).port;
  const healthPort = health === undefined ? null : (health.address() as AddressInfo).port;
  logger.info(
    { port, healthPort, clientAuth: tlsFiles.clientCa !== undefined },
    'imagegate serving',
  );

  return {
    port,
    healthPort,
    policy,
    metrics,
    caPath,
    async close(graceMs = 25_000) {
      accepting = false;
      for (const watch of watches) watch.stop();
      const closed = new Promise<void>((resolve) => https.close(() => resolve()));
      // Connections that finish their request while draining are closed by the
      // Connection: close header; sweep the ones that were idle in between as well.
      const sweep = setInterval(() => https.closeIdleConnections(), 50);
      https.closeIdleConnections();
      const timer = setTimeout(() => https.closeAllConnections(), graceMs);
      await closed;
      clearInterval(sweep);
      clearTimeout(timer);
      if (health !== undefined) {
        await new Promise<void>((resolve) => {
          health.close(() => resolve());
          health.closeAllConnections();
        });
      }
    },
  };
}

/** Why a certificate cannot serve now (expired, not yet valid, unparseable), if it cannot. */
export function validityProblem(pem: Buffer | string, now = Date.now()): string | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch (error) {
    return `the certificate does not parse: ${describeThrown(error)}`;
  }
  if (Date.parse(cert.validTo) <= now) return `the certificate expired at ${cert.validTo}`;
  if (Date.parse(cert.validFrom) > now)
    return `the certificate is not valid before ${cert.validFrom}`;
  return undefined;
}

function notAfter(pem: Buffer): string {
  try {
    return new X509Certificate(pem).validTo;
  } catch {
    return '';
  }
}

/** Why a client CA bundle cannot verify anyone: no certificate in it, or one that does not parse. */
export function clientCaProblem(pem: Buffer | string): string | undefined {
  const blocks =
    pem.toString().match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) return 'the client CA file holds no PEM certificate';
  for (const [index, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (error) {
      return `certificate ${index + 1} of the client CA file does not parse: ${describeThrown(error)}`;
    }
  }
  return undefined;
}

/** The `*_info` gauges name exactly the bundle and configuration serving now. */
function showServing(metrics: Metrics, previous: PolicyEngine | undefined, next: PolicyEngine) {
  if (previous !== undefined) {
    metrics.bundleInfo.remove({ revision: previous.revision, digest: previous.bundleDigest });
    metrics.configInfo.remove(configLabels(previous.config));
  }
  metrics.bundleInfo.set({ revision: next.revision, digest: next.bundleDigest }, 1);
  metrics.configInfo.set(configLabels(next.config), 1);
}

function configLabels(config: ConfigInForce) {
  return {
    digest: config.digest,
    enforcement: config.enforcement,
    break_glass: String(config.breakGlass),
  };
}
