/**
 * `imagegate serve`: one gateway on one event loop, or with `--workers N` a primary that
 * shares the HTTPS port among N gateway workers (server/cluster.ts). A process forked as
 * a worker always becomes one. Flags, signals and exit codes stay in cli.ts.
 */
import { isClusterWorker, startPrimary, startWorker } from '../server/cluster.ts';
import { type ServeOptions, startGateway } from '../server/gateway.ts';
import type { Logger } from '../shared/logger.ts';

export interface Serving {
  /** The HTTPS port actually bound (the option's, in a cluster). */
  readonly port: number;
  /** The self-signed CA when no certificate was given, to tell the user. */
  readonly caPath: string | undefined;
  /** Readiness goes false, in-flight reviews finish, the servers close. */
  stop(): Promise<void>;
}

export async function startServing(
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
