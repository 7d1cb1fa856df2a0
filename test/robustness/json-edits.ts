/**
 * Paths into JSON values and edits at them, for mutating reviews: what the properties and
 * the exhaustive null tests share.
 */
import { isRecord } from '../../src/shared/json.ts';

export type Step = string | number;

/** A review to send: its JSON text, and that text parsed, as the server will see it. */
export interface Sent {
  readonly text: string;
  readonly parsed: unknown;
}

export const sent = (value: unknown): Sent => {
  const text = JSON.stringify(value) ?? 'null';
  return { text, parsed: JSON.parse(text) as unknown };
};

/** What `huge` puts in: a string long enough to matter, well within the body limit. */
const HUGE = 'x'.repeat(200_000);

export type Action =
  | { readonly kind: 'delete' }
  | { readonly kind: 'replace'; readonly value: unknown }
  | { readonly kind: 'huge' }
  | { readonly kind: 'image'; readonly value: string };

/** Every path in a JSON value, parents before children, managedFields left out. */
export function paths(value: unknown, prefix: Step[] = [], out: Step[][] = []): Step[][] {
  if (Array.isArray(value)) {
    value.forEach((item, index) => {
      out.push([...prefix, index]);
      paths(item, [...prefix, index], out);
    });
  } else if (isRecord(value)) {
    for (const key of Object.keys(value)) {
      // managedFields is bulk that nothing reads; mutating it mostly wastes runs.
      if (key === 'managedFields') continue;
      out.push([...prefix, key]);
      paths(value[key], [...prefix, key], out);
    }
  }
  return out;
}

export function parentOf(root: unknown, path: readonly Step[]): unknown {
  let node = root;
  for (const step of path.slice(0, -1)) {
    if (Array.isArray(node) && typeof step === 'number') node = node[step];
    else if (isRecord(node) && typeof step === 'string') node = node[step];
    else return undefined;
  }
  return node;
}

/** Sets (a copy of) `value` at `path`, or deletes what is there. */
export function apply(root: unknown, path: readonly Step[], act: Action): void {
  const parent = parentOf(root, path);
  const last = path.at(-1);
  // A copy: generated constants ([], {}) are shared between runs and must never change.
  const value =
    act.kind === 'huge' ? HUGE : act.kind === 'delete' ? undefined : structuredClone(act.value);
  if (Array.isArray(parent) && typeof last === 'number') {
    if (act.kind === 'delete') parent.splice(last, 1);
    else parent[last] = value;
  } else if (isRecord(parent) && typeof last === 'string') {
    if (act.kind === 'delete') delete parent[last];
    // defineProperty: a generated "__proto__" key must stay an own key, as JSON.parse makes it.
    else Object.defineProperty(parent, last, { value, enumerable: true, writable: true });
  }
}

/** The value at `path`, or undefined. */
export function valueAt(root: unknown, path: readonly Step[]): unknown {
  const parent = parentOf(root, path);
  const last = path.at(-1);
  if (Array.isArray(parent) && typeof last === 'number') return parent[last];
  return isRecord(parent) && typeof last === 'string' ? parent[last] : undefined;
}
