/**
 * Small reviews and JSON text that JSON.stringify cannot produce: nesting past any sane
 * depth, `__proto__` / `constructor` / `prototype` members in every object, duplicate keys.
 */
import type { JsonObject } from '../../src/shared/json.ts';

export const TRUSTED = 'registry.example.com/team/api:2.3.1';
export const UNTRUSTED = 'evil.io/miner/xmrig:6.21';
export const UID = '5d3c9b8e-7a41-4f0e-b2c6-1e9d8f7a6b50';

export interface ContainerSpec {
  readonly name: string;
  readonly image: unknown;
  readonly imagePullPolicy?: unknown;
}

/** A Pod CREATE review; `request` members replace the defaults. */
export function podReview(
  containers: readonly ContainerSpec[],
  request: JsonObject = {},
  apiVersion = 'admission.k8s.io/v1',
): JsonObject {
  return {
    apiVersion,
    kind: 'AdmissionReview',
    request: {
      uid: UID,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      operation: 'CREATE',
      namespace: 'shop',
      name: 'web',
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: 'web',
          namespace: 'shop',
          annotations: { 'audit.image-policy.k8s.io/ticket': 'CHG-1' },
        },
        spec: { containers: containers.map((c) => ({ imagePullPolicy: 'Always', ...c })) },
      },
      ...request,
    },
  };
}

export function imageReview(images: readonly unknown[], spec: JsonObject = {}): JsonObject {
  return {
    apiVersion: 'imagepolicy.k8s.io/v1alpha1',
    kind: 'ImageReview',
    spec: {
      containers: images.map((image) => ({ image })),
      annotations: { 'audit.image-policy.k8s.io/ticket': 'CHG-1' },
      namespace: 'shop',
      ...spec,
    },
  };
}

/** `[[[…]]]` or `{"a":{"a":…1}}`, `depth` levels. */
export function nested(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array'
    ? '['.repeat(depth) + ']'.repeat(depth)
    : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

/** Stands for raw JSON text in a value given to `withRaw`. */
export const RAW = '\u0000raw\u0000';

/** JSON text of `value` with the string RAW (once) replaced by the JSON text `raw`. */
export function withRaw(value: unknown, raw: string): string {
  const text = JSON.stringify(value);
  const placeholder = JSON.stringify(RAW);
  if (!text.includes(placeholder)) throw new Error('withRaw: RAW is not in the value');
  return text.replace(placeholder, () => raw);
}

/** JSON text of `value` with `"key": <raw JSON>` added as the object's last member. */
export function withMember(value: JsonObject, key: string, raw: string): string {
  const text = JSON.stringify(value);
  return `${text.slice(0, -1)},${JSON.stringify(key)}:${raw}}`;
}

const PROTO_VALUE = '{"polluted":"yes","image":"evil.io/proto:1","allowed":true}';

/**
 * JSON text of `value` where every object also has `__proto__`, `constructor` and
 * `prototype` members, first, so a naive merge would meet them before the real keys. In
 * string maps (annotations) the values are strings, or the map itself would be refused.
 */
export function withPrototypeKeys(value: unknown, parentKey = ''): string {
  if (Array.isArray(value)) return `[${value.map((v) => withPrototypeKeys(v, '')).join(',')}]`;
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  const hostile =
    parentKey === 'annotations' || parentKey === 'labels'
      ? ['"__proto__":"x"', '"constructor":"x"', '"prototype":"x"']
      : [
          `"__proto__":${PROTO_VALUE}`,
          `"constructor":{"prototype":${PROTO_VALUE}}`,
          `"prototype":${PROTO_VALUE}`,
        ];
  const members = Object.entries(value).map(
    ([key, item]) => `${JSON.stringify(key)}:${withPrototypeKeys(item, key)}`,
  );
  return `{${[...hostile, ...members].join(',')}}`;
}

/**
 * JSON text of `value` with a second member `"asKey": <raw>` right after the first
 * `"key": <first>`: text a client (or a buggy encoder) can send. With `asKey` = `key`, a
 * duplicate key, of which JSON.parse keeps the last.
 */
export function duplicateKey(
  value: unknown,
  key: string,
  first: unknown,
  raw: string,
  asKey = key,
): string {
  const text = JSON.stringify(value);
  const member = `${JSON.stringify(key)}:${JSON.stringify(first)}`;
  const at = text.indexOf(member);
  if (at === -1) throw new Error(`duplicateKey: ${member} is not in the review`);
  const end = at + member.length;
  return `${text.slice(0, end)},${JSON.stringify(asKey)}:${raw}${text.slice(end)}`;
}
