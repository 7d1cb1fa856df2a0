/**
 * A cosign signature on the OCI bundle artifact itself, checked by the same code that
 * checks images (registry/cosign.ts): either format cosign writes, a configured key, and
 * the transparency-log entry when a trust root is given. OPA checks only the JWT inside
 * the bundle (`.signatures.json`); this is the check a platform team already runs on its
 * images, applied to the policy that judges them. Both may be required at once.
 */
import type { RegistryClient } from '../registry/client.ts';
import { checkSignatures } from '../registry/cosign.ts';
import type { PublicKeyRef } from '../registry/keys.ts';
import { RegistryError } from '../registry/registry-error.ts';
import type { LoadedTrustRoot } from '../registry/trust-roots.ts';

export interface ArtifactVerification {
  /** Keys any one of which must have signed the artifact's manifest digest. */
  readonly keys: readonly PublicKeyRef[];
  /** Checks a cosign 3 bundle's transparency-log entry when given. */
  readonly trustRoot?: LoadedTrustRoot | undefined;
}

/** Resolves with what verified it ("bundle-signing.pub (bundle)"); throws with why not. */
export async function verifyArtifact(
  client: RegistryClient,
  registry: string,
  repository: string,
  digest: string,
  verification: ArtifactVerification,
  signal: AbortSignal,
): Promise<string> {
  const root = verification.trustRoot;
  const outcome = await checkSignatures(
    client,
    registry,
    repository,
    digest,
    verification.keys,
    { signal },
    root === undefined ? undefined : { name: root.name, tlogs: root.material.tlogs },
  );
  if (!outcome.verified) {
    const detail = outcome.detail === undefined ? '' : ` (${outcome.detail})`;
    throw new RegistryError(
      `${registry}/${repository}@${digest}: cosign signature required: ${outcome.reason}${detail}`,
    );
  }
  const log =
    outcome.transparencyLog === undefined ? '' : `, transparency log ${outcome.transparencyLog}`;
  return `${outcome.key} (${outcome.format}${log})`;
}
