/**
 * The audit with registry facts, against the real distribution registry: a running pod
 * whose image no configured key signed fails its signature rule, a signed one passes, and
 * a pod that runs by tag fails pinning (the audit pins nothing: it reports).
 */

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { auditObject } from '../../src/audit/evaluate.ts';
import { PolicyHolder } from '../../src/policy/holder.ts';
import { loadPolicy } from '../../src/policy/loader.ts';
import { startRegistryFacts } from '../../src/server/registry-facts.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createMetrics } from '../../src/shared/metrics.ts';
import { defaultBundlePath } from '../../src/shared/paths.ts';
import { tempDir } from '../helpers/gateway.ts';
import { generateKeyPair, pushImage, signImage, startRegistry } from '../helpers/registry.ts';
import { registryTest } from '../helpers/registry-test.ts';

const test = await registryTest('test/registry/audit');

test('running pods: unsigned fails, signed passes, by tag fails pinning', async (t) => {
  const registry = await startRegistry(t, { auth: 'none' });
  const dir = await tempDir(t);
  const key = await generateKeyPair(dir);
  const signed = await pushImage(registry, 'prod/signed', 'v1');
  await signImage(registry, signed.reference, key, { cosign: 'v2' });
  const unsigned = await pushImage(registry, 'prod/unsigned', 'v1');
  const config = join(dir, 'config.yaml');
  await writeFile(
    config,
    `trustedRegistries: ["${registry.host}"]\npinDigests: pods\nsignatures: [{images: ["${registry.host}/prod"], keys: [${key.publicKey}]}]\n`,
  );
  const ca = join(dir, 'ca.crt');
  await writeFile(ca, registry.ca);
  const { engine } = await loadPolicy({ bundle: defaultBundlePath(), config });
  const policy = new PolicyHolder();
  policy.swap(engine, 'test');
  const facts = await startRegistryFacts(
    { ca: [ca], ratePerSecond: 5, budgetMs: 30_000 },
    {
      policy,
      metrics: createMetrics({ processMetrics: false }),
      logger: createLogger('silent'),
      intervalMs: 60_000,
    },
  );
  t.teardown(() => facts.close());
  const pod = (name: string, image: string) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'shop', uid: name },
    spec: { containers: [{ name: 'app', image, imagePullPolicy: 'Always' }] },
    status: { phase: 'Running' },
  });
  const audit = async (name: string, image: string) =>
    (
      await auditObject(engine, pod(name, image), { apiVersion: 'v1', kind: 'Pod' }, (e, input) =>
        facts.withFacts(e, input, 'validate'),
      )
    )?.results.map((r) => [r.rule, r.result, r.message.replace(/^.*": /, '')]);
  t.deepEqual(await audit('signed', signed.reference), [
    ['images', 'pass', 'every image passes the policy'],
  ]);
  t.deepEqual(await audit('unsigned', unsigned.reference), [
    ['signature', 'fail', `signature required (${registry.host}/prod): no signature`],
  ]);
  t.deepEqual(await audit('by-tag', `${signed.repository}:v1`), [
    [
      'pin-digest',
      'fail',
      `not pinned to a digest (pinDigests); the tag names ${signed.digest} but the mutating webhook did not pin it`,
    ],
  ]);
});
