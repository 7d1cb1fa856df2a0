/**
 * A registry's content as recorded by test/tools/sigstore-fixtures.ts (what a verifier
 * reads: manifests by tag and digest, the blobs of signature manifests, referrers indexes),
 * and a server that replays it over HTTPS on 127.0.0.1 (fake-registry.ts's TLS and
 * counting): the real cosign's output, served without the Go tools, so the conformance
 * fixtures run wherever `ava` does.
 */
import { createHash } from 'node:crypto';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import { type Fake, fake } from './fake-registry.ts';
import type { Teardown } from './teardown.ts';

export interface RecordedManifest {
  readonly mediaType: string;
  /** The bytes exactly as the registry served them (JSON text). */
  readonly body: string;
}

export interface RecordedRepository {
  /** By tag and by digest. */
  readonly manifests: Record<string, RecordedManifest>;
  /** Base64, by digest. */
  readonly blobs: Record<string, string>;
  /** The referrers index of a digest (registries with the API only). */
  readonly referrers: Record<string, string>;
}

export interface RecordedRegistry {
  /** Whether it serves the OCI 1.1 referrers API. */
  readonly referrersApi: boolean;
  readonly repositories: Record<string, RecordedRepository>;
}

export const sha256 = (bytes: Buffer | string) =>
  `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

const EMPTY_INDEX = JSON.stringify({
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.index.v1+json',
  manifests: [],
});

/** Narrows a recorded registry read from a fixture file. */
export function recordedRegistry(value: unknown): RecordedRegistry {
  if (!isRecord(value) || !isRecord(value.repositories)) {
    throw new TypeError('not a recorded registry');
  }
  return value as unknown as RecordedRegistry;
}

/** Serves the recorded content; `seen` says what was asked (for "warm: no request"). */
export function replay(t: Teardown, recorded: RecordedRegistry): Promise<Fake> {
  return fake(t, (req) => {
    const path = req.url.split('?')[0] ?? '';
    if (path === '/v2/' || path === '/v2') return { status: 200, body: '{}' };
    const match = /^\/v2\/(.+)\/(manifests|blobs|referrers)\/([^/]+)$/.exec(path);
    const repository = match?.[1] === undefined ? undefined : recorded.repositories[match[1]];
    if (match === null || repository === undefined) return { status: 404 };
    const [, , kind, ref = ''] = match;
    if (kind === 'manifests') {
      const manifest = repository.manifests[decodeURIComponent(ref)];
      if (manifest === undefined) return { status: 404 };
      return {
        status: 200,
        headers: {
          'content-type': manifest.mediaType,
          'docker-content-digest': sha256(manifest.body),
        },
        body: manifest.body,
      };
    }
    if (kind === 'blobs') {
      const blob = repository.blobs[ref];
      return blob === undefined
        ? { status: 404 }
        : { status: 200, body: Buffer.from(blob, 'base64') };
    }
    if (!recorded.referrersApi) return { status: 404 };
    return {
      status: 200,
      headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' },
      body: repository.referrers[ref] ?? EMPTY_INDEX,
    };
  });
}

/** The JSON of a recorded manifest. */
export function manifestJson(repository: RecordedRepository, ref: string): JsonObject {
  const manifest = repository.manifests[ref];
  const parsed: unknown = manifest === undefined ? undefined : JSON.parse(manifest.body);
  if (!isRecord(parsed)) throw new TypeError(`no manifest ${ref}`);
  return parsed;
}
