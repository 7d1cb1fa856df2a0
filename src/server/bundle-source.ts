/**
 * A remote bundle source as the gateway runs it: the fetcher for its kind (an OCI
 * artifact through the registry client, or an OPA bundle service), where the last good
 * bundle is kept, how often it is asked, and its status in metrics.
 */
import { readFile } from 'node:fs/promises';
import type { ArtifactVerification } from '../distribution/artifact-signature.ts';
import type { RemoteLocation } from '../distribution/bundle-location.ts';
import { ociFetcher, serviceFetcher } from '../distribution/fetchers.ts';
import { BundleServiceClient, type BundleServiceOptions } from '../distribution/http-bundle.ts';
import { type Fetcher, RemoteBundle } from '../distribution/remote-bundle.ts';
import { loadKey } from '../registry/keys.ts';
import { loadTrustRoot } from '../registry/trust-roots.ts';
import type { PollTiming } from '../shared/backoff.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import type { Logger } from '../shared/logger.ts';
import type { Metrics } from '../shared/metrics.ts';
import type { RegistryFacts } from './registry-facts.ts';

export interface RemoteSourceOptions {
  readonly timing: PollTiming;
  /** Where the last good bundle is kept (a writable volume); none: not kept. */
  readonly persistDir?: string | undefined;
  /** Bundle service: auth, CAs, long polling. */
  readonly service: Omit<BundleServiceOptions, 'ca'> & { readonly caFiles: readonly string[] };
  /** OCI: the artifact must carry a cosign signature by one of these keys (PEM files). */
  readonly artifactKeys: readonly string[];
  /** OCI: a trusted_root.json checking that signature's transparency-log entry. */
  readonly artifactTrustRoot?: string | undefined;
}

export interface StartedSource {
  readonly remote: RemoteBundle;
  close(): Promise<void>;
}

export async function startBundleSource(
  location: RemoteLocation,
  options: RemoteSourceOptions,
  deps: { facts: RegistryFacts; metrics: Metrics; logger: Logger; changed: () => void },
): Promise<StartedSource> {
  let fetch: Fetcher;
  let close = async (): Promise<void> => undefined;
  if (location.kind === 'oci') {
    const client = deps.facts.clientFor(location.registry);
    // Keys and the trust root are read for every new artifact: they rotate without a restart.
    const verification =
      options.artifactKeys.length === 0
        ? async () => undefined
        : () => artifactVerification(options);
    fetch = ociFetcher(client, location, verification);
  } else {
    const ca = await Promise.all(
      options.service.caFiles.map(async (file) => {
        try {
          return await readFile(file, 'utf8');
        } catch (error) {
          throw new Error(`cannot read --bundle-ca ${file}: ${describeThrown(error)}`);
        }
      }),
    );
    const client = await BundleServiceClient.create(location.url, { ...options.service, ca });
    fetch = serviceFetcher(client);
    close = () => client.close();
  }
  const { metrics } = deps;
  let shown: Record<string, string> | undefined;
  const remote: RemoteBundle = new RemoteBundle({
    location,
    fetch,
    timing: options.timing,
    // A registry poll is a HEAD, and on a new digest a manifest and a layer of at most
    // 32 MiB; a bundle service's request may be held for the long poll's wait.
    pollBudgetMs:
      location.kind === 'oci'
        ? 60_000
        : options.service.timeoutMs * 2 + options.service.longPollSeconds * 1000,
    persistDir: options.persistDir,
    logger: deps.logger,
    observe: (result) => metrics.bundleRequests.inc({ kind: location.kind, result }),
    changed: () => {
      const status = remote.status;
      const labels = {
        kind: status.kind,
        source: status.location,
        origin: status.origin ?? 'none',
      };
      if (shown !== undefined && shown.origin !== labels.origin) metrics.bundleSource.remove(shown);
      metrics.bundleSource.set(labels, 1);
      shown = labels;
      if (status.lastSuccessfulRequest !== undefined) {
        metrics.bundleLastSuccess.set(Date.parse(status.lastSuccessfulRequest) / 1000);
      }
      metrics.bundleFailures.set(status.consecutiveFailures);
      deps.changed();
    },
  });
  return {
    remote,
    async close() {
      remote.stop();
      await close();
    },
  };
}

async function artifactVerification(options: RemoteSourceOptions): Promise<ArtifactVerification> {
  const keys = await Promise.all(options.artifactKeys.map((file) => loadKey(file)));
  const root = options.artifactTrustRoot;
  return {
    keys,
    ...(root === undefined ? {} : { trustRoot: await loadTrustRoot('bundle', root) }),
  };
}
