/**
 * A cosign signature on the OCI bundle artifact itself, checked by the same code that
 * checks images (registry/cosign.ts): either format cosign writes, a configured key, and
 * the transparency-log entry when a trust root is given. OPA checks only the JWT inside
 * the bundle (`.signatures.json`); this is the check a platform team already runs on its
 * images, applied to the policy that judges them. Both may be required at once.
 */
import type { RegistryClient } from '../registry/client.ts';
import { findArtifacts, judgeFound } from '../registry/cosign.ts';
import type { PublicKeyRef } from '../registry/keys.ts';
import { RegistryError } from '../registry/registry-error.ts';
import { buildVerification, type Verification } from '../registry/sigstore/verification.ts';
import type { LoadedTrustRoot } from '../registry/trust-roots.ts';

export interface ArtifactVerification {
  /** Keys any one of which must have signed the artifact's manifest digest. */
  readonly keys: readonly PublicKeyRef[];
  /** Checks a cosign 3 bundle's transparency-log entry when given. */
  readonly trustRoot?: LoadedTrustRoot | undefined;
}

/** The artifact check as a `signatures` entry: its keys, its root, cosign's defaults. */
function asEntry(verification: ArtifactVerification): Verification {
  const keys = new Map(verification.keys.map((key) => [key.name, key]));
  const root = verification.trustRoot;
  return buildVerification(
    'bundle-artifact',
    {
      keys: [...keys.keys()],
      identities: [],
      attestations: [],
      ...(root === undefined ? {} : { trustRoot: root.name }),
    },
    keys,
    new Map(root === undefined ? [] : [[root.name, root]]),
  );
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
  const entry = asEntry(verification);
  const found = await findArtifacts(
    client,
    registry,
    repository,
    digest,
    { signal },
    {
      attestations: false,
    },
  );
  const outcome = judgeFound(found, digest, entry).signature;
  if (!outcome.verified) {
    const detail = outcome.detail === undefined ? '' : ` (${outcome.detail})`;
    throw new RegistryError(
      `${registry}/${repository}@${digest}: cosign signature required: ${outcome.reason}${detail}`,
    );
  }
  const log =
    outcome.transparencyLog === undefined ? '' : `, transparency log ${outcome.transparencyLog}`;
  return `${outcome.signers.join(', ')} (${outcome.format}${log})`;
}
