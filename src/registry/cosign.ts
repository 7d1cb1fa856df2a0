/**
 * Where cosign and the Sigstore tools put signatures and attestations of an image, read back
 * from the image's repository:
 *
 * - cosign 2 (legacy): the tag `sha256-<hex>.sig`, an image manifest whose layers are
 *   simple-signing payloads signed in an annotation, keyed or with a Fulcio certificate and
 *   an RFC 3161 timestamp beside it; `sha256-<hex>.att` holds DSSE envelopes (attestations)
 *   the same way. cosign 2's experimental OCI 1.1 mode attaches the `.sig` manifest as a
 *   referrer instead (artifactType `application/vnd.dev.cosign.artifact.sig.v1+json`).
 * - Sigstore bundles (cosign 3, GitHub's attestations, `oras attach`): artifacts whose
 *   subject is the image, found through the OCI 1.1 referrers API or, where the registry
 *   lacks it, the tag `sha256-<hex>` holding an index of referrers (cosign 3 marks those
 *   descriptors with the empty artifactType, so they are judged by their own manifests —
 *   Kyverno missed them: kyverno#16664); one layer, the bundle.
 *
 * Every candidate is fetched once and judged against the entry locally (sigstore/judge.ts):
 * never keys × signatures pulls. Attestations are fetched only when the entry reads some,
 * and skipped by their descriptor's predicate-type annotation otherwise. What the registry
 * lists is checked against the OCI grammar first (oci.ts): a malformed descriptor is
 * skipped, a failed fetch of one does not hide a valid signature elsewhere.
 */
import { isRecord } from '../shared/json.ts';
import type { RegistryClient, RequestScope } from './client.ts';
import { type Descriptor, descriptors } from './oci.ts';
import { RegistryError } from './registry-error.ts';
import {
  type Artifact,
  COSIGN_SIGN_PREDICATE,
  messageSubject,
  type Parsed,
  parseBundle,
  parseLegacyAttestation,
  parseLegacySignature,
} from './sigstore/artifacts.ts';
import { type Judgement, judge } from './sigstore/judge.ts';
import type { Verification } from './sigstore/verification.ts';

export type { Judgement, SignatureOutcome } from './sigstore/judge.ts';

export const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
export const BUNDLE_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const DSSE_LAYER = 'application/vnd.dsse.envelope.v1+json';
const LEGACY_REFERRER = 'application/vnd.dev.cosign.artifact.sig.v1+json';
const EMPTY_TYPE = 'application/vnd.oci.empty.v1+json';
const PREDICATE_ANNOTATION = 'dev.sigstore.bundle.predicateType';
/** Layers of one legacy manifest, and referrers of one digest, read at most. */
const MAX_LAYERS = 16;
const MAX_PAYLOAD_BYTES = 256 * 1024;

/** Everything found for one digest: artifacts to judge, malformed ones, failed fetches. */
export interface Found {
  readonly artifacts: Artifact[];
  readonly malformed: string[];
  /** Fetches that failed: reported only when what is needed did not verify. */
  readonly errors: unknown[];
}

interface Lookup extends Found {
  readonly client: RegistryClient;
  readonly registry: string;
  readonly repository: string;
  readonly digest: string;
  readonly scope: RequestScope;
  readonly attestations: boolean;
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

/** A fetch that may fail without hiding the other signatures: undefined when it did. */
async function attempt<T>(lookup: Lookup, fetch: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fetch();
  } catch (error) {
    lookup.errors.push(error);
    return undefined;
  }
}

function keep(lookup: Lookup, parsed: Parsed): void {
  if ('artifact' in parsed) lookup.artifacts.push(parsed.artifact);
  else if ('malformed' in parsed) lookup.malformed.push(parsed.malformed);
}

/** A payload small enough to fetch (the descriptor says its size before we ask). */
const fetchable = (layer: Descriptor) => layer.size <= MAX_PAYLOAD_BYTES;

const blob = (lookup: Lookup, layer: Descriptor) =>
  attempt(lookup, () =>
    lookup.client.blob(
      lookup.registry,
      lookup.repository,
      layer.digest,
      MAX_PAYLOAD_BYTES,
      lookup.scope,
    ),
  );

/** The layers of a cosign 2 manifest: `.sig` simple-signing payloads, `.att` envelopes. */
async function legacyLayers(lookup: Lookup, manifest: Buffer): Promise<void> {
  for (const layer of descriptors(fieldOf(manifest, 'layers'), MAX_LAYERS)) {
    if (!fetchable(layer)) continue;
    const signature = layer.annotations[SIGNATURE_ANNOTATION];
    if (layer.mediaType === SIMPLE_SIGNING && signature !== undefined && signature !== '') {
      const payload = await blob(lookup, layer);
      if (payload !== undefined) {
        keep(lookup, parseLegacySignature(payload, signature, layer.annotations));
      }
    } else if (layer.mediaType === DSSE_LAYER && lookup.attestations) {
      const envelope = await blob(lookup, layer);
      if (envelope !== undefined) keep(lookup, parseLegacyAttestation(envelope, layer.annotations));
    }
  }
}

async function legacyTag(lookup: Lookup, suffix: 'sig' | 'att'): Promise<void> {
  const { client, registry, repository, digest, scope } = lookup;
  const tag = `${digest.replace(':', '-')}.${suffix}`;
  const manifest = await client.tagged(registry, repository, tag, scope);
  if (manifest !== undefined) await legacyLayers(lookup, manifest.body);
}

/** A bundle layer: fetched, parsed, and for a message signature given the image manifest. */
async function bundleLayer(lookup: Lookup, layer: Descriptor): Promise<void> {
  if (!fetchable(layer)) return;
  const bytes = await blob(lookup, layer);
  if (bytes === undefined) return;
  const bundle = json(bytes);
  const parsed = parseBundle(bundle);
  if (!('needsManifest' in parsed)) return keep(lookup, parsed);
  // A message signature of another artifact is not about this image.
  if (messageSubject(bundle) !== lookup.digest) return;
  const { client, registry, repository, digest, scope } = lookup;
  const manifest = await attempt(lookup, () =>
    client.manifest(registry, repository, digest, scope),
  );
  if (manifest !== undefined) keep(lookup, parseBundle(bundle, manifest.body));
}

/** Whether a referrer needs fetching: bundles (unless an attestation not read), legacy, unknown. */
function wanted(lookup: Lookup, d: Descriptor): boolean {
  if (d.artifactType === LEGACY_REFERRER) return true;
  if (d.artifactType === undefined || d.artifactType === EMPTY_TYPE) return true;
  if (d.artifactType !== BUNDLE_TYPE) return false; // SBOMs and other artifacts
  const predicate = d.annotations[PREDICATE_ANNOTATION];
  return lookup.attestations || predicate === undefined || predicate === COSIGN_SIGN_PREDICATE;
}

async function referrers(lookup: Lookup): Promise<void> {
  const { client, registry, repository, digest, scope } = lookup;
  const listed = await client.referrers(registry, repository, digest, scope);
  const index =
    listed ?? (await client.tagged(registry, repository, digest.replace(':', '-'), scope))?.body;
  if (index === undefined) return;
  // Bundles and legacy referrers first, then descriptors whose type says nothing (some
  // registries report the config's empty type, as go-containerregistry's does).
  const candidates = descriptors(fieldOf(index, 'manifests'), 1024).filter((d) =>
    wanted(lookup, d),
  );
  const specific = (d: Descriptor) => d.artifactType !== undefined && d.artifactType !== EMPTY_TYPE;
  const chosen = [...candidates.filter(specific), ...candidates.filter((d) => !specific(d))].slice(
    0,
    MAX_LAYERS,
  );
  await Promise.all(
    chosen.map(async (descriptor) => {
      const fetched = await attempt(lookup, () =>
        client.manifest(registry, repository, descriptor.digest, scope),
      );
      const manifest = fetched === undefined ? undefined : json(fetched.body);
      if (fetched === undefined || !isRecord(manifest)) return;
      const [layer] = descriptors(manifest.layers, 1);
      const config = isRecord(manifest.config) ? manifest.config.mediaType : undefined;
      if (manifest.artifactType === LEGACY_REFERRER || config === LEGACY_REFERRER) {
        return legacyLayers(lookup, fetched.body);
      }
      const isBundle = manifest.artifactType === BUNDLE_TYPE || layer?.mediaType === BUNDLE_TYPE;
      if (isBundle && layer !== undefined) await bundleLayer(lookup, layer);
    }),
  );
}

/** Every signature (and, when asked, attestation) of a digest, read and parsed. */
export async function findArtifacts(
  client: RegistryClient,
  registry: string,
  repository: string,
  digest: string,
  scope: RequestScope,
  options: { attestations: boolean },
): Promise<Found> {
  const lookup: Lookup = {
    client,
    registry,
    repository,
    digest,
    scope,
    attestations: options.attestations,
    artifacts: [],
    malformed: [],
    errors: [],
  };
  const reads = [legacyTag(lookup, 'sig'), referrers(lookup)];
  if (options.attestations) reads.push(legacyTag(lookup, 'att'));
  for (const result of await Promise.allSettled(reads)) {
    if (result.status === 'rejected') lookup.errors.push(result.reason);
  }
  return { artifacts: lookup.artifacts, malformed: lookup.malformed, errors: lookup.errors };
}

/** Whether what an entry needs of a digest verified: its signature and required attestations. */
export function satisfied(judgement: Judgement, entry: Verification): boolean {
  return (
    judgement.signature.verified &&
    entry.attestations.every(
      ({ type, required }) => !required || judgement.attestations.some((a) => a.type === type),
    )
  );
}

/**
 * What was found, judged against the entry. A registry failure is thrown only when what
 * the entry needs did not verify (a failure never hides a valid signature, and is never
 * read as "unsigned").
 */
export function judgeFound(found: Found, digest: string, entry: Verification): Judgement {
  const judgement = judge(found.artifacts, found.malformed, digest, entry);
  const [failure] = found.errors;
  if (failure !== undefined && !satisfied(judgement, entry)) {
    throw failure instanceof RegistryError
      ? failure
      : new RegistryError(
          `reading signatures: ${failure instanceof Error ? failure.message : String(failure)}`,
          { cause: failure },
        );
  }
  return judgement;
}
