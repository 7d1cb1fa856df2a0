/**
 * The Sigstore bundles cosign 3 attached to an image, read back over plain HTTPS as a
 * verifier would find them: the OCI 1.1 referrers API where the registry has it, else the
 * `sha256-<hex>` tag index (go-containerregistry's fallback, what cosign 3 writes on the
 * distribution registry). Each referrer manifest has one layer, the bundle's JSON.
 */
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import type { TestRegistry } from './registry.ts';
import { MEDIA_TYPES, pull } from './registry-http.ts';

export const BUNDLE_V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';

type Registry = Pick<
  TestRegistry,
  'host' | 'ca' | 'auth' | 'username' | 'password' | 'tokenServer'
>;

export interface AttachedBundle {
  /** The referrer manifest's digest. */
  readonly manifest: string;
  readonly artifactType: string;
  /** The bundle's bytes as stored, and parsed. */
  readonly text: string;
  readonly bundle: JsonObject;
  /** For DSSE bundles: the in-toto statement inside the envelope. */
  readonly statement?: JsonObject;
}

const object = (value: unknown, what: string): JsonObject => {
  if (!isRecord(value)) throw new TypeError(`${what} is not a JSON object`);
  return value;
};
const list = (value: unknown, what: string): JsonObject[] => {
  if (!Array.isArray(value)) throw new TypeError(`${what} is not an array`);
  return value.map((item, i) => object(item, `${what}[${i}]`));
};

/** Every bundle attached to `digest` in `repo`, in the order the registry lists them. */
export async function attachedBundles(
  registry: Registry,
  repo: string,
  digest: string,
): Promise<AttachedBundle[]> {
  const referrers = await pull(registry, repo, `referrers/${digest}`, MEDIA_TYPES.ociIndex);
  const index =
    referrers.status === 200
      ? referrers
      : await pull(registry, repo, `manifests/${digest.replace(':', '-')}`, MEDIA_TYPES.ociIndex);
  if (index.status === 404) return [];
  if (index.status !== 200) throw new Error(`referrers of ${digest}: ${index.status}`);
  const found: AttachedBundle[] = [];
  for (const descriptor of list(object(index.json, 'index').manifests, 'manifests')) {
    const res = await pull(registry, repo, `manifests/${String(descriptor.digest)}`);
    const manifest = object(res.json, `manifest ${String(descriptor.digest)}`);
    if (manifest.artifactType !== BUNDLE_V03) continue;
    const [layer] = list(manifest.layers, 'layers');
    const blob = await pull(registry, repo, `blobs/${String(layer?.digest)}`, '*/*');
    const text = blob.body.toString('utf8');
    const bundle = object(JSON.parse(text), 'bundle');
    const envelope = isRecord(bundle.dsseEnvelope) ? bundle.dsseEnvelope : undefined;
    const statement =
      envelope === undefined
        ? undefined
        : object(
            JSON.parse(Buffer.from(String(envelope.payload), 'base64').toString()),
            'statement',
          );
    found.push({
      manifest: String(descriptor.digest),
      artifactType: String(manifest.artifactType),
      text,
      bundle,
      ...(statement === undefined ? {} : { statement }),
    });
  }
  return found;
}

/** `verificationMaterial.tlogEntries` of a bundle (JSON form). */
export function tlogEntries(bundle: JsonObject): JsonObject[] {
  const material = object(bundle.verificationMaterial, 'verificationMaterial');
  return material.tlogEntries === undefined ? [] : list(material.tlogEntries, 'tlogEntries');
}

/** `verificationMaterial.timestampVerificationData.rfc3161Timestamps` (JSON form). */
export function rfc3161Timestamps(bundle: JsonObject): JsonObject[] {
  const material = object(bundle.verificationMaterial, 'verificationMaterial');
  const data = material.timestampVerificationData;
  if (!isRecord(data) || data.rfc3161Timestamps === undefined) return [];
  return list(data.rfc3161Timestamps, 'rfc3161Timestamps');
}
