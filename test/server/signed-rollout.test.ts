/**
 * Signed bundles end to end: a gateway started with --verification-key serves a bundle
 * signed by the real `opa build --signing-key`, refuses a tampered or unsigned one swapped
 * into its ConfigMap while the old policy keeps serving, and takes a correctly signed one.
 */
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { readBundleArchive } from '../../src/policy/bundle.ts';
import { BundleError } from '../../src/policy/bundle-error.ts';
import { startGateway } from '../../src/server/gateway.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { defaultBundlePath } from '../../src/shared/paths.ts';
import { packBundle } from '../helpers/bundles.ts';
import { imagegate } from '../helpers/cli.ts';
import { kubeletSwap, mountConfigMap, startLocalGateway, until } from '../helpers/configmap.ts';
import { buildSignedBundle, testKey } from '../helpers/signing.ts';

const key = testKey('ES256');

async function keyFile(pem: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'imagegate-key-'));
  const path = join(dir, 'bundle-signing.pub.pem');
  await writeFile(path, pem);
  return path;
}

/** The same archive with data.json changed and the signature kept. */
async function tampered(bundle: Buffer): Promise<Buffer> {
  const files = new Map((await readBundleArchive(bundle)).files);
  const data = JSON.parse(files.get('data.json')?.toString('utf8') ?? '{}') as {
    imagegate: { config: { trustedRegistries: string[] } };
  };
  data.imagegate.config.trustedRegistries.push('docker.io');
  files.set('data.json', Buffer.from(JSON.stringify(data)));
  return packBundle(files);
}

test('a tampered or unsigned bundle is refused and the signed policy keeps serving', async (t) => {
  const signed = await buildSignedBundle(key);
  const mount = await mountConfigMap(signed);
  t.teardown(() => rm(mount, { recursive: true, force: true }));
  const verification = { keyFile: await keyFile(key.publicPem), algorithm: 'ES256' };
  const { gateway } = await startLocalGateway(t, { bundle: mount, verification });
  const serving = gateway.policy.engine?.bundleDigest;
  t.truthy(serving);

  await kubeletSwap(mount, await tampered(signed));
  await until(() => gateway.policy.lastLoad?.ok === false, 'the tampered bundle to be refused');
  t.regex(gateway.policy.lastLoad?.error ?? '', /data\.json/);
  t.is(gateway.policy.engine?.bundleDigest, serving, 'the signed policy keeps serving');

  await kubeletSwap(mount, await readFile(defaultBundlePath()));
  await until(
    () =>
      gateway.policy.lastLoad?.ok === false &&
      /not signed/i.test(gateway.policy.lastLoad.error ?? ''),
    'the unsigned bundle to be refused',
  );
  t.is(gateway.policy.engine?.bundleDigest, serving);

  const resigned = await buildSignedBundle(key, { keyId: 'rollout-2' });
  await kubeletSwap(mount, resigned);
  await until(() => gateway.policy.lastLoad?.ok === true, 'the newly signed bundle to load');
  t.not(gateway.policy.engine?.bundleDigest, serving);

  const metrics = await gateway.metrics.registry.getSingleMetricAsString('imagegate_reloads_total');
  t.regex(metrics, /kind="policy",result="refused"\} 2/);
  t.regex(metrics, /kind="policy",result="ok"\} 1/);
});

test('serve refuses to start on an unsigned bundle when a key is set', async (t) => {
  const state = await mkdtemp(join(tmpdir(), 'imagegate-state-'));
  await t.throwsAsync(
    startGateway(
      {
        port: 0,
        healthPort: 0,
        host: '127.0.0.1',
        bundle: defaultBundlePath(),
        config: undefined,
        tlsCert: undefined,
        tlsKey: undefined,
        clientCa: undefined,
        stateDir: state,
        verification: { keyFile: await keyFile(key.publicPem), algorithm: 'ES256' },
      },
      createLogger('silent'),
    ),
    { instanceOf: BundleError, message: /not signed/i },
  );
});

test('bundle inspect and check verify with --verification-key', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imagegate-signed-'));
  const bundle = join(dir, 'signed.tar.gz');
  await writeFile(bundle, await buildSignedBundle(key));
  const pub = await keyFile(key.publicPem);
  const wrong = await keyFile(testKey('ES256').publicPem);
  const flags = (file: string) => ['--verification-key', file, '--verification-alg', 'ES256'];

  const verified = await imagegate(['bundle', 'inspect', bundle, ...flags(pub)]);
  t.is(verified.code, 0, verified.stderr);
  t.regex(verified.stdout, /^signature: +verified \(key id default, \d+ files\)$/m);

  const invalid = await imagegate(['bundle', 'inspect', bundle, ...flags(wrong)]);
  t.is(invalid.code, 1);
  t.regex(invalid.stdout, /^signature: +INVALID: /m);

  const unverified = await imagegate(['bundle', 'inspect', bundle]);
  t.regex(unverified.stdout, /^signature: +signed \(not verified: no --verification-key\)$/m);

  const pod = 'docs/examples/pod-fixed.yaml';
  t.is((await imagegate(['check', '-f', pod, '--bundle', bundle, ...flags(pub)])).code, 0);
  const unsigned = await imagegate(['check', '-f', pod, ...flags(pub)]);
  t.is(unsigned.code, 2);
  t.regex(unsigned.stderr, /not signed/i);
  const configmap = await imagegate(['bundle', 'configmap', '--bundle', bundle, ...flags(wrong)]);
  t.is(configmap.code, 2);
  t.is(configmap.stdout, '');
});

// SECURITY.md 1.4: the key file is trusted as it stands at every load, so it rotates
// without a restart — and whoever can write it decides which bundles load. Keep it out of
// the bundle writers' reach.
test('the verification key rotates: a new key refuses the old signature, then takes its own', async (t) => {
  const [oldKey, newKey] = [key, testKey('ES256')];
  const signedOld = await buildSignedBundle(oldKey);
  const mount = await mountConfigMap(signedOld);
  t.teardown(() => rm(mount, { recursive: true, force: true }));
  const keyPath = await keyFile(oldKey.publicPem);
  const verification = { keyFile: keyPath, algorithm: 'ES256' };
  const { gateway } = await startLocalGateway(t, { bundle: mount, verification });
  const serving = gateway.policy.engine?.bundleDigest;
  t.truthy(serving);

  await writeFile(`${keyPath}.tmp`, newKey.publicPem);
  await rename(`${keyPath}.tmp`, keyPath);
  await until(() => gateway.policy.lastLoad?.ok === false, 'the old signature to be refused');
  t.regex(gateway.policy.lastLoad?.error ?? '', /signature|verif/i);
  t.is(gateway.policy.engine?.bundleDigest, serving, 'the last good policy keeps serving');

  const signedNew = await buildSignedBundle(newKey, { keyId: 'rotated' });
  await kubeletSwap(mount, signedNew);
  await until(() => gateway.policy.lastLoad?.ok === true, 'the bundle signed by the new key');
  t.not(gateway.policy.engine?.bundleDigest, serving);
});
