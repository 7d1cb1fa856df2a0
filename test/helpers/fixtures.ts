/**
 * Fixtures by name: `loadJsonObject('admission', 'pod-create-v1')` reads
 * test/fixtures/admission/pod-create-v1.json.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';

export type FixtureDir = 'admission' | 'imagereview' | 'manifests';

const ROOT = fileURLToPath(new URL('../fixtures/', import.meta.url));

export function fixturePath(dir: FixtureDir, file: string): string {
  return join(ROOT, dir, file);
}

/** Fixture names in a directory without their extension, sorted; the names are test titles. */
export function fixtureNames(dir: FixtureDir, extension = '.json'): string[] {
  return readdirSync(join(ROOT, dir))
    .filter((file) => file.endsWith(extension))
    .map((file) => file.slice(0, -extension.length))
    .sort();
}

export function readFixture(dir: FixtureDir, file: string): string {
  return readFileSync(fixturePath(dir, file), 'utf8');
}

/** A JSON fixture parsed, as a server would receive it: `unknown` until narrowed. */
export function loadJson(dir: FixtureDir, name: string): unknown {
  return JSON.parse(readFixture(dir, `${name}.json`));
}

/** A JSON fixture that must be an object (every review is). */
export function loadJsonObject(dir: FixtureDir, name: string): JsonObject {
  const value = loadJson(dir, name);
  if (!isRecord(value)) throw new TypeError(`fixture ${dir}/${name}.json is not a JSON object`);
  return value;
}

/** A string field of a fixture: "" when absent (Go's omitempty), an error when not a string. */
export function sentString(object: JsonObject, key: string): string {
  const value = Object.hasOwn(object, key) ? object[key] : undefined;
  if (value === undefined) return '';
  if (typeof value !== 'string') throw new TypeError(`fixture field ${key} is not a string`);
  return value;
}

/**
 * The captured Pod CREATE (admission/pod-create-v1) with these images as its containers,
 * each pulled Always and named c0, c1…, no init containers; optionally in another namespace
 * or with another uid. What most registry and server tests send.
 */
export function podWithImages(
  images: readonly string[],
  options: { namespace?: string; uid?: string; names?: readonly string[] } = {},
): JsonObject {
  const review = structuredClone(loadJsonObject('admission', 'pod-create-v1'));
  const request = review.request as JsonObject;
  const object = request.object as JsonObject;
  if (options.namespace !== undefined) {
    request.namespace = options.namespace;
    (object.metadata as JsonObject).namespace = options.namespace;
  }
  if (options.uid !== undefined) request.uid = options.uid;
  const spec = object.spec as JsonObject;
  spec.containers = images.map((image, i) => ({
    name: options.names?.[i] ?? `c${i}`,
    image,
    imagePullPolicy: 'Always',
  }));
  delete spec.initContainers;
  return review;
}
