/**
 * A digest's signatures and attestations judged against one `signatures` entry: which of
 * its signers (keys, identities) signed it, with what evidence; whether enough of them did;
 * which attestations of the types it reads are verified.
 *
 * Threshold: each configured key and each configured identity is one signer. The digest is
 * verified when `threshold` (default 1: any one) distinct signers each made a distinct
 * valid signature of it — a maximum matching of signatures to signers, so one certificate
 * that two identity patterns both match counts once, and two signatures by one key count
 * once. Attestations need any one of the entry's signers (no threshold).
 */
import type { JsonObject } from '../../shared/json.ts';
import type { Artifact } from './artifacts.ts';
import { bounded, type VerifiedAttestation } from './attestations.ts';
import { type Checked, checkCertificate, checkKeyed, type Evidence } from './evidence.ts';
import type { CertificateIdentity } from './identities.ts';
import { type Failure, mostTelling, type UnverifiedReason } from './reasons.ts';
import type { Verification } from './verification.ts';

export type SignatureOutcome =
  | ({
      readonly verified: true;
      /** Who signed, keys by file name, identities as `subject (issuer)`. */
      readonly signers: readonly string[];
      /** The key that signed, when a key did (the first signer). */
      readonly key?: string;
      /** The certificate's identity, when the first signer is keyless. */
      readonly identity?: CertificateIdentity;
      readonly format: string;
      /** A signed index that lists this platform manifest verified it (acceptIndexSignature). */
      readonly via?: string;
    } & Evidence)
  | {
      readonly verified: false;
      readonly reason: UnverifiedReason;
      /** What exactly failed, where there is more to say. */
      readonly detail?: string;
    };

export interface Judgement {
  readonly signature: SignatureOutcome;
  /** Verified attestations of the types the entry reads. */
  readonly attestations: readonly VerifiedAttestation[];
  /** For each type the entry reads and none verified: why. */
  readonly attestationFailures: Readonly<Record<string, Failure>>;
}

/** One artifact by one of the entry's signers. */
interface Signed {
  readonly artifact: Artifact;
  /** Indexes into the entry's signers: keys first, then identities. */
  readonly signers: readonly number[];
  readonly evidence: Evidence;
  readonly identity?: CertificateIdentity;
}

type Outcome = { readonly signed: Signed } | { readonly failure: Failure };

const signerName = (entry: Verification, index: number): string =>
  index < entry.keys.length
    ? (entry.keys[index]?.name ?? '')
    : (entry.identities[index - entry.keys.length]?.description ?? '');

/** Who among the entry's signers made this artifact, with what evidence; or why not. */
function judgeArtifact(artifact: Artifact, entry: Verification): Outcome {
  const ok = (checked: Checked, signers: number[]): Outcome =>
    checked.ok
      ? {
          signed: {
            artifact,
            signers,
            evidence: checked.evidence,
            ...(checked.identity === undefined ? {} : { identity: checked.identity }),
          },
        }
      : { failure: checked.failure };
  if (artifact.keyed) {
    for (const [index, key] of entry.keys.entries()) {
      const checked = checkKeyed(artifact, key, entry.trustRoot, entry.requirement);
      if (checked !== undefined) return ok(checked, [index]);
    }
    return { failure: { reason: 'signed by another key' } };
  }
  if (entry.identities.length === 0) return { failure: { reason: 'signed by another key' } };
  const failures: Failure[] = [];
  for (const root of entry.roots.values()) {
    const mine = entry.identities
      .map((identity, i) => ({ identity, index: entry.keys.length + i }))
      .filter(({ identity }) => identity.trustRoot === root.name);
    const checked = checkCertificate(artifact, root, entry.requirement, entry.sct, (claimed) =>
      mine.some(({ identity }) => identity.matches(claimed)),
    );
    if (!checked.ok) {
      failures.push(checked.failure);
      continue;
    }
    const claimed = checked.identity;
    const matched = mine
      .filter(({ identity }) => claimed !== undefined && identity.matches(claimed))
      .map(({ index }) => index);
    return ok(checked, matched);
  }
  return { failure: mostTelling(failures) };
}

/** The most signatures of distinct signers (augmenting paths; a handful of each). */
function matching(signed: readonly Signed[]): Map<number, Signed> {
  const owner = new Map<number, number>(); // signer → signature index
  const assign = (s: number, seen: Set<number>): boolean => {
    for (const signer of signed[s]?.signers ?? []) {
      if (seen.has(signer)) continue;
      seen.add(signer);
      const holder = owner.get(signer);
      if (holder === undefined || assign(holder, seen)) {
        owner.set(signer, s);
        return true;
      }
    }
    return false;
  };
  for (let s = 0; s < signed.length; s++) assign(s, new Set());
  const result = new Map<number, Signed>();
  for (const [signer, s] of owner) {
    const signature = signed[s];
    if (signature !== undefined) result.set(signer, signature);
  }
  return result;
}

function signatureOutcome(
  artifacts: readonly Artifact[],
  malformed: readonly string[],
  digest: string,
  entry: Verification,
): SignatureOutcome {
  const failures: Failure[] = malformed.map((detail) => ({
    reason: 'malformed signature',
    detail,
  }));
  const signed: Signed[] = [];
  for (const artifact of artifacts) {
    if (artifact.kind !== 'signature') continue;
    const outcome = judgeArtifact(artifact, entry);
    if ('failure' in outcome) failures.push(outcome.failure);
    else if (!artifact.subjects.includes(digest)) {
      failures.push({
        reason: 'signature for another digest',
        detail: `it signs ${artifact.subjects.join(', ') || 'no digest'}`,
      });
    } else signed.push(outcome.signed);
  }
  const matched = matching(signed);
  if (matched.size >= entry.threshold && matched.size > 0) {
    const order = [...matched.keys()].sort((a, b) => a - b);
    const first = matched.get(order[0] ?? 0);
    if (first !== undefined) {
      const firstSigner = order[0] ?? 0;
      return {
        verified: true,
        signers: order.map((i) => signerName(entry, i)),
        ...(firstSigner < entry.keys.length ? { key: signerName(entry, firstSigner) } : {}),
        ...(first.identity === undefined ? {} : { identity: first.identity }),
        format: first.artifact.format,
        ...first.evidence,
      };
    }
  }
  if (matched.size > 0) {
    const names = [...matched.keys()].map((i) => signerName(entry, i));
    failures.push({
      reason: 'too few signers',
      detail: `${matched.size} of the ${entry.threshold} required: ${names.join(', ')}`,
    });
  }
  const { reason, detail } = mostTelling(failures);
  return { verified: false, reason, ...(detail === undefined ? {} : { detail }) };
}

function attestationOutcomes(
  artifacts: readonly Artifact[],
  digest: string,
  entry: Verification,
): Pick<Judgement, 'attestations' | 'attestationFailures'> {
  const attestations: VerifiedAttestation[] = [];
  const attestationFailures: Record<string, Failure> = {};
  for (const { type } of entry.attestations) {
    const failures: Failure[] = [];
    let found = 0;
    for (const artifact of artifacts) {
      if (artifact.kind !== 'attestation' || artifact.predicateType !== type) continue;
      found++;
      const outcome = judgeArtifact(artifact, entry);
      if ('failure' in outcome) failures.push(outcome.failure);
      else if (!artifact.subjects.includes(digest)) {
        failures.push({ reason: 'signature for another digest' });
      } else {
        const statement: JsonObject = artifact.statement ?? {};
        attestations.push({
          type,
          digest: artifact.payloadDigest,
          signer: signerName(entry, outcome.signed.signers[0] ?? 0),
          ...bounded(statement),
        });
      }
    }
    if (!attestations.some((a) => a.type === type)) {
      attestationFailures[type] =
        found === 0 ? { reason: 'no attestation' } : mostTelling(failures);
    }
  }
  return { attestations, attestationFailures };
}

/** Everything found for a digest, judged against one entry. */
export function judge(
  artifacts: readonly Artifact[],
  malformed: readonly string[],
  digest: string,
  entry: Verification,
): Judgement {
  return {
    signature: signatureOutcome(artifacts, malformed, digest, entry),
    ...attestationOutcomes(artifacts, digest, entry),
  };
}
