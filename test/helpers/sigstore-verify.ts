/**
 * Verifying the bed's bundles from Node with @sigstore/verify 4.1.x, the calls a production
 * verifier can copy (sigstore.ts's doc comment says which options each kind of bundle
 * needs, and why). The trusted root is the bed's trusted_root.json, parsed by
 * @sigstore/protobuf-specs' TrustedRoot.fromJSON (base64 → bytes, RFC 3339 → Date), then
 * toTrustMaterial; the bundle goes through @sigstore/bundle's bundleFromJSON, which
 * validates its shape, and toSignedEntity.
 */
import { createPublicKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { bundleFromJSON } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import {
  type Signer,
  type TrustMaterial,
  toSignedEntity,
  toTrustMaterial,
  type VerificationPolicy,
  Verifier,
  type VerifierOptions,
} from '@sigstore/verify';

export async function loadTrustedRoot(path: string): Promise<TrustedRoot> {
  return TrustedRoot.fromJSON(JSON.parse(await readFile(path, 'utf8')));
}

export interface Expected {
  /** Keyed: the PEM public key (SPKI) that must have signed, whatever the bundle's hint. */
  readonly key?: string;
  /** Keyless: the certificate's SAN and OIDC issuer (extension 1.3.6.1.4.1.57264.1.8). */
  readonly identity?: { readonly subjectAlternativeName: string | RegExp; readonly issuer: string };
  /** Defaults: one tlog entry, no SCT (the bed's Fulcio has no CT log), no timestamp. */
  readonly options?: VerifierOptions;
}

/**
 * Trust material for one configured key: every hint finds that key (a verifier must not let
 * the bundle choose it), valid at any time.
 */
export function keyedTrustMaterial(root: TrustedRoot, pem: string): TrustMaterial {
  const publicKey = createPublicKey(pem);
  return toTrustMaterial(root, () => ({ publicKey, validFor: () => true }));
}

/** Verifies a bundle (JSON) against the bed's root; throws @sigstore/verify's errors. */
export function verifyBundle(root: TrustedRoot, bundleJson: unknown, expected: Expected): Signer {
  const bundle = bundleFromJSON(bundleJson);
  const material =
    expected.key === undefined ? toTrustMaterial(root) : keyedTrustMaterial(root, expected.key);
  const options: VerifierOptions = {
    tlogThreshold: 1,
    ctlogThreshold: 0,
    timestampThreshold: 0,
    ...expected.options,
  };
  const policy: VerificationPolicy | undefined =
    expected.identity === undefined
      ? undefined
      : {
          subjectAlternativeName: expected.identity.subjectAlternativeName,
          extensions: { issuer: expected.identity.issuer },
        };
  return new Verifier(material, options).verify(toSignedEntity(bundle), policy);
}
