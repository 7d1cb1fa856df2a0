/**
 * `imagegate check` with registry facts: it asks the registry as the gateway does (pins
 * shown as mutations, unsigned images denied), and with --offline asks nothing and lists
 * each image it could not verify instead.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { imagegate } from '../helpers/cli.ts';
import { tempDir } from '../helpers/gateway.ts';
import { generateKeyPair, pushImage, signImage, startRegistry } from '../helpers/registry.ts';
import { registryTest } from '../helpers/registry-test.ts';

const test = await registryTest('test/registry/check');

test('check pins and verifies through the registry; --offline says what went unverified', async (t) => {
  const registry = await startRegistry(t, { auth: 'none' });
  const dir = await tempDir(t);
  const key = await generateKeyPair(dir);
  const signed = await pushImage(registry, 'prod/signed', 'v1');
  await signImage(registry, signed.reference, key, { cosign: 'v3' });
  const unsigned = await pushImage(registry, 'prod/unsigned', 'v1');
  const pod = (name: string, image: string) =>
    `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}}\nspec:\n  containers: [{name: app, image: "${image}", imagePullPolicy: Always}]\n`;
  const manifests = join(dir, 'pods.yaml');
  await writeFile(
    manifests,
    [
      pod('signed', `${registry.host}/prod/signed:v1`),
      pod('unsigned', `${registry.host}/prod/unsigned:v1`),
    ].join('---\n'),
  );
  const config = join(dir, 'config.yaml');
  await writeFile(
    config,
    `trustedRegistries: [${registry.host}]\npinDigests: pods\nsignatures: [{images: [${registry.host}/prod], keys: [${key.publicKey}]}]\n`,
  );
  const ca = join(dir, 'registry-ca.crt');
  await writeFile(ca, registry.ca);

  const online = await imagegate([
    'check',
    '-f',
    manifests,
    '--config',
    config,
    '--registry-ca',
    ca,
  ]);
  t.is(online.code, 1, online.stderr);
  t.true(
    online.stdout.includes(
      `ALLOWED Pod default/signed (${manifests}#1)\n  mutated: container "app" (containers[0]) image "${registry.host}/prod/signed:v1": pinned to "${registry.host}/prod/signed:v1@${signed.digest}"`,
    ),
    online.stdout,
  );
  t.true(
    online.stdout.includes(
      `  denied:  container "app" (containers[0]) image "${registry.host}/prod/unsigned:v1@${unsigned.digest}": signature required (${registry.host}/prod): no signature`,
    ),
    online.stdout,
  );

  await registry.stop();
  const offline = await imagegate(['check', '-f', manifests, '--config', config, '--offline']);
  // Nothing denied, but two images went unverified: not a pass.
  t.is(offline.code, 1, offline.stdout + offline.stderr);
  t.true(
    offline.stdout.includes(
      `  unverified: ${registry.host}/prod/unsigned:v1: tag not resolved, so not pinned (--offline)\n  unverified: ${registry.host}/prod/unsigned:v1: signature not verified (--offline)`,
    ),
    offline.stdout,
  );
  const accepted = await imagegate([
    'check',
    '-f',
    manifests,
    '--config',
    config,
    '--offline',
    '--allow-unverified',
  ]);
  t.is(accepted.code, 0, accepted.stdout + accepted.stderr);
});
