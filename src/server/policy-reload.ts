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
import { serial } from '../shared/serial.ts';

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

/** The files a policy is built from besides its bundle: a change to any reloads it. */
export function configFiles(source: PolicySource, policy: PolicyHolder): string[] {
  return [
    ...(source.config === undefined ? [] : [source.config]),
    ...(source.verification === undefined ? [] : [source.verification.keyFile]),
    // The signature keys the configuration in force names: a rotated key is reloaded.
    ...keyFiles([...(policy.engine?.keys.keys() ?? [])]),
    // And the trust roots: a rotated trusted_root.json (or pinned TUF root.json) is
    // reloaded the same way.
    ...[...(policy.engine?.trustRoots.values() ?? [])].map((root) => root.file),
  ];
}

/** A policy's watch, and a reload on demand (a trust root kept in TUF changed). */
export interface PolicyWatch extends Watch {
  /** Rebuilds the policy in service, after any reload under way. */
  reload(reason: string): Promise<void>;
}

/** Loads the policy into the holder (throwing when it cannot), then watches its files. */
export async function servePolicy(deps: PolicyReloadDeps): Promise<PolicyWatch> {
  const { source, policy, metrics, logger } = deps;
  const load = deps.load ?? loadPolicy;
  const policyFiles = async () => [
    await resolveBundlePath(source.bundle).catch(() => source.bundle),
    ...configFiles(source, policy),
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

  const serially = serial();
  const watch = watchContent(policyFiles, loadedFrom, deps.intervalMs, async () => {
    await serially(() => reloadPolicy(deps, source));
  });
  return {
    stop: () => watch.stop(),
    reload: async (reason) => {
      await serially(() => reloadPolicy(deps, source, { reason }));
    },
  };
}

/**
 * Loads `source` and swaps it in everywhere (holder and evaluation threads); a policy that
 * fails to load, verify or smoke-evaluate is refused — the previous one keeps serving —
 * and the refusal recorded (logs, metrics, /readyz). Never throws. `about` is logged.
 */
export async function reloadPolicy(
  deps: PolicyReloadDeps,
  source: PolicySource,
  about: Record<string, unknown> = {},
): Promise<PolicyEngine | undefined> {
  const { policy, metrics, logger } = deps;
  const load = deps.load ?? loadPolicy;
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
        ...about,
        revision: next.revision,
        previous: previous?.revision,
        signature: loaded.signature,
        config: next.config,
        previousConfig: previous?.config.digest,
      },
      previous === undefined ? 'policy loaded' : 'policy reloaded',
    );
    warnAbout(logger, next);
    return next;
  } catch (error) {
    policy.refuse(source.bundle, describeThrown(error));
    deps.changed();
    metrics.reloads.inc({ kind: 'policy', result: 'refused' });
    logger.error(
      { ...about, error: describeThrown(error), serving: policy.engine?.revision ?? null },
      policy.engine === undefined
        ? 'policy refused; no policy serves yet (not ready, reviews fail closed)'
        : 'policy reload refused; the previous policy keeps serving',
    );
    return undefined;
  }
}

/** What loads but is rarely meant: logged at every load, shown in /readyz (`config.warnings`). */
function warnAbout(logger: Logger, engine: PolicyEngine): void {
  for (const warning of engine.config.warnings) logger.warn({ warning }, 'configuration warning');
}

/** The `*_info` gauges name exactly the bundle and configuration serving now. */
export function showServing(
  metrics: Metrics,
  previous: PolicyEngine | undefined,
  next: PolicyEngine,
) {
  if (previous !== undefined) {
    metrics.bundleInfo.remove({ revision: previous.revision, digest: previous.bundleDigest });
    metrics.configInfo.remove(configLabels(previous.config));
  }
  metrics.bundleInfo.set({ revision: next.revision, digest: next.bundleDigest }, 1);
  metrics.bundleActivated.set(Date.now() / 1000);
  metrics.configInfo.set(configLabels(next.config), 1);
}

function configLabels(config: ConfigInForce) {
  return {
    digest: config.digest,
    enforcement: config.enforcement,
    break_glass: String(config.breakGlass),
  };
}
