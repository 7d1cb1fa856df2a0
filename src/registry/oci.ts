/**
 * What a registry says, checked against the OCI grammar before it is used in a URL or a
 * decision. A registry (or whoever pushed to it) writes manifests, indexes and headers;
 * a digest like `sha256:x/../../api/v2.0/users?q=` must never become a path the gateway
 * requests with its credentials. A descriptor that fails a check is skipped, never fatal
 * to the valid ones beside it.
 */
import { isRecord } from '../shared/json.ts';

/** The algorithms the OCI image spec registers, with the length of their hex encoding. */
const DIGEST_LENGTHS: Readonly<Record<string, number>> = { sha256: 64, sha512: 128 };

/** `sha256:<64 lower-case hex>` or `sha512:<128>`: the only digests the gateway uses. */
export function isDigest(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  const colon = value.indexOf(':');
  const length = DIGEST_LENGTHS[value.slice(0, colon)];
  const hex = value.slice(colon + 1);
  return length !== undefined && hex.length === length && /^[0-9a-f]+$/.test(hex);
}

/** RFC 6838 type/subtype (no parameters), as descriptors carry them. */
const MEDIA_TYPE =
  /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

export function isMediaType(value: unknown): value is string {
  return typeof value === 'string' && MEDIA_TYPE.test(value);
}

/** A Content-Type header's media type, its parameters dropped; "" when malformed. */
export function headerMediaType(value: string | undefined): string {
  const type = (value ?? '').split(';')[0]?.trim() ?? '';
  return isMediaType(type) ? type : '';
}

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly artifactType?: string;
  readonly annotations: Readonly<Record<string, string>>;
}

/**
 * A descriptor (OCI image spec, "Content Descriptors"), or undefined when any field the
 * gateway reads is malformed: media type, digest and size required and well-formed, an
 * artifactType (if any) a media type, annotations strings only (others are dropped).
 */
export function descriptor(value: unknown): Descriptor | undefined {
  if (!isRecord(value)) return undefined;
  const { mediaType, digest, size, artifactType } = value;
  if (!isMediaType(mediaType) || !isDigest(digest)) return undefined;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return undefined;
  if (artifactType !== undefined && artifactType !== '' && !isMediaType(artifactType)) {
    return undefined;
  }
  const annotations: Record<string, string> = {};
  if (isRecord(value.annotations)) {
    for (const [key, text] of Object.entries(value.annotations)) {
      if (typeof text === 'string') annotations[key] = text;
    }
  }
  return {
    mediaType,
    digest,
    size,
    ...(typeof artifactType === 'string' && artifactType !== '' ? { artifactType } : {}),
    annotations,
  };
}

/** The well-formed descriptors of a list (a manifest's layers, an index's manifests), at most `max`. */
export function descriptors(value: unknown, max: number): Descriptor[] {
  if (!Array.isArray(value)) return [];
  const found: Descriptor[] = [];
  for (const item of value) {
    const narrowed = descriptor(item);
    if (narrowed !== undefined) found.push(narrowed);
    if (found.length >= max) break;
  }
  return found;
}
