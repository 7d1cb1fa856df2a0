/**
 * The policy in service when `--bundle` names a remote source (distribution/): the source
 * is asked at start, its last good bundle kept on disk is served when it cannot answer,
 * and it is polled from then on; the configuration and keys are watched as for a file
 * bundle, a change rebuilding the policy from the archive in service. Activations are
 * serialised, so a slow one never swaps in after a newer one.
 *
 * Unlike a file bundle, a remote source that has never delivered does not stop the
 * gateway from starting: it serves no policy (not ready, every review denied, 500 inside —
 * fail closed, as SPEC says of a gateway without a policy) and keeps asking.
 */
import type { RemoteBundle } from '../distribution/remote-bundle.ts';
import type { PolicyEngine } from '../policy/engine.ts';
import { fingerprint, watchContent } from '../shared/file-watch.ts';
import { serial } from '../shared/serial.ts';
import {
  configFiles,
  type PolicyReloadDeps,
  type PolicyWatch,
  reloadPolicy,
} from './policy-reload.ts';

export async function serveRemotePolicy(
  deps: PolicyReloadDeps,
  remote: RemoteBundle,
): Promise<PolicyWatch> {
  const { source, policy } = deps;
  const serially = serial();
  const files = async () => configFiles(source, policy);
  const loadedFrom = await fingerprint(await files());
  const serving = await remote.start((archive, about) =>
    serially(async () => {
      const engine: PolicyEngine | undefined = await reloadPolicy(
        deps,
        { ...source, archive },
        { source: source.bundle, origin: about.origin, version: about.version },
      );
      return engine === undefined ? { ok: false } : { ok: true, revision: engine.revision };
    }),
  );
  if (!serving) {
    deps.logger.error(
      { source: source.bundle },
      'no policy: the bundle source did not deliver one and none is kept on disk; not ready, reviews fail closed, still asking',
    );
  }
  const rebuild = (reason: string) =>
    serially(async () => {
      const archive = remote.serving;
      // Nothing serves yet: the next bundle fetched is built with the new configuration.
      if (archive === undefined) return;
      await reloadPolicy(deps, { ...source, archive }, { source: source.bundle, reason });
    });
  const watch = watchContent(files, loadedFrom, deps.intervalMs, () => rebuild('configuration'));
  return {
    stop() {
      remote.stop();
      watch.stop();
    },
    reload: rebuild,
  };
}
