/**
 * Attestations as policy input: an in-toto statement about the image (SLSA provenance, a
 * vulnerability scan, an SBOM), verified like a signature, then handed to the policy as
 * `{type, digest, signer, statement}`. The statement is bounded (64 KiB of JSON): a larger
 * one is listed by type and digest with the statement left out, so a pod cannot make the
 * policy input (and the wasm memory) as large as an SBOM. Types are predicate type URIs;
 * cosign's short names (`cosign attest --type`) are accepted in the configuration.
 */
import type { JsonObject } from '../../shared/json.ts';

/** cosign's `--type` names (cosign/pkg/cosign/attestation: the predicate types it writes). */
export const COSIGN_TYPES: Readonly<Record<string, string>> = {
  slsaprovenance: 'https://slsa.dev/provenance/v0.2',
  slsaprovenance02: 'https://slsa.dev/provenance/v0.2',
  slsaprovenance1: 'https://slsa.dev/provenance/v1',
  spdx: 'https://spdx.dev/Document',
  spdxjson: 'https://spdx.dev/Document',
  cyclonedx: 'https://cyclonedx.org/bom',
  vuln: 'https://cosign.sigstore.dev/attestation/vuln/v1',
  openvex: 'https://openvex.dev/ns',
  custom: 'https://cosign.sigstore.dev/attestation/v1',
};

/** A predicate type URI, for a cosign short name or a URI. */
export const predicateType = (type: string) => COSIGN_TYPES[type] ?? type;

export const MAX_STATEMENT_BYTES = 64 * 1024;

export interface AttestationRequirement {
  /** The predicate type URI. */
  readonly type: string;
  /** Whether the default policy refuses an image without it (false: read for the policy). */
  readonly required: boolean;
}

export interface VerifiedAttestation {
  readonly type: string;
  /** SHA-256 of the signed payload: what names it in the decision log. */
  readonly digest: string;
  readonly signer: string;
  /** The whole statement (subject, predicateType, predicate); null when too large. */
  readonly statement: JsonObject | null;
  /** Why the statement is left out, when it is. */
  readonly omitted?: string;
}

/** The statement as the policy may see it: whole, or left out when too large. */
export function bounded(statement: JsonObject): Pick<VerifiedAttestation, 'statement' | 'omitted'> {
  const size = Buffer.byteLength(JSON.stringify(statement));
  return size <= MAX_STATEMENT_BYTES
    ? { statement }
    : {
        statement: null,
        omitted: `the statement is ${size} bytes, more than ${MAX_STATEMENT_BYTES}`,
      };
}
