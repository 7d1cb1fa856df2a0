/**
 * What the fleet tests share: bundle variants that decide differently (the committed
 * bundle with another revision and another trusted registry), an OPA bundle pushed to a
 * real registry by the real oras with the media types OPA's OCI layout names, and a pod
 * review to tell which policy answers.
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readBundleArchive } from '../../src/policy/bundle.ts';
import { isRecord } from '../../src/shared/json.ts';
import { committedBundleBytes, packBundle } from './bundles.ts';
import type { TestRegistry } from './registry.ts';
import { runTool } from './registry-tools.ts';
import { type Teardown, tempDir } from './teardown.ts';

export const OCI_CONFIG_TYPE = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER_TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';

/**
 * The committed bundle with `revision` in its manifest and `trusted` as the only trusted
 * registry: reviews of `trusted/app:1` pass under it and fail under any other variant.
 */
export async function variantBundle(
  revision: string,
  trusted: string,
  more: Record<string, unknown> = {},
): Promise<Buffer> {
  const files = new Map((await readBundleArchive(await committedBundleBytes())).files);
  const manifest: unknown = JSON.parse(files.get('.manifest')?.toString('utf8') ?? '{}');
  const data: unknown = JSON.parse(files.get('data.json')?.toString('utf8') ?? '{}');
  if (!isRecord(manifest) || !isRecord(data) || !isRecord(data.imagegate)) {
    throw new Error('variantBundle: the committed bundle is not as expected');
  }
  const config = data.imagegate.config;
  if (!isRecord(config)) throw new Error('variantBundle: no data.imagegate.config');
  config.trustedRegistries = [trusted];
  Object.assign(config, more);
  files.set('.manifest', Buffer.from(JSON.stringify({ ...manifest, revision })));
  files.set('data.json', Buffer.from(JSON.stringify(data)));
  return packBundle(files);
}

/**
 * `oras push` of a bundle archive as OPA documents it: an empty config of the OCI image
 * config type and the archive as the one tar+gzip layer. Returns the manifest digest.
 */
export async function orasPushBundle(
  t: Teardown,
  registry: Pick<TestRegistry, 'tools' | 'env' | 'host'>,
  repositoryAndTag: string,
  archive: Buffer,
): Promise<string> {
  const dir = await tempDir(t, 'imagegate-oras-');
  await writeFile(join(dir, 'bundle.tar.gz'), archive);
  await writeFile(join(dir, 'config.json'), '{}');
  const { stdout } = await runTool(
    registry.tools.oras,
    [
      'push',
      `${registry.host}/${repositoryAndTag}`,
      '--config',
      `config.json:${OCI_CONFIG_TYPE}`,
      `bundle.tar.gz:${OCI_LAYER_TYPE}`,
    ],
    registry.env,
    { cwd: dir },
  );
  const digest = /Digest: (sha256:[0-9a-f]{64})/.exec(stdout)?.[1];
  if (digest === undefined) throw new Error(`oras push printed no digest:\n${stdout}`);
  return digest;
}

/** A validating AdmissionReview of a Pod with one image, pulled Always. */
export function podReview(image: string): unknown {
  const uid = randomUUID();
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'shop',
      operation: 'CREATE',
      userInfo: { username: 'fleet-test' },
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'web', namespace: 'shop' },
        spec: { containers: [{ name: 'web', image, imagePullPolicy: 'Always' }] },
      },
    },
  };
}
