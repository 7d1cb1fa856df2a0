/**
 * One artifact judged against one signer: a configured key, or a trust root's Fulcio CAs
 * with the identities that may use them. @sigstore/verify does the cryptography — the
 * signature, the certificate chain at each verified time, SCTs, RFC 3161 timestamps,
 * Rekor v1 signed entry timestamps and inclusion proofs, Rekor v2 checkpoints — and this
 * module decides what it is asked to check, and names each failure:
 *
 * 1. Who signed, first: a key's signature over the content, or the certificate's issuer
 *    (one of the root's CAs) and its identity claims. A stranger is "another key", "another
 *    identity" or "not issued by the trust root", whatever else is wrong with it.
 * 2. A certificate has a verified time to be checked at, and what the requirement needs is
 *    present (requirements.ts).
 * 3. Then everything present that the root can verify is verified; what the root cannot
 *    (a log entry when the root names no log) is set aside and said so. A present entry
 *    that fails is a failure even when not required: it is the bundle lying.
 */
import {
  PolicyError,
  type SignedEntity,
  type TrustMaterial,
  VerificationError,
  Verifier,
} from '@sigstore/verify';
import type { PublicKeyRef } from '../keys.ts';
import type { LoadedTrustRoot } from '../trust-roots.ts';
import type { Artifact } from './artifacts.ts';
import { type Certificate, type CertificateIdentity, certificateIdentity } from './identities.ts';
import type { Failure } from './reasons.ts';
import { needsLog, needsTimestamp, type Requirement, unmet } from './requirements.ts';

/** What was verified besides the signature, for the facts. */
export interface Evidence {
  /** `verified by <root>`, or why a log entry the bundle carries was not checked. */
  readonly transparencyLog?: string;
  /** `verified by <root>` when an RFC 3161 timestamp was. */
  readonly timestamp?: string;
  /** The verified signing time (a timestamp's, or a Rekor v1 entry's integrated time). */
  readonly signedAt?: string;
}

export type Checked =
  | { readonly ok: true; readonly evidence: Evidence; readonly identity?: CertificateIdentity }
  | { readonly ok: false; readonly failure: Failure };

export const NOT_CHECKED = 'not checked: no transparency log is configured for this entry';

const fail = (reason: Failure['reason'], detail?: string): Checked => ({
  ok: false,
  failure: detail === undefined ? { reason } : { reason, detail },
});

/** The entity with only what the root can verify; and what was set aside. */
function within(entity: SignedEntity, root: LoadedTrustRoot | undefined) {
  const logs = (root?.material.tlogs.length ?? 0) > 0;
  const authorities = (root?.material.timestampAuthorities.length ?? 0) > 0;
  const kept: SignedEntity = {
    ...entity,
    tlogEntries: logs ? entity.tlogEntries : [],
    timestamps: entity.timestamps.filter((t) =>
      t.$case === 'timestamp-authority' ? authorities : logs,
    ),
  };
  const timestamps = kept.timestamps.filter((t) => t.$case === 'timestamp-authority').length;
  return {
    kept,
    present: { logEntries: kept.tlogEntries.length, timestamps },
    setAside: !logs && entity.tlogEntries.length > 0,
  };
}

function failureOf(error: unknown, rootName: string): Failure {
  const code =
    error instanceof VerificationError || error instanceof PolicyError ? error.code : 'ERROR';
  const message = error instanceof Error ? error.message : String(error);
  const detail = `${rootName}: ${code}: ${message}`;
  if (code.startsWith('TLOG')) return { reason: 'transparency-log entry invalid', detail };
  if (code === 'TIMESTAMP_ERROR') return { reason: 'timestamp invalid', detail };
  if (code === 'CERTIFICATE_ERROR') {
    if (/SCT/.test(message)) return { reason: 'no SCT', detail };
    if (/expired/.test(message)) return { reason: 'certificate expired at signing time', detail };
    return { reason: 'certificate not issued by the trust root', detail };
  }
  return { reason: 'malformed signature', detail };
}

function signingTime(entity: SignedEntity): string | undefined {
  const times = entity.timestamps.map((t) =>
    t.$case === 'timestamp-authority'
      ? t.timestamp.signingTime
      : new Date(Number(t.tlogEntry.integratedTime) * 1000),
  );
  const [first] = times.sort((a, b) => a.getTime() - b.getTime());
  return first?.toISOString();
}

/** Everything present verified, with thresholds that make the requirement hold. */
function verifyAll(
  kept: SignedEntity,
  material: TrustMaterial,
  requirement: Requirement,
  options: { certificate: boolean; sct: boolean },
  rootName: string,
): Failure | undefined {
  try {
    new Verifier(material, {
      tlogThreshold: needsLog(requirement) ? 1 : 0,
      // A certificate is checked at every verified time, so it needs one.
      timestampThreshold: options.certificate || needsTimestamp(requirement) ? 1 : 0,
      ctlogThreshold: options.certificate && options.sct && material.ctlogs.length > 0 ? 1 : 0,
    }).verify(kept);
    return undefined;
  } catch (error) {
    return failureOf(error, rootName);
  }
}

function evidenceOf(
  kept: SignedEntity,
  root: LoadedTrustRoot | undefined,
  setAside: boolean,
): Evidence {
  const name = root?.name ?? '';
  const hasTsa = kept.timestamps.some((t) => t.$case === 'timestamp-authority');
  const at = signingTime(kept);
  return {
    ...(kept.tlogEntries.length > 0 ? { transparencyLog: `verified by ${name}` } : {}),
    ...(setAside ? { transparencyLog: NOT_CHECKED } : {}),
    ...(hasTsa ? { timestamp: `verified by ${name}` } : {}),
    ...(at === undefined ? {} : { signedAt: at }),
  };
}

/**
 * A key-signed artifact against one configured key: undefined when another key made it;
 * otherwise its evidence checked against the entry's root (if any).
 */
export function checkKeyed(
  artifact: Artifact,
  key: PublicKeyRef,
  root: LoadedTrustRoot | undefined,
  requirement: Requirement,
): Checked | undefined {
  let signed = false;
  try {
    signed = artifact.entity.signature.verifySignature(key.key);
  } catch {
    // A key of a type that cannot verify this signature: not this key.
  }
  if (!signed) return undefined;
  const { kept, present, setAside } = within(artifact.entity, root);
  const missing = unmet(requirement, present);
  if (missing !== undefined) return fail(missing);
  const material: TrustMaterial = {
    certificateAuthorities: [],
    timestampAuthorities: root?.material.timestampAuthorities ?? [],
    tlogs: root?.material.tlogs ?? [],
    ctlogs: [],
    // Whatever key the bundle hints at, the configured key is the one that verifies.
    publicKey: () => ({ publicKey: key.key, validFor: () => true }),
  };
  const failure = verifyAll(
    kept,
    material,
    requirement,
    { certificate: false, sct: false },
    root?.name ?? key.name,
  );
  return failure === undefined
    ? { ok: true, evidence: evidenceOf(kept, root, setAside) }
    : { ok: false, failure };
}

/** Whether one of the root's CAs issued the certificate (its signature, by name). */
function issuedBy(root: LoadedTrustRoot, leaf: Certificate): boolean {
  return root.material.certificateAuthorities.some((ca) =>
    ca.certChain.some((issuer) => {
      try {
        return issuer.subject.equals(leaf.issuer) && leaf.verify(issuer);
      } catch {
        return false;
      }
    }),
  );
}

/**
 * A certificate-signed artifact against one trust root and the identities that may use it
 * (`accepts`): the certificate's issuer, its identity, then the evidence at its time.
 */
export function checkCertificate(
  artifact: Artifact,
  root: LoadedTrustRoot,
  requirement: Requirement,
  sct: boolean,
  accepts: (identity: CertificateIdentity) => boolean,
): Checked {
  const key = artifact.entity.key;
  if (key.$case !== 'certificate') return fail('malformed signature', 'no certificate');
  const leaf = key.certificate;
  if (!issuedBy(root, leaf)) {
    return fail(
      'certificate not issued by the trust root',
      `${root.name} issued no certificate of ${leaf.subjectAltName ?? 'this signer'}`,
    );
  }
  const identity = certificateIdentity(leaf);
  if (!accepts(identity)) {
    return fail('signed by another identity', `${identity.subject} (${identity.issuer})`);
  }
  const { kept, present, setAside } = within(artifact.entity, root);
  // Without a verified time the certificate's ten minutes cannot be checked: never at "now".
  if (kept.timestamps.length === 0) {
    return fail(
      'no verified signing time',
      `no RFC 3161 timestamp or Rekor v1 integrated time ${root.name} can verify; the certificate was valid until ${leaf.notAfter.toISOString()}`,
    );
  }
  const missing = unmet(requirement, present);
  if (missing !== undefined) return fail(missing);
  const material: TrustMaterial = {
    ...root.material,
    publicKey: () => {
      throw new VerificationError({ code: 'PUBLIC_KEY_ERROR', message: 'keyless: no keys' });
    },
  };
  const failure = verifyAll(kept, material, requirement, { certificate: true, sct }, root.name);
  return failure === undefined
    ? { ok: true, evidence: evidenceOf(kept, root, setAside), identity }
    : { ok: false, failure };
}
