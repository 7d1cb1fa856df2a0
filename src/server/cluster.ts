/**
 * `serve --workers N`: one wasm instance per core. An instance is single-threaded, so one
 * event loop caps the gateway at one core; node:cluster shares the HTTPS port among N
 * workers, each a complete gateway with its own engine and file watches. The primary owns
 * what must be one: the self-signed certificate, the health port (readiness of every
 * worker, metrics summed over all of them), restarts, and the SIGTERM drain.
 */
import cluster, { type Worker } from 'node:cluster';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AggregatorRegistry } from 'prom-client';
import { isRecord } from '../shared/json.ts';
import type { Logger } from '../shared/logger.ts';
import { ensureDevCertificates } from '../tls/dev-certs.ts';
import { type Gateway, type GatewayStatus, type ServeOptions, startGateway } from './gateway.ts';
import { createHealthApp } from './health.ts';

const OPTIONS_ENV = 'IMAGEGATE_WORKER_OPTIONS';
/** A worker's own drain is 25 s; past this it is killed. */
const WORKER_GRACE_MS = 30_000;

interface StatusMessage {
  readonly type: 'imagegate-status';
  readonly status: GatewayStatus;
}

function isStatusMessage(message: unknown): message is StatusMessage {
  return isRecord(message) && message.type === 'imagegate-status' && isRecord(message.status);
}

export function isClusterWorker(): boolean {
  return cluster.isWorker && process.env[OPTIONS_ENV] !== undefined;
}

/** In a worker: the gateway without a health port, reporting its status to the primary. */
export async function startWorker(logger: Logger): Promise<Gateway> {
  const options = JSON.parse(process.env[OPTIONS_ENV] ?? '{}') as ServeOptions;
  const gateway = await startGateway(
    {
      ...options,
      healthPort: null,
      onStatus: (status) =>
        process.send?.({ type: 'imagegate-status', status } satisfies StatusMessage),
    },
    logger.child({ worker: cluster.worker?.id }),
  );
  // Constructing one installs the listener that answers the primary's metrics requests
  // (prom-client lib/cluster.js addListeners); setRegistries says which registry to send.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([gateway.metrics.registry]);
  return gateway;
}

export interface Primary {
  readonly healthPort: number;
  readonly caPath: string | undefined;
  /** Readiness false, workers drain and exit, then the health port closes. */
  close(): Promise<void>;
}

export async function startPrimary(
  options: ServeOptions,
  workers: number,
  logger: Logger,
): Promise<Primary> {
  let caPath: string | undefined;
  let shared = options;
  if (options.tlsCert === undefined || options.tlsKey === undefined) {
    // One certificate for all workers, made before any of them starts.
    const dev = await ensureDevCertificates(options.stateDir);
    caPath = dev.caPath;
    shared = { ...options, tlsCert: dev.certPath, tlsKey: dev.keyPath };
    logger.info(
      { ca: dev.caPath, created: dev.createdCa },
      'serving with a self-signed certificate; trust this CA to call the gateway',
    );
  }
  const { onStatus: _ignored, ...serializable } = shared;
  const env = { [OPTIONS_ENV]: JSON.stringify({ ...serializable, healthPort: null }) };
  const statuses = new Map<number, GatewayStatus>();
  let accepting = true;

  const fork = (): Worker => {
    const worker = cluster.fork(env);
    worker.on('message', (message: unknown) => {
      if (isStatusMessage(message)) statuses.set(worker.id, message.status);
    });
    return worker;
  };
  cluster.on('exit', (worker, code, signal) => {
    statuses.delete(worker.id);
    if (!accepting) return;
    logger.error({ worker: worker.id, code, signal }, 'worker exited; starting another');
    setTimeout(fork, 1000).unref();
  });
  const aggregator = new AggregatorRegistry();
  const app = createHealthApp({
    readiness() {
      const all = [...statuses.values()];
      return {
        ready: accepting && all.length === workers && all.every((s) => s.revision !== ''),
        shuttingDown: !accepting,
        workers: workers,
        reporting: all.length,
        statuses: all,
      };
    },
    async metrics() {
      return { contentType: aggregator.contentType, text: await aggregator.clusterMetrics() };
    },
  });
  const health = createServer(app.callback());
  health.listen(options.healthPort ?? 0, options.host);
  await once(health, 'listening');
  const healthPort = (health.address() as AddressInfo).port;
  // Workers only once the health port is ours: a primary that fails to start leaves none.
  for (let i = 0; i < workers; i++) fork();
  logger.info({ port: options.port, healthPort, workers }, 'imagegate serving with workers');

  return {
    healthPort,
    caPath,
    async close() {
      accepting = false;
      const exits = Object.values(cluster.workers ?? {}).map(async (worker) => {
        if (worker === undefined) return;
        // A worker may already be gone (a terminal's Ctrl-C reaches the whole group).
        const exited = new Promise<void>((resolve) => {
          if (worker.isDead()) resolve();
          worker.once('exit', () => resolve());
        });
        if (!worker.isDead()) worker.process.kill('SIGTERM');
        const timer = setTimeout(() => worker.process.kill('SIGKILL'), WORKER_GRACE_MS);
        await exited;
        clearTimeout(timer);
      });
      await Promise.all(exits);
      await new Promise<void>((resolve) => {
        health.close(() => resolve());
        health.closeAllConnections();
      });
    },
  };
}
