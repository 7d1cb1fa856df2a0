/**
 * Registry facts in the gateway: one registry client and fact cache per process, the
 * credentials file watched, and the step between building a review's input and
 * evaluating it — ask the policy which facts it needs, gather them within the review's
 * budget, put them on the images. The engine in service says which registries may be
 * contacted and which keys verify.
 */
import { readFile } from 'node:fs/promises';
import type { FactsStep, PolicyEngine } from '../policy/engine.ts';
import type { PolicyHolder } from '../policy/holder.ts';
import { type AddressPolicy, addressPolicy, type RegistrySettings } from '../registry/addresses.ts';
import { RegistryClient } from '../registry/client.ts';
import { type Credentials, parseDockerConfig } from '../registry/credentials.ts';
import { FactSource } from '../registry/facts.ts';
import { RegistryHttp } from '../registry/http.ts';
import { RegistryError } from '../registry/registry-error.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import { fingerprint, type Watch, watchContent } from '../shared/file-watch.ts';
import type { Logger } from '../shared/logger.ts';
import type { Metrics } from '../shared/metrics.ts';
import { factsStep, type GatherFacts } from './facts-step.ts';

export interface RegistryOptions {
  /** A `.dockerconfigjson` (watched). */
  readonly credentials?: string | undefined;
  /** Extra CA bundles (PEM), beside the system's. */
  readonly ca?: readonly string[] | undefined;
  /** One registry request, at most (connect, headers, body each). */
  readonly requestTimeoutMs?: number | undefined;
  /** All the facts of one review, at most: well inside the webhook's timeout. */
  readonly budgetMs?: number | undefined;
  /** Requests per second per registry, at most (the audit's budget); none: unlimited. */
  readonly ratePerSecond?: number | undefined;
}

/** deploy/ sets webhooks' timeoutSeconds to 5: facts take at most 3 of them (docs/registries.md). */
export const DEFAULT_BUDGET_MS = 3_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 2_000;

export interface RegistryFacts {
  /**
   * A client for one registry the operator named outside the configuration (an OCI
   * bundle's): the same credentials, CAs and metrics, and an address policy that allows
   * that registry alone — on a private network too, since no pod author chose it.
   */
  readonly clientFor: (registry: string) => RegistryClient;
  /**
   * An HTTP client for hosts the operator named outside the registries (TUF mirrors) under
   * their own address policy: the same CAs (rotated with them), its own request timeout.
   */
  readonly httpFor: (policy: () => AddressPolicy, requestTimeoutMs: number) => RegistryHttp;
  readonly gather: GatherFacts;
  /** The input with the facts this decision needs on its images (itself when none). */
  readonly withFacts: FactsStep;
  readonly budgetMs: number;
  close(): Promise<void>;
}

const NO_POLICY: AddressPolicy = addressPolicy([]);

export async function startRegistryFacts(
  options: RegistryOptions,
  deps: { policy: PolicyHolder; metrics: Metrics; logger: Logger; intervalMs: number },
): Promise<RegistryFacts> {
  const caFiles = options.ca ?? [];
  const readCa = () => readRegistryCa(caFiles);
  const caFingerprint = caFiles.length > 0 ? await fingerprint(caFiles) : '';
  const ca = await readCa();
  let credentials: Credentials = new Map();
  const watches: Watch[] = [];
  const file = options.credentials;
  if (file !== undefined) {
    const read = async () => parseDockerConfig(await readCredentials(file), file);
    const initial = await fingerprint([file]);
    credentials = await read();
    deps.logger.info({ file, registries: [...credentials.keys()] }, 'registry credentials loaded');
    watches.push(
      watchContent(
        async () => [file],
        initial,
        deps.intervalMs,
        async () => {
          try {
            credentials = await read();
            deps.metrics.reloads.inc({ kind: 'credentials', result: 'ok' });
            deps.logger.info(
              { file, registries: [...credentials.keys()] },
              'registry credentials reloaded',
            );
          } catch (error) {
            deps.metrics.reloads.inc({ kind: 'credentials', result: 'refused' });
            deps.logger.error(
              { file, error: describeThrown(error) },
              'registry credentials refused; the previous ones stay in use',
            );
          }
        },
      ),
    );
  }

  // The engine in service names the registries; policies are cached per engine.
  const policies = new WeakMap<PolicyEngine, AddressPolicy>();
  const policy = (): AddressPolicy => {
    const engine = deps.policy.engine;
    if (engine === undefined) return NO_POLICY;
    let found = policies.get(engine);
    if (found === undefined) {
      found = addressPolicy(engine.registries, engine.registrySettings);
      policies.set(engine, found);
    }
    return found;
  };
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const budgetMs = options.budgetMs ?? DEFAULT_BUDGET_MS;
  const http = new RegistryHttp({ policy, ca, requestTimeoutMs });
  /** Every pool of every client, for a rotated CA and for close(). */
  const pools = [http];
  let currentCa = ca;
  if (caFiles.length > 0) {
    // A rotated CA bundle (a ConfigMap the kubelet refreshes) is used for new connections.
    watches.push(
      watchContent(
        async () => caFiles,
        caFingerprint,
        deps.intervalMs,
        async () => {
          try {
            currentCa = await readCa();
            for (const pool of pools) pool.setCa(currentCa);
            deps.metrics.reloads.inc({ kind: 'registry-ca', result: 'ok' });
            deps.logger.info({ files: caFiles }, 'registry CAs reloaded');
          } catch (error) {
            deps.metrics.reloads.inc({ kind: 'registry-ca', result: 'refused' });
            deps.logger.error(
              { error: describeThrown(error) },
              'registry CAs refused; the previous ones stay in use',
            );
          }
        },
      ),
    );
  }
  const clientOver = (over: RegistryHttp) =>
    new RegistryClient({
      http: over,
      credentials: () => credentials,
      ...(options.ratePerSecond === undefined ? {} : { ratePerSecond: options.ratePerSecond }),
      observe: (registry, kind, outcome, seconds) => {
        deps.metrics.registryRequests.inc({ registry, kind, outcome });
        deps.metrics.registryDuration.observe({ registry, kind }, seconds);
      },
      observeQueue: {
        queued: (registry, delta) => deps.metrics.registryQueued.inc({ registry }, delta),
        waited: (registry, seconds) =>
          deps.metrics.registryQueueWait.observe({ registry }, seconds),
      },
    });
  const client = clientOver(http);
  const clientFor = (registry: string) => {
    const settings = new Map<string, RegistrySettings>([
      [registry.toLowerCase(), { network: 'private' }],
    ]);
    const named = addressPolicy([registry], settings);
    const own = new RegistryHttp({ policy: () => named, ca: currentCa, requestTimeoutMs });
    pools.push(own);
    return clientOver(own);
  };
  const httpFor = (own: () => AddressPolicy, timeoutMs: number) => {
    const http = new RegistryHttp({ policy: own, ca: currentCa, requestTimeoutMs: timeoutMs });
    pools.push(http);
    return http;
  };
  const facts = new FactSource({
    client,
    policy,
    verification: (id) => {
      const found = deps.policy.engine?.verifications.get(id);
      if (found === undefined) throw new RegistryError(`signature requirement ${id} is not loaded`);
      return found;
    },
    observeCache: (kind, hit) =>
      deps.metrics.factsCache.inc({ kind, result: hit ? 'hit' : 'miss' }),
  });

  const unwatch = deps.metrics.registryTables.watch(() => ({
    ...client.tables(),
    ...facts.tables(),
  }));

  const gather: GatherFacts = async (requests, namespace, decision, cachedOnly = false) => {
    // A guess read from the caches is no gathering: the histogram is the registry's time.
    if (cachedOnly) return facts.cached(requests, namespace);
    const stop = deps.metrics.factsDuration.startTimer({ decision });
    try {
      return { facts: await facts.gather(requests, budgetMs, namespace) };
    } finally {
      stop();
    }
  };
  return {
    clientFor,
    httpFor,
    budgetMs,
    gather,
    withFacts: factsStep(gather),
    async close() {
      unwatch();
      for (const watch of watches) watch.stop();
      await Promise.all(pools.map((pool) => pool.close()));
    },
  };
}

/** The --registry-ca files' PEM, each read whole. */
export function readRegistryCa(files: readonly string[]): Promise<string[]> {
  return Promise.all(
    files.map(async (path) => {
      try {
        return await readFile(path, 'utf8');
      } catch (error) {
        throw new RegistryError(`cannot read --registry-ca ${path}: ${describeThrown(error)}`, {
          cause: error,
        });
      }
    }),
  );
}

async function readCredentials(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new RegistryError(
      `cannot read --registry-credentials ${file}: ${describeThrown(error)}`,
      { cause: error },
    );
  }
}
