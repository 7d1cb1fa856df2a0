/**
 * Signatures and attestations as found in a registry, each turned into what
 * @sigstore/verify verifies (a SignedEntity) and what it is about (the image digests it
 * names, and for an attestation its in-toto statement):
 *
 * - a Sigstore bundle, v0.1 to v0.3, its content a DSSE envelope over an in-toto statement
 *   (cosign 3 `sign` and `attest`, GitHub's attestations) or a message signature (`cosign
 *   sign-blob` of the image manifest: the message digest is the image digest);
 * - a cosign 2 (legacy) layer: a simple-signing payload signed in the layer's annotation
 *   (`.sig`), or a DSSE envelope (`.att`), keyed or with the Fulcio certificate and RFC 3161
 *   timestamp in annotations. These are written as the v0.3 bundle they amount to, so one
 *   verifier judges every format. A legacy Rekor v1 entry (`dev.sigstore.cosign/bundle`)
 *   is not read: such a signature counts as having no log entry.
 *
 * Nothing here is trusted yet: this only reads. A malformed artifact is reported as such and
 * never hides the others.
 */
import { createHash } from 'node:crypto';
import { type Bundle, bundleFromJSON } from '@sigstore/bundle';
import { HashAlgorithm } from '@sigstore/protobuf-specs';
import { type SignedEntity, toSignedEntity } from '@sigstore/verify';
import { isRecord, type JsonObject } from '../../shared/json.ts';

export const COSIGN_SIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1';
const STATEMENT_TYPES = new Set([
  'https://in-toto.io/Statement/v0.1',
  'https://in-toto.io/Statement/v1',
]);
const IN_TOTO = 'application/vnd.in-toto+json';
const BUNDLE_V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';
export const CERTIFICATE_ANNOTATION = 'dev.sigstore.cosign/certificate';
export const TIMESTAMP_ANNOTATION = 'dev.sigstore.cosign/rfc3161timestamp';
/** Subjects read from one statement, at most (cosign writes one). */
const MAX_SUBJECTS = 16;

export interface Artifact {
  /** For the facts: `bundle v0.3`, `legacy`… */
  readonly format: string;
  readonly kind: 'signature' | 'attestation';
  /** The in-toto predicate type ("" for simple signing and message signatures). */
  readonly predicateType: string;
  /** The image digests it is about (`sha256:…`). */
  readonly subjects: readonly string[];
  /** An attestation's statement, parsed (never trusted before its signature is verified). */
  readonly statement?: JsonObject;
  /** SHA-256 of the signed payload: how the decision log names an attestation. */
  readonly payloadDigest: string;
  readonly entity: SignedEntity;
  /** Signed with a key (verified against configured keys), or with a certificate. */
  readonly keyed: boolean;
}

export type Parsed =
  | { readonly artifact: Artifact }
  | { readonly malformed: string }
  /** A message signature over the image manifest: verified only with the manifest's bytes. */
  | { readonly needsManifest: true };

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** The format name of a bundle's media type. */
function bundleFormat(mediaType: string): string {
  const version =
    /version=(\d+\.\d+)/.exec(mediaType)?.[1] ?? /bundle\.v(\d+\.\d+)\+json/.exec(mediaType)?.[1];
  return `bundle v${version ?? '?'}`;
}

interface Statement {
  readonly predicateType: string;
  readonly subjects: readonly string[];
  readonly statement: JsonObject;
}

/** An in-toto statement (v0.1 or v1) and the sha256 digests of its subjects. */
function statementOf(payloadType: string, payload: Buffer): Statement | string {
  if (payloadType !== IN_TOTO) return `payload type ${payloadType} is not in-toto`;
  const statement = parseJson(payload);
  if (!isRecord(statement) || typeof statement._type !== 'string') {
    return 'the payload is not an in-toto statement';
  }
  if (!STATEMENT_TYPES.has(statement._type)) return `unknown statement type ${statement._type}`;
  if (typeof statement.predicateType !== 'string' || !Array.isArray(statement.subject)) {
    return 'the statement has no predicateType or subject';
  }
  const subjects: string[] = [];
  for (const subject of statement.subject.slice(0, MAX_SUBJECTS)) {
    const hex = isRecord(subject) && isRecord(subject.digest) ? subject.digest.sha256 : undefined;
    if (typeof hex === 'string' && /^[0-9a-f]{64}$/.test(hex)) subjects.push(`sha256:${hex}`);
  }
  return { predicateType: statement.predicateType, subjects, statement };
}

function fromStatement(
  format: string,
  entity: SignedEntity,
  keyed: boolean,
  payload: Buffer,
  found: Statement,
): Artifact {
  const kind = found.predicateType === COSIGN_SIGN_PREDICATE ? 'signature' : 'attestation';
  return {
    format,
    kind,
    predicateType: found.predicateType,
    subjects: found.subjects,
    ...(kind === 'attestation' ? { statement: found.statement } : {}),
    payloadDigest: sha256(payload),
    entity,
    keyed,
  };
}

/**
 * A Sigstore bundle (JSON, any version). `manifest`: the image manifest's bytes, which a
 * message signature over it needs; without them such a bundle asks for them.
 */
export function parseBundle(json: unknown, manifest?: Buffer): Parsed {
  let bundle: Bundle;
  try {
    bundle = bundleFromJSON(json);
  } catch (error) {
    return { malformed: describe(error) };
  }
  const format = bundleFormat(bundle.mediaType);
  const keyed = bundle.verificationMaterial.content.$case === 'publicKey';
  const content = bundle.content;
  try {
    if (content.$case === 'dsseEnvelope') {
      const envelope = content.dsseEnvelope;
      const found = statementOf(envelope.payloadType, envelope.payload);
      if (typeof found === 'string') return { malformed: found };
      const entity = toSignedEntity(bundle);
      return { artifact: fromStatement(format, entity, keyed, envelope.payload, found) };
    }
    const digest = content.messageSignature.messageDigest;
    if (digest?.algorithm !== HashAlgorithm.SHA2_256 || digest.digest.length !== 32) {
      return { malformed: 'a message signature whose digest is not SHA-256' };
    }
    const subject = `sha256:${Buffer.from(digest.digest).toString('hex')}`;
    if (manifest === undefined || sha256(manifest) !== subject) {
      // Over another artifact (not this image's manifest): nothing to verify it against.
      if (manifest !== undefined) return { malformed: 'a message signature of another artifact' };
      return { needsManifest: true };
    }
    const entity = toSignedEntity(bundle, manifest);
    return {
      artifact: {
        format: `${format} (message signature)`,
        kind: 'signature',
        predicateType: '',
        subjects: [subject],
        payloadDigest: subject,
        entity,
        keyed,
      },
    };
  } catch (error) {
    return { malformed: describe(error) };
  }
}

/** The digest a message signature is over, before anything is fetched for it. */
export function messageSubject(json: unknown): string | undefined {
  const message = isRecord(json) ? json.messageSignature : undefined;
  const digest = isRecord(message) ? message.messageDigest : undefined;
  if (!isRecord(digest) || digest.algorithm !== 'SHA2_256' || typeof digest.digest !== 'string') {
    return undefined;
  }
  return `sha256:${Buffer.from(digest.digest, 'base64').toString('hex')}`;
}

/** A PEM certificate as base64 DER (what a bundle's `rawBytes` holds). */
function pemToBase64(pem: string): string | undefined {
  const match = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(pem);
  return match?.[1]?.replace(/\s+/g, '');
}

/** cosign 2's verification material, from a legacy layer's annotations. */
function legacyMaterial(annotations: Readonly<Record<string, string>>): JsonObject | string {
  const pem = annotations[CERTIFICATE_ANNOTATION];
  const certificate = pem === undefined ? undefined : pemToBase64(pem);
  if (pem !== undefined && certificate === undefined) return 'its certificate is not PEM';
  const timestamps: JsonObject[] = [];
  const stamp = annotations[TIMESTAMP_ANNOTATION];
  if (stamp !== undefined) {
    const parsed = parseJson(Buffer.from(stamp));
    const signed = isRecord(parsed) ? parsed.SignedRFC3161Timestamp : undefined;
    if (typeof signed !== 'string') return 'its RFC 3161 timestamp annotation is malformed';
    timestamps.push({ signedTimestamp: signed });
  }
  return {
    ...(certificate === undefined
      ? { publicKey: { hint: '' } }
      : { certificate: { rawBytes: certificate } }),
    tlogEntries: [],
    timestampVerificationData: { rfc3161Timestamps: timestamps },
  };
}

/** The simple-signing payload's digest, read as Go reads JSON keys: case-insensitively. */
function simpleSigningDigest(payload: unknown): string | undefined {
  const critical = isRecord(payload) ? payload.critical : undefined;
  const image = isRecord(critical) ? critical.image : undefined;
  if (!isRecord(image)) return undefined;
  for (const [key, value] of Object.entries(image)) {
    if (key.toLowerCase() === 'docker-manifest-digest' && typeof value === 'string') return value;
  }
  return undefined;
}

/** A cosign 2 `.sig` layer: the simple-signing payload and its signature annotation. */
export function parseLegacySignature(
  payload: Buffer,
  signature: string,
  annotations: Readonly<Record<string, string>>,
): Parsed {
  const material = legacyMaterial(annotations);
  if (typeof material === 'string') return { malformed: material };
  const digest = simpleSigningDigest(parseJson(payload));
  try {
    const bundle = bundleFromJSON({
      mediaType: BUNDLE_V03,
      verificationMaterial: material,
      messageSignature: {
        messageDigest: {
          algorithm: 'SHA2_256',
          digest: createHash('sha256').update(payload).digest('base64'),
        },
        signature,
      },
    });
    const entity = toSignedEntity(bundle, payload);
    return {
      artifact: {
        format: 'legacy',
        kind: 'signature',
        predicateType: '',
        subjects: digest === undefined ? [] : [digest],
        payloadDigest: sha256(payload),
        entity,
        keyed: !('certificate' in material),
      },
    };
  } catch (error) {
    return { malformed: describe(error) };
  }
}

/**
 * A cosign 2 `.att` layer: a DSSE envelope (the layer's bytes). cosign 2 timestamps an
 * attestation over those bytes, not over the signature as for a `.sig` layer (its
 * VerifyRFC3161Timestamp: "for attestations … we rely on the signed payload"), so the
 * timestamp is checked against them.
 */
export function parseLegacyAttestation(
  layer: Buffer,
  annotations: Readonly<Record<string, string>>,
): Parsed {
  const material = legacyMaterial(annotations);
  if (typeof material === 'string') return { malformed: material };
  const envelope = parseJson(layer);
  if (!isRecord(envelope)) return { malformed: 'the layer is not a DSSE envelope' };
  try {
    const bundle = bundleFromJSON({
      mediaType: BUNDLE_V03,
      verificationMaterial: material,
      dsseEnvelope: envelope,
    });
    if (bundle.content.$case !== 'dsseEnvelope') return { malformed: 'not a DSSE envelope' };
    const { payload, payloadType } = bundle.content.dsseEnvelope;
    const found = statementOf(payloadType, payload);
    if (typeof found === 'string') return { malformed: found };
    const entity = toSignedEntity(bundle);
    const content = entity.signature;
    // The same content, but what the timestamp covers is the layer.
    const timestamped: SignedEntity = {
      ...entity,
      signature: {
        signature: layer,
        compareSignature: (s) => content.compareSignature(s),
        compareDigest: (d) => content.compareDigest(d),
        compareSignedDigest: (d) => content.compareSignedDigest(d),
        verifySignature: (key) => content.verifySignature(key),
      },
    };
    return {
      artifact: fromStatement('legacy', timestamped, !('certificate' in material), payload, found),
    };
  } catch (error) {
    return { malformed: describe(error) };
  }
}
