/**
 * The audit loop: list every audited kind page by page, evaluate each object, keep only
 * its results; then watch each kind from the list's resourceVersion (bookmarks keep it
 * fresh), so a change costs one evaluation and not a re-list. A watch the server ends is
 * resumed from the last resourceVersion; a resourceVersion too old (410 Gone) re-lists
 * that kind. A new policy (bundle or configuration) re-audits everything: objects are
 * listed again, since the audit keeps no copy of them.
 *
 * Reports are published from the results, per namespace whose results changed, at most
 * every publishIntervalMs.
 */
import type { PolicyEngine } from '../policy/engine.ts';
import type { PolicyHolder } from '../policy/holder.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import type { JsonObject } from '../shared/json.ts';
import type { Logger } from '../shared/logger.ts';
import { type AuditedObject, type AuditFacts, auditObject } from './evaluate.ts';
import type { Kube, WatchEvent } from './kube.ts';
import { AuditStore, clusterPolicyReport, policyReport, REPORT_NAME } from './reports.ts';

export interface AuditedKind {
  readonly apiVersion: string;
  readonly kind: string;
  /** The collection across namespaces. */
  readonly path: string;
}

/** Pods and every kind with a pod template (review/workloads.ts lists the same). */
export const AUDITED_KINDS: readonly AuditedKind[] = [
  { apiVersion: 'v1', kind: 'Pod', path: '/api/v1/pods' },
  { apiVersion: 'v1', kind: 'ReplicationController', path: '/api/v1/replicationcontrollers' },
  { apiVersion: 'apps/v1', kind: 'Deployment', path: '/apis/apps/v1/deployments' },
  { apiVersion: 'apps/v1', kind: 'ReplicaSet', path: '/apis/apps/v1/replicasets' },
  { apiVersion: 'apps/v1', kind: 'StatefulSet', path: '/apis/apps/v1/statefulsets' },
  { apiVersion: 'apps/v1', kind: 'DaemonSet', path: '/apis/apps/v1/daemonsets' },
  { apiVersion: 'batch/v1', kind: 'Job', path: '/apis/batch/v1/jobs' },
  { apiVersion: 'batch/v1', kind: 'CronJob', path: '/apis/batch/v1/cronjobs' },
];

const REPORTS = '/apis/wgpolicyk8s.io/v1alpha2';

export interface AuditObserver {
  /** A full audit finished: how long it took and how many objects it evaluated. */
  audited(seconds: number, objects: number): void;
  /** The store changed (for gauges by namespace and rule). */
  changed(store: AuditStore): void;
  published(result: 'ok' | 'error'): void;
}

export interface AuditorDeps {
  readonly kube: Kube;
  readonly policy: PolicyHolder;
  readonly logger: Logger;
  readonly facts?: AuditFacts | undefined;
  readonly observer?: AuditObserver | undefined;
  /** Objects per list page (the audit holds at most one page of objects at a time). */
  readonly pageSize?: number;
  readonly publishIntervalMs?: number;
  readonly kinds?: readonly AuditedKind[];
}

export class Auditor {
  readonly store = new AuditStore();
  readonly #deps: AuditorDeps;
  readonly #kinds: readonly AuditedKind[];
  readonly #versions = new Map<string, string>();
  readonly #stops = new Map<string, () => void>();
  #stopped = false;
  #publishTimer: NodeJS.Timeout | undefined;
  #publishing: Promise<void> = Promise.resolve();
  #clusterDirty = true;
  #auditing: Promise<void> | undefined;
  #again = false;
  /** Events are handled one after the other: a DELETED never overtaken by an earlier MODIFIED. */
  #events: Promise<void> = Promise.resolve();
  readonly #relist = new Set<string>();

  constructor(deps: AuditorDeps) {
    this.#deps = deps;
    this.#kinds = deps.kinds ?? AUDITED_KINDS;
  }

  #engine(): PolicyEngine {
    const engine = this.#deps.policy.engine;
    if (engine === undefined) throw new Error('no policy is loaded');
    return engine;
  }

  async #evaluate(kind: AuditedKind, object: JsonObject): Promise<AuditedObject | undefined> {
    try {
      return await auditObject(this.#engine(), object, kind, this.#deps.facts);
    } catch (error) {
      // A policy failure is an error result, never a silent pass.
      const metadata = (object.metadata ?? {}) as JsonObject;
      return {
        uid: String(metadata.uid ?? ''),
        apiVersion: kind.apiVersion,
        kind: kind.kind,
        namespace: String(metadata.namespace ?? ''),
        name: String(metadata.name ?? ''),
        results: [{ rule: 'evaluation', result: 'error', message: describeThrown(error) }],
      };
    }
  }

  async #record(kind: AuditedKind, object: JsonObject): Promise<string> {
    const metadata = (object.metadata ?? {}) as JsonObject;
    const uid = String(metadata.uid ?? '');
    const namespace = String(metadata.namespace ?? '');
    this.store.set(uid, namespace, await this.#evaluate(kind, object));
    return uid;
  }

  /** Lists one kind page by page, evaluating as it goes; returns the list's resourceVersion. */
  async #listKind(kind: AuditedKind): Promise<{ resourceVersion: string; objects: number }> {
    const seen = new Set<string>();
    let cont = '';
    let resourceVersion = '';
    do {
      const page = await this.#deps.kube.list(
        kind.path,
        kind.apiVersion,
        kind.kind,
        this.#deps.pageSize ?? 500,
        cont,
      );
      for (const item of page.items) seen.add(await this.#record(kind, item));
      resourceVersion = page.resourceVersion;
      cont = page.continue;
    } while (cont !== '');
    this.store.retainOnly(kind.kind, seen);
    return { resourceVersion, objects: seen.size };
  }

  /** Lists and evaluates everything once (a full audit); concurrent calls share one run. */
  audit(): Promise<void> {
    if (this.#auditing !== undefined) {
      // A policy change during an audit: once more after it, with the new policy.
      this.#again = true;
      return this.#auditing;
    }
    this.#auditing = (async () => {
      do {
        this.#again = false;
        const started = performance.now();
        let objects = 0;
        for (const kind of this.#kinds) {
          const listed = await this.#listKind(kind);
          objects += listed.objects;
          this.#versions.set(kind.kind, listed.resourceVersion);
        }
        this.#clusterDirty = true;
        this.#deps.observer?.audited((performance.now() - started) / 1000, objects);
        this.#deps.observer?.changed(this.store);
        this.#deps.logger.info(
          { objects, namespaces: this.store.namespaces().length, summary: this.store.summary() },
          'audit complete',
        );
      } while (this.#again && !this.#stopped);
    })().finally(() => {
      this.#auditing = undefined;
    });
    return this.#auditing;
  }

  /** The first full audit, then watches and publishing until stop(). */
  async run(options: { publish: boolean }): Promise<void> {
    await this.audit();
    for (const kind of this.#kinds) await this.#watch(kind);
    if (options.publish) {
      await this.#cleanStaleReports();
      this.#schedulePublish(0);
    }
  }

  async #watch(kind: AuditedKind): Promise<void> {
    if (this.#stopped) return;
    const onEvent = (event: WatchEvent) => {
      this.#events = this.#events.then(() => this.#onEvent(kind, event));
    };
    const done = (error: unknown) => {
      this.#stops.delete(kind.kind);
      if (this.#stopped) return;
      const gone =
        (error as { statusCode?: number } | null)?.statusCode === 410 ||
        this.#relist.delete(kind.kind);
      if (error !== null && error !== undefined && !gone) {
        this.#deps.logger.warn(
          { kind: kind.kind, error: describeThrown(error) },
          'audit watch ended; resuming',
        );
      }
      setTimeout(() => void this.#resume(kind, gone), error === null ? 0 : 1000).unref();
    };
    try {
      const stop = await this.#deps.kube.watch(
        kind.path,
        this.#versions.get(kind.kind) ?? '',
        onEvent,
        done,
      );
      this.#stops.set(kind.kind, stop);
    } catch (error) {
      done(error);
    }
  }

  async #resume(kind: AuditedKind, relist: boolean): Promise<void> {
    if (this.#stopped) return;
    try {
      if (relist) {
        const listed = await this.#listKind(kind);
        this.#versions.set(kind.kind, listed.resourceVersion);
        this.#schedulePublish();
      }
      await this.#watch(kind);
    } catch (error) {
      this.#deps.logger.warn(
        { kind: kind.kind, error: describeThrown(error) },
        'audit re-list failed; retrying',
      );
      setTimeout(() => void this.#resume(kind, true), 5000).unref();
    }
  }

  async #onEvent(kind: AuditedKind, { type, object }: WatchEvent): Promise<void> {
    const metadata = (object.metadata ?? {}) as JsonObject;
    if (typeof metadata.resourceVersion === 'string')
      this.#versions.set(kind.kind, metadata.resourceVersion);
    if (type === 'BOOKMARK') return;
    if (type === 'ERROR') {
      // 410 Gone as an event: the resourceVersion is too old; re-list this kind.
      if (object.code === 410) this.#relist.add(kind.kind);
      this.#stops.get(kind.kind)?.();
      return;
    }
    object.apiVersion = kind.apiVersion;
    object.kind = kind.kind;
    if (type === 'DELETED') this.store.delete(String(metadata.uid ?? ''));
    else await this.#record(kind, object);
    this.#schedulePublish();
  }

  /** A new policy: every object is judged again. */
  async reaudit(): Promise<void> {
    await this.audit();
    this.#schedulePublish(0);
  }

  #schedulePublish(delayMs = this.#deps.publishIntervalMs ?? 2000): void {
    if (this.#stopped || this.#publishTimer !== undefined) return;
    this.#publishTimer = setTimeout(() => {
      this.#publishTimer = undefined;
      this.#publishing = this.#publishing.then(() => this.#publish());
    }, delayMs);
    this.#publishTimer.unref();
  }

  async #publish(): Promise<void> {
    // Gauges by namespace and rule follow what is published (not every event: each costs
    // a pass over every result).
    this.#deps.observer?.changed(this.store);
    const dirty = this.store.takeDirty();
    if (dirty.length === 0 && !this.#clusterDirty) return;
    const now = new Date();
    const revision = this.#deps.policy.engine?.revision ?? '';
    const failed: string[] = [];
    for (const namespace of dirty) {
      const objects = this.store.objects(namespace);
      const path = `${REPORTS}/namespaces/${namespace}/policyreports/${REPORT_NAME}`;
      try {
        // A namespace with nothing audited left has no report: stale results go away.
        if (objects.length === 0) await this.#deps.kube.delete(path);
        else
          await this.#deps.kube.apply(
            path,
            policyReport(namespace, objects, now, revision),
            'imagegate-audit',
          );
        this.#deps.observer?.published('ok');
      } catch (error) {
        failed.push(namespace);
        this.#deps.observer?.published('error');
        this.#deps.logger.error(
          { namespace, error: describeThrown(error) },
          'PolicyReport not published',
        );
      }
    }
    try {
      await this.#deps.kube.apply(
        `${REPORTS}/clusterpolicyreports/${REPORT_NAME}`,
        clusterPolicyReport(this.store, now, revision),
        'imagegate-audit',
      );
      this.#clusterDirty = false;
    } catch (error) {
      this.#deps.logger.error(
        { error: describeThrown(error) },
        'ClusterPolicyReport not published',
      );
    }
    // Try again later; nothing is lost meanwhile.
    for (const namespace of failed) this.store.markDirty(namespace);
    if (failed.length > 0) this.#schedulePublish(5000);
  }

  /** Reports left by an earlier run in namespaces that now have no results. */
  async #cleanStaleReports(): Promise<void> {
    const { status, json } = await this.#deps.kube.request('GET', `${REPORTS}/policyreports`, {
      query: { labelSelector: 'app.kubernetes.io/managed-by=imagegate' },
    });
    if (status !== 200) return;
    const items = Array.isArray((json as JsonObject | undefined)?.items)
      ? ((json as JsonObject).items as JsonObject[])
      : [];
    const live = new Set(this.store.namespaces());
    for (const item of items) {
      const metadata = (item.metadata ?? {}) as JsonObject;
      const namespace = String(metadata.namespace ?? '');
      if (metadata.name === REPORT_NAME && !live.has(namespace)) this.store.markDirty(namespace);
    }
  }

  /** Waits for what is being published. */
  async flush(): Promise<void> {
    if (this.#publishTimer !== undefined) {
      clearTimeout(this.#publishTimer);
      this.#publishTimer = undefined;
      this.#publishing = this.#publishing.then(() => this.#publish());
    }
    await this.#publishing;
  }

  stop(): void {
    this.#stopped = true;
    for (const stop of this.#stops.values()) stop();
    this.#stops.clear();
    if (this.#publishTimer !== undefined) clearTimeout(this.#publishTimer);
  }
}
