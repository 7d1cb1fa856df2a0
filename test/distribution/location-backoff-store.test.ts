/** The pure parts of remote sources: --bundle parsing, poll delays, the last good bundle on disk. */
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { parseBundleLocation } from '../../src/distribution/bundle-location.ts';
import { loadPersisted, saveBundle } from '../../src/distribution/bundle-store.ts';
import { bundleLayer } from '../../src/distribution/oci-bundle.ts';
import { nextDelay } from '../../src/shared/backoff.ts';
import { InputError } from '../../src/shared/input-error.ts';
import { tempDir } from '../helpers/teardown.ts';

const DIGEST = `sha256:${'a'.repeat(64)}`;

test('--bundle: files, oci:// by tag or digest, https://', (t) => {
  t.deepEqual(parseBundleLocation('/etc/imagegate/bundle'), {
    kind: 'file',
    path: '/etc/imagegate/bundle',
  });
  t.like(parseBundleLocation('oci://Registry.Example.com:5000/policy/imagegate:1.4'), {
    kind: 'oci',
    registry: 'registry.example.com:5000',
    repository: 'policy/imagegate',
    tag: '1.4',
    digest: '',
    display: 'oci://registry.example.com:5000/policy/imagegate:1.4',
  });
  t.like(parseBundleLocation(`oci://localhost/imagegate@${DIGEST}`), {
    registry: 'localhost',
    repository: 'imagegate',
    tag: '',
    digest: DIGEST,
  });
  t.like(parseBundleLocation('https://bundles.example.com/v1/imagegate.tar.gz'), {
    kind: 'http',
    display: 'https://bundles.example.com/v1/imagegate.tar.gz',
  });
});

for (const [value, why] of [
  ['oci://policy/imagegate:1', /write the registry host/],
  ['oci://imagegate:1', /write the registry host/],
  ['oci://registry.example.com/policy/imagegate', /name a tag or a digest/],
  ['oci://registry.example.com/policy/imagegate@md5:abc', /digest/],
  ['http://bundles.example.com/b.tar.gz', /https only/],
  ['https://user:pw@bundles.example.com/b.tar.gz', /credentials do not belong/],
  ['s3://bucket/b.tar.gz', /only oci:\/\/ and https:\/\//],
] as const) {
  test(`--bundle ${value} is refused`, (t) => {
    const error = t.throws(() => parseBundleLocation(value), { instanceOf: InputError });
    t.regex(error?.message ?? '', why);
    t.false((error?.message ?? '').includes('pw@'), 'never echoes credentials');
  });
}

test('poll delays: the interval ±10%; after failures exponential with equal jitter, capped', (t) => {
  const timing = { intervalMs: 60_000, maxBackoffMs: 120_000 };
  t.is(
    nextDelay(timing, 0, () => 0),
    54_000,
  );
  t.is(
    nextDelay(timing, 0, () => 1),
    66_000,
  );
  t.is(
    nextDelay(timing, 1, () => 0),
    500,
  );
  t.is(
    nextDelay(timing, 1, () => 1),
    1_000,
  );
  t.is(
    nextDelay(timing, 4, () => 1),
    8_000,
  );
  t.is(
    nextDelay(timing, 40, () => 0),
    60_000,
  );
  t.is(
    nextDelay(timing, 40, () => 1),
    120_000,
  );
  // A short interval retries no later than it polls.
  t.is(
    nextDelay({ intervalMs: 200, maxBackoffMs: 400 }, 1, () => 1),
    200,
  );
});

test('the last good bundle: kept per source, refused when its archive changed on disk', async (t) => {
  const root = await tempDir(t, 'imagegate-store-');
  const meta = {
    source: 'oci://registry.example.com/policy/imagegate:1',
    revision: 'r1',
    version: DIGEST,
    fetchedAt: '2026-12-07T10:00:00.000Z',
    activatedAt: '2026-12-07T10:00:01.000Z',
  };
  await saveBundle(root, Buffer.from('archive-1'), meta);
  const kept = await loadPersisted(root, meta.source);
  t.false('missing' in kept);
  if (!('missing' in kept)) {
    t.is(kept.archive.toString(), 'archive-1');
    t.like(kept.meta, { revision: 'r1', version: DIGEST });
  }
  const other = await loadPersisted(root, 'https://bundles.example.com/b.tar.gz');
  t.true('missing' in other);

  // The archive replaced behind the gateway's back: not served.
  const dirs = await readdir(root);
  await writeFile(join(root, dirs[0] ?? '', 'bundle.tar.gz'), 'something else');
  const tampered = await loadPersisted(root, meta.source);
  t.regex('missing' in tampered ? tampered.missing : '', /does not match its recorded SHA-256/);
});

test('an OCI artifact that is not one OPA bundle layer is refused with why', (t) => {
  const layer = (mediaType: string) => ({ mediaType, digest: DIGEST, size: 10 });
  const manifest = (layers: unknown[]) => Buffer.from(JSON.stringify({ schemaVersion: 2, layers }));
  const type = 'application/vnd.oci.image.manifest.v1+json';
  t.deepEqual(
    bundleLayer(type, manifest([layer('application/vnd.oci.image.layer.v1.tar+gzip')]), 'x'),
    { digest: DIGEST, size: 10 },
  );
  t.throws(
    () => bundleLayer(type, manifest([layer('application/vnd.oci.image.layer.v1.tar')]), 'x'),
    {
      message: /no application\/vnd\.oci\.image\.layer\.v1\.tar\+gzip layer/,
    },
  );
  const two = [
    layer('application/vnd.oci.image.layer.v1.tar+gzip'),
    layer('application/vnd.oci.image.layer.v1.tar+gzip'),
  ];
  t.throws(() => bundleLayer(type, manifest(two), 'x'), { message: /2 bundle layers/ });
  t.throws(() => bundleLayer('application/vnd.oci.image.index.v1+json', manifest([]), 'x'), {
    message: /an OPA bundle is an OCI image manifest/,
  });
});
