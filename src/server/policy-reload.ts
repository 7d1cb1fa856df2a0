/**
 * The policy in service and how it changes: the first load (which must succeed), then a
 * watch on the bundle, the configuration and the verification key. A reload builds a
 * whole engine before the holder swaps to it; a refused one leaves the previous engine
 * serving and shows why in the logs, the metrics and /readyz.
 */
import { resolveBundlePath } from '../policy/bundle.ts';
import type { ConfigInForce, PolicyEngine } from '../policy/engine.ts';
import type { PolicyHolder } from '../policy/holder.ts';
import { type LoadedPolicy, loadPolicy, type PolicySource } from '../policy/loader.ts';
import { keyFiles } from '../registry/keys.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import { fingerprint, type Watch, watchContent } from '../shared/file-watch.ts';
import type { Logger } from '../shared/logger.ts';
import type { Metrics } from '../shared/metrics.ts';

export interface PolicyReloadDeps {
  readonly source: PolicySource;
  readonly policy: PolicyHolder;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly intervalMs: number;
  /** Told after the first load and after every reload or refusal. */
  readonly changed: () => void;
  /** How a policy is loaded (tests slow it down or change files meanwhile). */
  readonly load?: (source: PolicySource) => Promise<LoadedPolicy>;
  /**
   * Builds a loaded policy wherever else it must serve (every evaluation thread) and
   * returns the commit that swaps them all to it; throws when any cannot, and then the
   * policy is refused everywhere.
   */
  readonly prepare?: (loaded: LoadedPolicy) => Promise<() => void>;
}

/** Loads the policy into the holder (throwing when it cannot), then watches its files. */
export async function servePolicy(deps: PolicyReloadDeps): Promise<Watch> {
  const { source, policy, metrics, logger } = deps;
  const load = deps.load ?? loadPolicy;
  const policyFiles = async () => [
    await resolveBundlePath(source.bundle).catch(() => source.bundle),
    ...(source.config === undefined ? [] : [source.config]),
    ...(source.verification === undefined ? [] : [source.verification.keyFile]),
    // The signature keys the configuration in force names: a rotated key is reloaded.
    ...keyFiles([...(policy.engine?.keys.keys() ?? [])]),
    // And the trust roots: a rotated trusted_root.json is reloaded the same way.
    ...[...(policy.engine?.trustRoots.values() ?? [])].map((root) => root.file),
  ];
  // Fingerprinted before the first load reads them: a change that lands while it loads
  // (or before the first poll) differs from this and is picked up.
  const loadedFrom = await fingerprint(await policyFiles());
  // The first load must succeed: there is no last good policy to fall back on yet.
  const loaded = await load(source);
  const { engine, signature } = loaded;
  const commit = await deps.prepare?.(loaded);
  policy.swap(engine, source.bundle);
  commit?.();
  deps.changed();
  showServing(metrics, undefined, engine);
  logger.info(
    {
      bundle: source.bundle,
      revision: engine.revision,
      entrypoints: engine.entrypoints,
      signature,
    },
    'policy loaded',
  );
  warnAbout(logger, engine);

  return watchContent(policyFiles, loadedFrom, deps.intervalMs, async () => {
    try {
      const loaded = await load(source);
      const next = loaded.engine;
      const commit = await deps.prepare?.(loaded);
      const previous = policy.engine;
      policy.swap(next, source.bundle);
      commit?.();
      deps.changed();
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
      warnAbout(logger, next);
    } catch (error) {
      policy.refuse(source.bundle, describeThrown(error));
      deps.changed();
      metrics.reloads.inc({ kind: 'policy', result: 'refused' });
      logger.error(
        { error: describeThrown(error), serving: policy.engine?.revision },
        'policy reload refused; the previous policy keeps serving',
      );
    }
  });
}

/** What loads but is rarely meant: logged at every load, shown in /readyz (`config.warnings`). */
function warnAbout(logger: Logger, engine: PolicyEngine): void {
  for (const warning of engine.config.warnings) logger.warn({ warning }, 'configuration warning');
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
