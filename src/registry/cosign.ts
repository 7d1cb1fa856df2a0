/**
 * cosign signatures made with a key, in both formats cosign writes:
 *
 * - legacy (cosign 2): the tag `sha256-<hex>.sig` of the image's repository, an image
 *   manifest whose layers are simple-signing payloads, each signed in the annotation
 *   `dev.cosignproject.cosign/signature`; the payload names the digest it signs.
 * - Sigstore bundle (cosign 3): an artifact whose subject is the image, found through the
 *   OCI 1.1 referrers API or, where the registry lacks it, the tag `sha256-<hex>` holding an
 *   index of referrers (whose descriptors cosign 3 marks with the empty artifactType, so
 *   they are judged by their own manifests); one layer, the bundle, a DSSE envelope over an
 *   in-toto statement whose subject is the image digest (verified with @sigstore/verify).
 *   cosign 3 uploads to a transparency log by default: the bundle's log entry is verified
 *   when the entry's trust root names the log, and set aside (said so in the facts) when
 *   no log is configured — never read as "another key".
 *
 * A signature counts only if a configured key verifies it *and* it names this digest: a
 * valid signature of another image, copied next to this one, is "for another digest".
 * What the registry lists is checked against the OCI grammar first (oci.ts): a malformed
 * descriptor is skipped, a failed fetch of one does not hide a valid signature elsewhere.
 */
import { verify as verifySignature } from 'node:crypto';
import { bundleFromJSON } from '@sigstore/bundle';
import { type TrustMaterial, toSignedEntity, VerificationError, Verifier } from '@sigstore/verify';
import { isRecord } from '../shared/json.ts';
import type { RegistryClient, RequestScope } from './client.ts';
import type { PublicKeyRef } from './keys.ts';
import { type Descriptor, descriptors } from './oci.ts';
import { RegistryError } from './registry-error.ts';

export const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
export const BUNDLE_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const EMPTY_TYPE = 'application/vnd.oci.empty.v1+json';
const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
const COSIGN_SIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1';
const MAX_LAYERS = 16;
const MAX_PAYLOAD_BYTES = 256 * 1024;

export type UnverifiedReason =
  | 'no signature'
  | 'signed by another key'
  | 'signature for another digest'
  | 'malformed signature'
  | 'transparency-log entry invalid';

export type SignatureOutcome =
  | {
      readonly verified: true;
      readonly key: string;
      readonly format: 'legacy' | 'bundle';
      /** What became of the bundle's transparency-log entry, when it has one. */
      readonly transparencyLog?: string;
    }
  | {
      readonly verified: false;
      readonly reason: UnverifiedReason;
      /** What exactly failed, where there is more to say (a log entry's error). */
      readonly detail?: string;
    };

/** The transparency logs a key-signed bundle's entry is checked against (a trust root's). */
export interface LogTrust {
  /** The trust root's name, for messages. */
  readonly name: string;
  readonly tlogs: TrustMaterial['tlogs'];
}

/** One signature found, judged. */
type Finding =
  | {
      readonly kind: 'signed';
      readonly format: 'legacy' | 'bundle';
      readonly key: string;
      /** The digest it names (undefined: it names none). */
      readonly digest: string | undefined;
      readonly transparencyLog?: string;
    }
  | { readonly kind: 'tlog-invalid'; readonly detail: string }
  | { readonly kind: 'another-key' }
  | { readonly kind: 'malformed'; readonly detail: string }
  /** Signed by a key, but not a signature statement (an attestation): not counted. */
  | { readonly kind: 'other' };

function json(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/** A top-level field of a JSON document, parsed once; undefined unless it is an object. */
function fieldOf(bytes: Buffer, key: string): unknown {
  const document = json(bytes);
  return isRecord(document) ? document[key] : undefined;
}

/** One image whose signatures are looked for, with the keys that may have made them. */
interface Lookup {
  readonly client: RegistryClient;
  readonly registry: string;
  readonly repository: string;
  readonly digest: string;
  readonly keys: readonly PublicKeyRef[];
  readonly log: LogTrust | undefined;
  readonly scope: RequestScope;
  /** Fetches that failed: reported only when no signature verified. */
  readonly errors: unknown[];
}

function verifiesWith(
  keys: readonly PublicKeyRef[],
  data: Buffer,
  signature: Buffer,
): string | undefined {
  for (const { name, key } of keys) {
    try {
      if (
        verifySignature(key.asymmetricKeyType === 'ed25519' ? null : 'sha256', data, key, signature)
      )
        return name;
    } catch {
      // A key of a type that cannot verify this signature: not this key.
    }
  }
  return undefined;
}

/** The simple-signing payload's digest, read as Go reads JSON keys: case-insensitively. */
function signedDigest(payload: unknown): string | undefined {
  const critical = isRecord(payload) ? payload.critical : undefined;
  const image = isRecord(critical) ? critical.image : undefined;
  if (!isRecord(image)) return undefined;
  for (const [key, value] of Object.entries(image)) {
    if (key.toLowerCase() === 'docker-manifest-digest' && typeof value === 'string') return value;
  }
  return undefined;
}

/** A fetch that may fail without hiding the other signatures: undefined when it did. */
async function attempt<T>(lookup: Lookup, fetch: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fetch();
  } catch (error) {
    lookup.errors.push(error);
    return undefined;
  }
}

/** A payload small enough to fetch (the descriptor says its size before we ask). */
const fetchable = (layer: Descriptor) => layer.size <= MAX_PAYLOAD_BYTES;

async function legacy(lookup: Lookup): Promise<Finding[]> {
  const { client, registry, repository, digest, keys, scope } = lookup;
  const tag = `${digest.replace(':', '-')}.sig`;
  const manifest = await client.tagged(registry, repository, tag, scope);
  if (manifest === undefined) return [];
  const found: Finding[] = [];
  for (const layer of descriptors(fieldOf(manifest.body, 'layers'), MAX_LAYERS)) {
    const signature = layer.annotations[SIGNATURE_ANNOTATION];
    if (layer.mediaType !== SIMPLE_SIGNING || signature === undefined || !fetchable(layer)) {
      continue;
    }
    const payload = await attempt(lookup, () =>
      client.blob(registry, repository, layer.digest, MAX_PAYLOAD_BYTES, scope),
    );
    if (payload === undefined) continue;
    const key = verifiesWith(keys, payload, Buffer.from(signature, 'base64'));
    found.push(
      key === undefined
        ? { kind: 'another-key' }
        : { kind: 'signed', format: 'legacy', key, digest: signedDigest(json(payload)) },
    );
  }
  return found;
}

const keyTrust = (key: PublicKeyRef, tlogs: TrustMaterial['tlogs'] = []): TrustMaterial => ({
  certificateAuthorities: [],
  timestampAuthorities: [],
  tlogs,
  ctlogs: [],
  publicKey: () => ({ publicKey: key.key, validFor: () => true }),
});

const describeVerification = (error: unknown) =>
  error instanceof VerificationError
    ? `${error.code}: ${error.message}`
    : error instanceof Error
      ? error.message
      : String(error);

/** The DSSE statement's subject digest (sha256), when it is a cosign signature statement. */
function statementDigest(payload: Buffer): string | undefined {
  const statement = json(payload);
  if (
    !isRecord(statement) ||
    statement._type !== STATEMENT_TYPE ||
    statement.predicateType !== COSIGN_SIGN_PREDICATE ||
    !Array.isArray(statement.subject)
  ) {
    return undefined;
  }
  for (const subject of statement.subject.slice(0, MAX_LAYERS)) {
    const hex = isRecord(subject) && isRecord(subject.digest) ? subject.digest.sha256 : undefined;
    if (typeof hex === 'string') return `sha256:${hex}`;
  }
  return undefined;
}

/**
 * A bundle judged against the keys: its signature first (without its log entries, which a
 * key alone cannot judge), then — when a configured log can — its log entries.
 */
function verifyBundle(
  bundleJson: unknown,
  keys: readonly PublicKeyRef[],
  log: LogTrust | undefined,
): Finding {
  let bundle: ReturnType<typeof bundleFromJSON>;
  try {
    bundle = bundleFromJSON(bundleJson);
  } catch (error) {
    return { kind: 'malformed', detail: describeVerification(error) };
  }
  const content = bundle.content;
  if (content.$case !== 'dsseEnvelope') {
    return { kind: 'malformed', detail: 'not a DSSE envelope (cosign 3 signs images with one)' };
  }
  const entries = bundle.verificationMaterial.tlogEntries;
  const signatureOnly = {
    ...bundle,
    verificationMaterial: {
      ...bundle.verificationMaterial,
      tlogEntries: [],
      timestampVerificationData: undefined,
    },
  } as typeof bundle;
  const thresholds = { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 };
  for (const key of keys) {
    try {
      new Verifier(keyTrust(key), thresholds).verify(toSignedEntity(signatureOnly));
    } catch {
      continue;
    }
    const digest = statementDigest(content.dsseEnvelope.payload);
    if (digest === undefined) return { kind: 'other' };
    if (entries.length === 0) {
      return { kind: 'signed', format: 'bundle', key: key.name, digest };
    }
    if (log === undefined) {
      return {
        kind: 'signed',
        format: 'bundle',
        key: key.name,
        digest,
        transparencyLog: 'not checked: no transparency log is configured for this entry',
      };
    }
    try {
      new Verifier(keyTrust(key, log.tlogs), { ...thresholds, tlogThreshold: 1 }).verify(
        toSignedEntity(bundle),
      );
    } catch (error) {
      return { kind: 'tlog-invalid', detail: `${log.name}: ${describeVerification(error)}` };
    }
    return {
      kind: 'signed',
      format: 'bundle',
      key: key.name,
      digest,
      transparencyLog: `verified by ${log.name}`,
    };
  }
  return { kind: 'another-key' };
}

async function bundles(lookup: Lookup): Promise<Finding[]> {
  const { client, registry, repository, digest, keys, scope } = lookup;
  const listed = await client.referrers(registry, repository, digest, BUNDLE_TYPE, scope);
  const index =
    listed ?? (await client.tagged(registry, repository, digest.replace(':', '-'), scope))?.body;
  if (index === undefined) return [];
  // Bundles first, then descriptors whose type says nothing (some registries report the
  // config's empty type, as go-containerregistry's does, and Kyverno missed those:
  // kyverno#16664); SBOMs and other artifacts are never fetched. At most MAX_LAYERS.
  const candidates = descriptors(fieldOf(index, 'manifests'), 1024);
  const unspecific = (d: Descriptor) =>
    d.artifactType === undefined || d.artifactType === EMPTY_TYPE;
  const chosen = [
    ...candidates.filter((d) => d.artifactType === BUNDLE_TYPE),
    ...candidates.filter(unspecific),
  ].slice(0, MAX_LAYERS);
  const found: Finding[] = [];
  for (const descriptor of chosen) {
    const fetched = await attempt(lookup, () =>
      client.manifest(registry, repository, descriptor.digest, scope),
    );
    const manifest = fetched === undefined ? undefined : json(fetched.body);
    if (!isRecord(manifest)) continue;
    const [layer] = descriptors(manifest.layers, 1);
    const isBundle = manifest.artifactType === BUNDLE_TYPE || layer?.mediaType === BUNDLE_TYPE;
    if (!isBundle || layer === undefined || !fetchable(layer)) continue;
    const blob = await attempt(lookup, () =>
      client.blob(registry, repository, layer.digest, MAX_PAYLOAD_BYTES, scope),
    );
    if (blob === undefined) continue;
    found.push(verifyBundle(json(blob), keys, lookup.log));
  }
  return found;
}

/**
 * Whether a configured key signed this digest, in either format, and if not why. A
 * registry failure is thrown only when no signature verified (a failure never hides a
 * valid signature, and is never read as "unsigned").
 */
export async function checkSignatures(
  client: RegistryClient,
  registry: string,
  repository: string,
  digest: string,
  keys: readonly PublicKeyRef[],
  scope: RequestScope,
  log?: LogTrust,
): Promise<SignatureOutcome> {
  const lookup: Lookup = { client, registry, repository, digest, keys, log, scope, errors: [] };
  const settled = await Promise.allSettled([legacy(lookup), bundles(lookup)]);
  const found: Finding[] = [];
  for (const result of settled) {
    if (result.status === 'fulfilled') found.push(...result.value);
    else lookup.errors.push(result.reason);
  }
  const signed = found.filter((f) => f.kind === 'signed');
  const good = signed.find((f) => f.digest === digest);
  if (good !== undefined) {
    return {
      verified: true,
      key: good.key,
      format: good.format,
      ...(good.transparencyLog === undefined ? {} : { transparencyLog: good.transparencyLog }),
    };
  }
  const [failure] = lookup.errors;
  if (failure !== undefined) {
    throw failure instanceof RegistryError
      ? failure
      : new RegistryError(`reading signatures: ${describeVerification(failure)}`, {
          cause: failure,
        });
  }
  if (signed.length > 0) return { verified: false, reason: 'signature for another digest' };
  const invalidLog = found.find((f) => f.kind === 'tlog-invalid');
  if (invalidLog !== undefined) {
    return { verified: false, reason: 'transparency-log entry invalid', detail: invalidLog.detail };
  }
  if (found.some((f) => f.kind === 'another-key')) {
    return { verified: false, reason: 'signed by another key' };
  }
  const malformed = found.find((f) => f.kind === 'malformed');
  if (malformed !== undefined) {
    return { verified: false, reason: 'malformed signature', detail: malformed.detail };
  }
  return { verified: false, reason: 'no signature' };
}
