/**
 * Review → policy input (docs/policy-input.md). Pure: the same translation serves the
 * validating and mutating webhooks, the ImagePolicyWebhook and `imagegate check`.
 */

import { InputError } from '../shared/input-error.ts';
import {
  arrayField,
  getPointer,
  isRecord,
  type JsonObject,
  recordField,
  stringField,
} from '../shared/json.ts';
import type {
  AdmissionRequest,
  GroupVersionKind,
  GroupVersionResource,
} from './admission-review.ts';
import { type PolicyReference, parseImageReference, toPolicyReference } from './image-reference.ts';
import type { ImageReview } from './image-review.ts';
import { CONTAINER_LISTS, coveredKind, IMAGE_VOLUMES, type ImageList } from './workloads.ts';

export interface PolicyImage {
  /** The container's name, or the image volume's. */
  container: string;
  list: ImageList;
  index: number;
  /** The container, or the volume. */
  path: string;
  podSpecPath: string;
  /** Where the image string is: `<path>/image`, or `<path>/image/reference` for a volume. */
  imagePath: string;
  /** Where its pull policy is: `<path>/imagePullPolicy`, or `<path>/image/pullPolicy`. */
  pullPolicyPath: string;
  raw: string;
  new: boolean;
  pullPolicy: string;
  reference: PolicyReference;
  /** Registry facts the gateway gathered for this image (pinDigests, signatures). */
  facts?: JsonObject;
}

/** The ownerReference marked `controller: true`: who owns the object's pod template. */
export interface PolicyController {
  apiVersion: string;
  kind: string;
  name: string;
}

export interface PolicyPodSpec {
  path: string;
  imagePullSecrets: unknown[];
  hasImagePullSecrets: boolean;
}

export interface PolicyVolumeClaim {
  path: string;
  storageClassName: string;
  hasStorageClassName: boolean;
}

export interface PolicyInput {
  protocol: 'admission' | 'imagereview';
  apiVersion: string;
  uid: string;
  operation: string;
  namespace: string;
  name: string;
  kind: GroupVersionKind;
  resource: GroupVersionResource;
  subResource: string;
  dryRun: boolean;
  images: PolicyImage[];
  /** null when no controller owns the object (always for an ImageReview). */
  controller: PolicyController | null;
  podSpecs: PolicyPodSpec[];
  volumeClaims: PolicyVolumeClaim[];
  annotations: Record<string, string>;
  review: JsonObject;
  /** For the facts entrypoint only: the one decision about to be made. */
  factsFor?: 'mutate' | 'validate';
}

/** Annotations the ImagePolicyWebhook forwards, and the only ones the policy sees. */
export function isImagePolicyAnnotation(key: string): boolean {
  return key.includes('.image-policy.k8s.io/');
}

export function admissionInput(apiVersion: string, request: AdmissionRequest): PolicyInput {
  const covered = coveredKind(request.kind.group, request.kind.kind);
  const podSpecPaths = covered?.podSpecPaths ?? [];
  const updating = request.operation === 'UPDATE';
  const images: PolicyImage[] = [];
  const podSpecs: PolicyPodSpec[] = [];
  const judged = request.operation === 'CREATE' || updating;
  for (const podSpecPath of podSpecPaths) {
    const podSpec = getPointer(request.object, podSpecPath);
    if (!isRecord(podSpec)) {
      // Read as "no containers", a pod spec (or anything around it) of the wrong type
      // would be let through.
      const wrong = judged ? wrongTypeAlong(request.object, podSpecPath) : undefined;
      if (wrong !== undefined) throw new InputError(`${wrong} is not an object`);
      continue;
    }
    if (judged) {
      for (const list of [...CONTAINER_LISTS, IMAGE_VOLUMES]) {
        const value = Object.hasOwn(podSpec, list) ? podSpec[list] : undefined;
        if (value !== undefined && value !== null && !Array.isArray(value)) {
          throw new InputError(`${podSpecPath}/${list} is not a list`);
        }
      }
      const wrongVolume = wrongImageVolume(podSpec, podSpecPath);
      if (wrongVolume !== undefined) throw new InputError(`${wrongVolume} is not an object`);
    }
    const oldImages = updating ? imagesIn(getPointer(request.oldObject, podSpecPath)) : undefined;
    // A loop, not push(...spread): a spread of ~140k containers overflows the stack.
    for (const image of walkPodSpec(podSpec, podSpecPath, oldImages)) images.push(image);
    const secrets = arrayField(podSpec, 'imagePullSecrets');
    podSpecs.push({
      path: podSpecPath,
      // Only the names: whatever else an entry holds is not the policy's business, and
      // arbitrary nesting copied into wasm would be the client's problem turned into ours.
      imagePullSecrets: (secrets ?? []).map((entry) =>
        isRecord(entry) && typeof entry.name === 'string' ? { name: entry.name } : {},
      ),
      hasImagePullSecrets: secrets !== undefined,
    });
  }
  return {
    protocol: 'admission',
    apiVersion,
    uid: request.uid,
    operation: request.operation,
    namespace: request.namespace,
    name: request.name || objectName(request.object),
    kind: request.kind,
    resource: request.resource,
    subResource: request.subResource,
    dryRun: request.dryRun,
    images,
    controller: controllerOf(request.object),
    podSpecs,
    volumeClaims: covered?.class === 'volume-claim' ? volumeClaims(request.object) : [],
    annotations: admissionAnnotations(request.object, podSpecPaths),
    review: request.raw,
  };
}

export function imageReviewInput(review: ImageReview): PolicyInput {
  return {
    protocol: 'imagereview',
    apiVersion: review.apiVersion,
    uid: '',
    operation: '',
    namespace: review.namespace,
    name: '',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    subResource: '',
    dryRun: false,
    images: review.images.map((raw, index) => ({
      container: '',
      list: 'containers',
      index,
      path: `/spec/containers/${index}`,
      podSpecPath: '/spec',
      imagePath: `/spec/containers/${index}/image`,
      pullPolicyPath: `/spec/containers/${index}/imagePullPolicy`,
      raw,
      new: true,
      pullPolicy: '',
      reference: toPolicyReference(parseImageReference(raw)),
    })),
    controller: null,
    podSpecs: [],
    volumeClaims: [],
    annotations: filterAnnotations(review.annotations),
    review: review.spec,
  };
}

/**
 * How many images the request pulls, counted before anything is built from them: the
 * most of the object's and the old object's (both are walked on UPDATE). Entries of the
 * container lists count whatever they hold; so do image volumes.
 */
export function imageCount(request: AdmissionRequest): number {
  const paths = coveredKind(request.kind.group, request.kind.kind)?.podSpecPaths ?? [];
  const count = (object: unknown) => {
    let n = 0;
    for (const path of paths) {
      const podSpec = getPointer(object, path);
      if (!isRecord(podSpec)) continue;
      for (const list of CONTAINER_LISTS) n += arrayField(podSpec, list)?.length ?? 0;
      for (const volume of arrayField(podSpec, IMAGE_VOLUMES) ?? []) {
        if (isRecord(volume) && isRecord(volume.image)) n++;
      }
    }
    return n;
  };
  return Math.max(count(request.object), count(request.oldObject));
}

function walkPodSpec(
  podSpec: JsonObject,
  podSpecPath: string,
  oldImages: ReadonlySet<string> | undefined,
): PolicyImage[] {
  const images: PolicyImage[] = [];
  const isNew = (raw: string) => oldImages === undefined || !oldImages.has(raw);
  for (const list of CONTAINER_LISTS) {
    const containers = arrayField(podSpec, list) ?? [];
    containers.forEach((container, index) => {
      const fields = isRecord(container) ? container : {};
      const image = Object.hasOwn(fields, 'image') ? fields.image : undefined;
      const raw = typeof image === 'string' ? image : '';
      const path = `${podSpecPath}/${list}/${index}`;
      images.push({
        container: stringField(fields, 'name'),
        list,
        index,
        path,
        podSpecPath,
        imagePath: `${path}/image`,
        pullPolicyPath: `${path}/imagePullPolicy`,
        raw,
        new: isNew(raw),
        pullPolicy: stringField(fields, 'imagePullPolicy'),
        reference: toPolicyReference(parseImageReference(image)),
      });
    });
  }
  (arrayField(podSpec, IMAGE_VOLUMES) ?? []).forEach((volume, index) => {
    const source = isRecord(volume) ? recordField(volume, 'image') : undefined;
    if (source === undefined || !isRecord(volume)) return;
    const reference = Object.hasOwn(source, 'reference') ? source.reference : undefined;
    const raw = typeof reference === 'string' ? reference : '';
    const path = `${podSpecPath}/${IMAGE_VOLUMES}/${index}`;
    images.push({
      container: stringField(volume, 'name'),
      list: IMAGE_VOLUMES,
      index,
      path,
      podSpecPath,
      imagePath: `${path}/image/reference`,
      pullPolicyPath: `${path}/image/pullPolicy`,
      raw,
      new: isNew(raw),
      pullPolicy: stringField(source, 'pullPolicy'),
      reference: toPolicyReference(parseImageReference(reference)),
    });
  });
  return images;
}

/** The first image volume whose `image` is present but not an object, if any. */
function wrongImageVolume(podSpec: JsonObject, podSpecPath: string): string | undefined {
  const volumes = arrayField(podSpec, IMAGE_VOLUMES) ?? [];
  const index = volumes.findIndex(
    (volume) =>
      isRecord(volume) &&
      Object.hasOwn(volume, 'image') &&
      volume.image !== null &&
      !isRecord(volume.image),
  );
  return index < 0 ? undefined : `${podSpecPath}/${IMAGE_VOLUMES}/${index}/image`;
}

/** The controller ownerReference (`controller: true`) of the object, if it has one. */
function controllerOf(object: unknown): PolicyController | null {
  const owners = getPointer(object, '/metadata/ownerReferences');
  if (!Array.isArray(owners)) return null;
  const owner = owners.find((entry) => isRecord(entry) && entry.controller === true);
  if (!isRecord(owner)) return null;
  return {
    apiVersion: stringField(owner, 'apiVersion'),
    kind: stringField(owner, 'kind'),
    name: stringField(owner, 'name'),
  };
}

/** The first step of a plain-key pointer that is present but not an object, if any. */
function wrongTypeAlong(root: unknown, pointer: string): string | undefined {
  const steps = pointer.slice(1).split('/');
  for (let i = 1; i <= steps.length; i++) {
    const prefix = `/${steps.slice(0, i).join('/')}`;
    const value = getPointer(root, prefix);
    if (value === undefined || value === null) return undefined;
    if (!isRecord(value)) return prefix;
  }
  return undefined;
}

/** Every image an (old) pod spec pulls, in any container list or image volume. */
function imagesIn(podSpec: unknown): ReadonlySet<string> {
  const images = new Set<string>();
  if (!isRecord(podSpec)) return images;
  for (const list of CONTAINER_LISTS) {
    for (const container of arrayField(podSpec, list) ?? []) {
      if (isRecord(container) && typeof container.image === 'string') images.add(container.image);
    }
  }
  for (const volume of arrayField(podSpec, IMAGE_VOLUMES) ?? []) {
    const source = isRecord(volume) ? recordField(volume, 'image') : undefined;
    if (source !== undefined && typeof source.reference === 'string') images.add(source.reference);
  }
  return images;
}

function volumeClaims(object: unknown): PolicyVolumeClaim[] {
  const spec = isRecord(object) ? recordField(object, 'spec') : undefined;
  if (spec === undefined) return [];
  const value = Object.hasOwn(spec, 'storageClassName') ? spec.storageClassName : undefined;
  // An explicit "" means "no class" to Kubernetes and must not be defaulted; only a
  // missing (or null) field is.
  return [
    {
      path: '/spec',
      storageClassName: typeof value === 'string' ? value : '',
      hasStorageClassName: typeof value === 'string',
    },
  ];
}

function objectName(object: unknown): string {
  const metadata = isRecord(object) ? recordField(object, 'metadata') : undefined;
  return metadata === undefined ? '' : stringField(metadata, 'name');
}

function annotationEntries(object: unknown, metadataPath: string): [string, string][] {
  const annotations = getPointer(object, `${metadataPath}/annotations`);
  if (!isRecord(annotations)) return [];
  return Object.entries(annotations).filter(
    (entry): entry is [string, string] =>
      typeof entry[1] === 'string' && isImagePolicyAnnotation(entry[0]),
  );
}

/** The object's annotations, then its pod template's, the template winning. */
function admissionAnnotations(
  object: unknown,
  podSpecPaths: readonly string[],
): Record<string, string> {
  const entries = annotationEntries(object, '/metadata');
  for (const podSpecPath of podSpecPaths) {
    if (podSpecPath === '/spec') continue;
    entries.push(...annotationEntries(object, `${podSpecPath.slice(0, -'/spec'.length)}/metadata`));
  }
  // fromEntries defines own properties: a "__proto__" key can never reach a prototype.
  return Object.fromEntries(entries);
}

function filterAnnotations(annotations: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(annotations).filter(([key]) => isImagePolicyAnnotation(key)),
  );
}
