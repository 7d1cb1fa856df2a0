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
 *
 * A signature counts only if a configured key verifies it *and* it names this digest: a
 * valid signature of another image, copied next to this one, is "for another digest".
 */
import { verify as verifySignature } from 'node:crypto';
import { bundleFromJSON } from '@sigstore/bundle';
import { type TrustMaterial, toSignedEntity, Verifier } from '@sigstore/verify';
import { isRecord } from '../shared/json.ts';
import type { RegistryClient } from './client.ts';
import type { PublicKeyRef } from './keys.ts';

export const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
export const BUNDLE_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const EMPTY_TYPE = 'application/vnd.oci.empty.v1+json';
const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
const COSIGN_SIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1';
const MAX_LAYERS = 16;
const MAX_PAYLOAD_BYTES = 256 * 1024;

export type SignatureOutcome =
  | { readonly verified: true; readonly key: string; readonly format: 'legacy' | 'bundle' }
  | {
      readonly verified: false;
      readonly reason: 'no signature' | 'signed by another key' | 'signature for another digest';
    };

interface Found {
  /** A configured key verified it: which one, and the digest it names. */
  readonly key?: string;
  readonly digest?: string;
  readonly format: 'legacy' | 'bundle';
}

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
  readonly signal: AbortSignal;
}

const records = (value: unknown): Record<string, unknown>[] =>
  Array.isArray(value) ? value.filter(isRecord).slice(0, MAX_LAYERS) : [];

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

async function legacy({
  client,
  registry,
  repository,
  digest,
  keys,
  signal,
}: Lookup): Promise<Found[]> {
  const tag = `${digest.replace(':', '-')}.sig`;
  const manifest = await client.tagged(registry, repository, tag, signal);
  if (manifest === undefined) return [];
  const found: Found[] = [];
  for (const layer of records(fieldOf(manifest.body, 'layers'))) {
    const annotations = isRecord(layer.annotations) ? layer.annotations : {};
    const signature = annotations[SIGNATURE_ANNOTATION];
    if (
      layer.mediaType !== SIMPLE_SIGNING ||
      typeof layer.digest !== 'string' ||
      typeof signature !== 'string'
    )
      continue;
    const payload = await client.blob(
      registry,
      repository,
      layer.digest,
      MAX_PAYLOAD_BYTES,
      signal,
    );
    const key = verifiesWith(keys, payload, Buffer.from(signature, 'base64'));
    const named = signedDigest(json(payload));
    found.push({
      format: 'legacy',
      ...(key === undefined ? {} : { key }),
      ...(named === undefined ? {} : { digest: named }),
    });
  }
  return found;
}

/** The bundle's DSSE statement subject digest, once a configured key verified it. */
function verifyBundle(bundleJson: unknown, keys: readonly PublicKeyRef[]): Found {
  let bundle: ReturnType<typeof bundleFromJSON>;
  try {
    bundle = bundleFromJSON(bundleJson);
  } catch {
    return { format: 'bundle' };
  }
  const content = bundle.content;
  if (content.$case !== 'dsseEnvelope') return { format: 'bundle' };
  for (const { name, key } of keys) {
    const trust: TrustMaterial = {
      certificateAuthorities: [],
      timestampAuthorities: [],
      tlogs: [],
      ctlogs: [],
      publicKey: () => ({ publicKey: key, validFor: () => true }),
    };
    try {
      // Keyed, offline (--tlog-upload=false): no log entry or timestamp to require.
      new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 }).verify(
        toSignedEntity(bundle),
      );
    } catch {
      continue;
    }
    const statement = json(content.dsseEnvelope.payload);
    const subjects =
      isRecord(statement) &&
      statement._type === STATEMENT_TYPE &&
      statement.predicateType === COSIGN_SIGN_PREDICATE
        ? records(statement.subject)
        : [];
    const hex = subjects
      .map((s) => (isRecord(s.digest) ? s.digest.sha256 : undefined))
      .find((d) => typeof d === 'string');
    return {
      format: 'bundle',
      key: name,
      ...(typeof hex === 'string' ? { digest: `sha256:${hex}` } : {}),
    };
  }
  return { format: 'bundle' };
}

async function bundles({
  client,
  registry,
  repository,
  digest,
  keys,
  signal,
}: Lookup): Promise<Found[]> {
  const listed = await client.referrers(registry, repository, digest, BUNDLE_TYPE, signal);
  const index =
    listed ?? (await client.tagged(registry, repository, digest.replace(':', '-'), signal))?.body;
  if (index === undefined) return [];
  const found: Found[] = [];
  const all = fieldOf(index, 'manifests');
  // Bundles first, then descriptors whose type says nothing (some registries report the
  // config's empty type, as go-containerregistry's does, and Kyverno missed those:
  // kyverno#16664); SBOMs and other artifacts are never fetched. At most MAX_LAYERS.
  const unspecific = (d: Record<string, unknown>) =>
    d.artifactType === undefined || d.artifactType === EMPTY_TYPE || d.artifactType === '';
  const candidates = Array.isArray(all) ? all.filter(isRecord) : [];
  const descriptors = [
    ...candidates.filter((d) => d.artifactType === BUNDLE_TYPE),
    ...candidates.filter(unspecific),
  ].slice(0, MAX_LAYERS);
  for (const descriptor of descriptors) {
    if (typeof descriptor.digest !== 'string') continue;
    const manifest = json(
      (await client.manifest(registry, repository, descriptor.digest, signal)).body,
    );
    if (!isRecord(manifest)) continue;
    const layer = records(manifest.layers)[0];
    const isBundle = manifest.artifactType === BUNDLE_TYPE || layer?.mediaType === BUNDLE_TYPE;
    if (!isBundle || typeof layer?.digest !== 'string') continue;
    const blob = await client.blob(registry, repository, layer.digest, MAX_PAYLOAD_BYTES, signal);
    found.push(verifyBundle(json(blob), keys));
  }
  return found;
}

/** Whether a configured key signed this digest, in either format, and if not why. */
export async function checkSignatures(
  client: RegistryClient,
  registry: string,
  repository: string,
  digest: string,
  keys: readonly PublicKeyRef[],
  signal: AbortSignal,
): Promise<SignatureOutcome> {
  const lookup: Lookup = { client, registry, repository, digest, keys, signal };
  const [old, current] = await Promise.all([legacy(lookup), bundles(lookup)]);
  const found = [...old, ...current];
  const good = found.find((f) => f.key !== undefined && f.digest === digest);
  if (good?.key !== undefined) return { verified: true, key: good.key, format: good.format };
  if (found.some((f) => f.key !== undefined))
    return { verified: false, reason: 'signature for another digest' };
  if (found.length > 0) return { verified: false, reason: 'signed by another key' };
  return { verified: false, reason: 'no signature' };
}
