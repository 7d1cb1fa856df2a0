/**
 * OPA's OCI bundle layout, read through the registry client the gateway already has
 * (credentials, CAs, address policy, metrics): an image manifest whose one layer of type
 * `application/vnd.oci.image.layer.v1.tar+gzip` is the bundle archive (OPA's downloader
 * takes the first such layer; a second one is refused here rather than silently ignored).
 *
 * A poll costs one HEAD of the tag. Only a manifest digest that differs from the one in
 * service is fetched — manifest, then layer, each checked against its digest — so a
 * registry serving a thousand gateways sees a HEAD from each per interval.
 */
import type { RegistryClient } from '../registry/client.ts';
import { descriptors } from '../registry/oci.ts';
import { RegistryError } from '../registry/registry-error.ts';
import { isRecord } from '../shared/json.ts';
import type { RemoteLocation } from './bundle-location.ts';

export const BUNDLE_LAYER_TYPE = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const IMAGE_MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
/** The same limit the bundle reader puts on archives (policy/bundle.ts). */
const MAX_BUNDLE_BYTES = 32 * 1024 * 1024;

type OciLocation = Extract<RemoteLocation, { kind: 'oci' }>;

export type OciPoll =
  | { readonly changed: false; readonly manifestDigest: string }
  | {
      readonly changed: true;
      readonly manifestDigest: string;
      readonly layerDigest: string;
      readonly archive: Buffer;
    };

/**
 * The artifact the location names now: unchanged when its manifest digest is `current`,
 * else its bundle layer. Throws RegistryError when the registry fails or the artifact is
 * not an OPA bundle.
 */
export async function pollOciBundle(
  client: RegistryClient,
  location: OciLocation,
  current: string | undefined,
  signal: AbortSignal,
): Promise<OciPoll> {
  const { registry, repository, tag } = location;
  let manifestDigest = location.digest;
  if (manifestDigest === '') {
    const resolved = await client.resolve(registry, repository, tag, signal);
    manifestDigest = resolved.digest;
  }
  if (manifestDigest === current) return { changed: false, manifestDigest };
  const manifest = await client.manifest(registry, repository, manifestDigest, signal);
  const layer = bundleLayer(manifest.mediaType, manifest.body, location.display);
  if (layer.size > MAX_BUNDLE_BYTES) {
    throw new RegistryError(
      `${location.display}: the bundle layer is ${layer.size} bytes; at most ${MAX_BUNDLE_BYTES}`,
    );
  }
  const archive = await client.blob(registry, repository, layer.digest, MAX_BUNDLE_BYTES, signal);
  return { changed: true, manifestDigest, layerDigest: layer.digest, archive };
}

/** The one bundle layer of an OPA bundle manifest; anything else is refused with why. */
export function bundleLayer(
  mediaType: string,
  body: Buffer,
  display: string,
): { digest: string; size: number } {
  let manifest: unknown;
  try {
    manifest = JSON.parse(body.toString('utf8'));
  } catch {
    throw new RegistryError(`${display}: the manifest is not JSON`);
  }
  if (!isRecord(manifest)) throw new RegistryError(`${display}: the manifest is not an object`);
  const type = mediaType || (typeof manifest.mediaType === 'string' ? manifest.mediaType : '');
  if (type !== IMAGE_MANIFEST_TYPE) {
    throw new RegistryError(
      `${display} is ${type === '' ? 'not an OCI image manifest' : `a ${type}`}; an OPA bundle is an OCI image manifest (${IMAGE_MANIFEST_TYPE})`,
    );
  }
  const layers = descriptors(manifest.layers, 64).filter((d) => d.mediaType === BUNDLE_LAYER_TYPE);
  const [only, ...more] = layers;
  if (only === undefined) {
    throw new RegistryError(
      `${display} has no ${BUNDLE_LAYER_TYPE} layer: push the bundle with that media type (README, "Run a fleet")`,
    );
  }
  if (more.length > 0) {
    throw new RegistryError(
      `${display} has ${layers.length} bundle layers; an OPA bundle artifact has one`,
    );
  }
  return { digest: only.digest, size: only.size };
}
