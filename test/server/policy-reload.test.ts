/**
 * The policy's files are fingerprinted before the first load reads them, so a change that
 * lands while the gateway starts (a ConfigMap updated during a rollout) is not missed.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { PolicyHolder } from '../../src/policy/holder.ts';
import { loadPolicy } from '../../src/policy/loader.ts';
import { servePolicy } from '../../src/server/policy-reload.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createMetrics } from '../../src/shared/metrics.ts';
import { defaultBundlePath } from '../../src/shared/paths.ts';
import { poll, tempDir } from '../helpers/gateway.ts';

test('a configuration changed during the first load is picked up by the watch', async (t) => {
  const dir = await tempDir(t);
  const config = join(dir, 'config.yaml');
  await writeFile(config, 'enforcement: deny\n');
  const policy = new PolicyHolder();
  const watch = await servePolicy({
    source: { bundle: defaultBundlePath(), config },
    policy,
    metrics: createMetrics(),
    logger: createLogger('silent'),
    intervalMs: 20,
    changed: () => {},
    // The first load has read the files; the change lands before the first poll.
    load: async (source) => {
      const loaded = await loadPolicy(source);
      if (policy.engine === undefined) await writeFile(config, 'enforcement: warn\n');
      return loaded;
    },
  });
  t.teardown(() => watch.stop());
  t.is(policy.engine?.config.enforcement, 'deny', 'what the first load read');
  const reloaded = await poll(async () => {
    const enforcement = policy.engine?.config.enforcement;
    return enforcement === 'warn' ? enforcement : undefined;
  }, 'the change to be loaded');
  t.is(reloaded, 'warn');
});
