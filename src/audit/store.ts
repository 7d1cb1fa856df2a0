/**
 * What the audit knows: per namespace, per object uid, its results — never the objects (a
 * re-audit lists them again) — and which namespaces changed since they were last published.
 */
import type { AuditedObject, AuditResult, ResultKind } from './evaluate.ts';

export type Summary = Record<ResultKind, number>;

export const emptySummary = (): Summary => ({ pass: 0, fail: 0, warn: 0, error: 0, skip: 0 });

export class AuditStore {
  readonly #byNamespace = new Map<string, Map<string, AuditedObject>>();
  readonly #namespaceOf = new Map<string, string>();
  readonly #dirty = new Set<string>();

  /** Records an object's results (undefined: not audited, e.g. excluded); marks its namespace. */
  set(uid: string, namespace: string, audited: AuditedObject | undefined): void {
    const before = this.#namespaceOf.get(uid);
    if (before !== undefined && (audited === undefined || before !== namespace)) this.delete(uid);
    if (audited === undefined) return;
    let objects = this.#byNamespace.get(namespace);
    if (objects === undefined) {
      objects = new Map();
      this.#byNamespace.set(namespace, objects);
    }
    const previous = objects.get(uid);
    objects.set(uid, audited);
    this.#namespaceOf.set(uid, namespace);
    if (previous === undefined || !sameResults(previous.results, audited.results))
      this.#dirty.add(namespace);
  }

  delete(uid: string): void {
    const namespace = this.#namespaceOf.get(uid);
    if (namespace === undefined) return;
    this.#namespaceOf.delete(uid);
    const objects = this.#byNamespace.get(namespace);
    objects?.delete(uid);
    if (objects !== undefined && objects.size === 0) this.#byNamespace.delete(namespace);
    this.#dirty.add(namespace);
  }

  /** Forgets objects of a kind not seen in a fresh list (deleted while not watched). */
  retainOnly(kind: string, seen: ReadonlySet<string>): void {
    for (const objects of [...this.#byNamespace.values()]) {
      for (const [uid, audited] of [...objects]) {
        if (audited.kind === kind && !seen.has(uid)) this.delete(uid);
      }
    }
  }

  /** Namespaces whose results changed since the last call. */
  takeDirty(): string[] {
    const dirty = [...this.#dirty].sort();
    this.#dirty.clear();
    return dirty;
  }

  markDirty(namespace: string): void {
    this.#dirty.add(namespace);
  }

  namespaces(): string[] {
    return [...this.#byNamespace.keys()].sort();
  }

  objects(namespace: string): AuditedObject[] {
    return [...(this.#byNamespace.get(namespace)?.values() ?? [])];
  }

  get size(): number {
    return this.#namespaceOf.size;
  }

  /** Counts by namespace, rule and result, for metrics. */
  counts(): Map<string, Map<string, Summary>> {
    const out = new Map<string, Map<string, Summary>>();
    for (const [namespace, objects] of this.#byNamespace) {
      const rules = new Map<string, Summary>();
      for (const audited of objects.values()) {
        for (const r of audited.results) {
          const summary = rules.get(r.rule) ?? emptySummary();
          summary[r.result]++;
          rules.set(r.rule, summary);
        }
      }
      out.set(namespace, rules);
    }
    return out;
  }

  summary(namespace?: string): Summary {
    const summary = emptySummary();
    const namespaces = namespace === undefined ? this.namespaces() : [namespace];
    for (const ns of namespaces) {
      for (const audited of this.objects(ns)) for (const r of audited.results) summary[r.result]++;
    }
    return summary;
  }
}

function sameResults(a: readonly AuditResult[], b: readonly AuditResult[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
