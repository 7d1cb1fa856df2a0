/**
 * One poll of each kind of remote source, in the shape RemoteBundle asks for: an OCI
 * artifact (through the registry client, its cosign signature checked when required) or
 * an OPA bundle service.
 */
import { createHash } from 'node:crypto';
import type { RegistryClient } from '../registry/client.ts';
import { type ArtifactVerification, verifyArtifact } from './artifact-signature.ts';
import type { RemoteLocation } from './bundle-location.ts';
import type { BundleServiceClient } from './http-bundle.ts';
import { pollOciBundle } from './oci-bundle.ts';
import type { Fetcher } from './remote-bundle.ts';

export function ociFetcher(
  client: RegistryClient,
  location: Extract<RemoteLocation, { kind: 'oci' }>,
  /** What the artifact's cosign signature is checked with; undefined: not checked. */
  verification: () => Promise<ArtifactVerification | undefined>,
): Fetcher {
  return async (current, signal) => {
    const polled = await pollOciBundle(client, location, current, signal);
    if (!polled.changed) return { changed: false, version: polled.manifestDigest };
    // Checked before the archive is handed on: an unsigned artifact is never loaded.
    const required = await verification();
    const artifactSignature =
      required === undefined
        ? undefined
        : await verifyArtifact(
            client,
            location.registry,
            location.repository,
            polled.manifestDigest,
            required,
            signal,
          );
    return {
      changed: true,
      version: polled.manifestDigest,
      archive: polled.archive,
      ...(artifactSignature === undefined ? {} : { artifactSignature }),
    };
  };
}

export function serviceFetcher(client: BundleServiceClient): Fetcher {
  return async (current, signal) => {
    const polled = await client.poll(current, signal);
    if (!polled.changed) return { changed: false, version: polled.etag, longPoll: polled.longPoll };
    // A server that sends no ETag is compared by content instead.
    const version =
      polled.etag || `sha256:${createHash('sha256').update(polled.archive).digest('hex')}`;
    return { changed: true, version, archive: polled.archive, longPoll: polled.longPoll };
  };
}
