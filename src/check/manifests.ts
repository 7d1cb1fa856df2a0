/**
 * Kubernetes manifests for `imagegate check`: multi-document YAML or JSON, `kind: List`
 * expanded, every document narrowed to an object with apiVersion and kind.
 */
import { parseAllDocuments } from 'yaml';
import { InputError } from '../shared/input-error.ts';
import { arrayField, isRecord, type JsonObject, recordField, stringField } from '../shared/json.ts';

export interface Manifest {
  /** Where it came from: "deploy.yaml#2" (document numbers start at 1). */
  readonly origin: string;
  readonly object: JsonObject;
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace: string;
}

export function parseManifests(text: string, source: string): Manifest[] {
  const documents = parseAllDocuments(text, { uniqueKeys: true });
  if (!Array.isArray(documents)) {
    // The yaml package returns an EmptyStream for input with no documents at all.
    return [];
  }
  const manifests: Manifest[] = [];
  documents.forEach((document, index) => {
    const origin = `${source}#${index + 1}`;
    const [error] = document.errors;
    if (error !== undefined) {
      throw new InputError(`${origin}: not valid YAML or JSON: ${error.message}`, { cause: error });
    }
    let value: unknown;
    try {
      value = document.toJS({ maxAliasCount: 100 });
    } catch (cause) {
      // Unresolved aliases and alias bombs surface here, not in document.errors.
      const detail = cause instanceof Error ? cause.message : String(cause);
      throw new InputError(`${origin}: not valid YAML: ${detail}`, { cause });
    }
    if (value === null || value === undefined) return; // an empty document ("---" alone)
    manifests.push(...expand(value, origin));
  });
  return manifests;
}

function expand(value: unknown, origin: string): Manifest[] {
  if (!isRecord(value)) throw new InputError(`${origin}: a manifest must be a map`);
  const apiVersion = stringField(value, 'apiVersion');
  const kind = stringField(value, 'kind');
  if (apiVersion === '' || kind === '') {
    throw new InputError(`${origin}: a manifest needs apiVersion and kind`);
  }
  if (kind === 'List' || kind.endsWith('List')) {
    const items = arrayField(value, 'items');
    if (items === undefined) throw new InputError(`${origin}: ${kind} has no items list`);
    return items.flatMap((item, i) => expand(item, `${origin}.items[${i}]`));
  }
  const metadata = recordField(value, 'metadata') ?? {};
  return [
    {
      origin,
      object: value,
      apiVersion,
      kind,
      name: stringField(metadata, 'name') || stringField(metadata, 'generateName'),
      namespace: stringField(metadata, 'namespace'),
    },
  ];
}
