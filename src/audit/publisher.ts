/**
 * PolicyReports published from the audit's results: per namespace whose results changed,
 * at most every publishIntervalMs, each namespace's results in as many reports as their
 * size needs (reports.ts), the parts a namespace no longer needs deleted. A write the API
 * server refuses is retried with backoff (retry.ts) until it succeeds or the audit gives up.
 */
import { describeThrown } from '../shared/describe-thrown.ts';
import { isRecord, type JsonObject } from '../shared/json.ts';
import type { Logger } from '../shared/logger.ts';
import type { Kube } from './kube.ts';
import { clusterPolicyReport, policyReports, REPORT_NAME, REPORT_NAMES } from './reports.ts';
import { AuditStopped, type Retrier } from './retry.ts';
import type { AuditStore } from './store.ts';

const REPORTS = '/apis/wgpolicyk8s.io/v1alpha2';
const FIELD_MANAGER = 'imagegate-audit';
const OPERATION = 'publish PolicyReports';

export interface PublisherDeps {
  readonly kube: Kube;
  readonly store: AuditStore;
  readonly logger: Logger;
  readonly retrier: Retrier;
  /** The revision of the policy in force, for the reports' annotation. */
  readonly revision: () => string;
  readonly published?: (result: 'ok' | 'error') => void;
  readonly intervalMs?: number;
  /** The audit cannot go on (it gave up, or a bug): the caller stops everything. */
  readonly fail: (error: unknown) => void;
}

const reportPath = (namespace: string, name: string) =>
  `${REPORTS}/namespaces/${namespace}/policyreports/${name}`;

export class Publisher {
  readonly #d: PublisherDeps;
  #timer: NodeJS.Timeout | undefined;
  #publishing: Promise<void> = Promise.resolve();
  #clusterDirty = true;
  /** How many reports each namespace has in the cluster, as far as this replica knows. */
  readonly #parts = new Map<string, number>();
  #stopped = false;

  constructor(deps: PublisherDeps) {
    this.#d = deps;
  }

  /** The totals changed (a full audit): the ClusterPolicyReport is written again. */
  clusterChanged(): void {
    this.#clusterDirty = true;
  }

  schedule(delayMs = this.#d.intervalMs ?? 2000): void {
    if (this.#stopped || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#enqueue();
    }, delayMs);
    this.#timer.unref();
  }

  #enqueue(): void {
    this.#publishing = this.#publishing
      .then(() => this.#publish())
      .catch((error: unknown) => {
        if (!(error instanceof AuditStopped)) this.#d.fail(error);
      });
  }

  async #publishNamespace(namespace: string, now: Date): Promise<void> {
    const objects = this.#d.store.objects(namespace);
    // A namespace with nothing audited left has no report: stale results go away.
    const reports = policyReports(namespace, objects, now, this.#d.revision());
    for (const report of reports) {
      await this.#d.kube.apply(
        reportPath(namespace, report.metadata.name),
        report as unknown as JsonObject,
        FIELD_MANAGER,
      );
    }
    const before = this.#parts.get(namespace) ?? 1;
    for (const name of REPORT_NAMES.slice(reports.length, Math.max(before, reports.length))) {
      await this.#d.kube.delete(reportPath(namespace, name));
    }
    if (reports.length === 0) this.#parts.delete(namespace);
    else this.#parts.set(namespace, reports.length);
  }

  async #publish(): Promise<void> {
    const { store } = this.#d;
    const dirty = store.takeDirty();
    if (dirty.length === 0 && !this.#clusterDirty) return;
    const now = new Date();
    let failure: unknown;
    for (const namespace of dirty) {
      try {
        await this.#publishNamespace(namespace, now);
        this.#d.published?.('ok');
      } catch (error) {
        failure = error;
        store.markDirty(namespace);
        this.#d.published?.('error');
        this.#d.logger.error(
          { namespace, error: describeThrown(error) },
          'PolicyReport not published',
        );
      }
    }
    try {
      await this.#d.kube.apply(
        `${REPORTS}/clusterpolicyreports/${REPORT_NAME}`,
        clusterPolicyReport(store, now, this.#d.revision()) as unknown as JsonObject,
        FIELD_MANAGER,
      );
      this.#clusterDirty = false;
    } catch (error) {
      failure = error;
      this.#d.logger.error({ error: describeThrown(error) }, 'ClusterPolicyReport not published');
    }
    if (failure === undefined) {
      this.#d.retrier.succeeded(OPERATION);
      return;
    }
    // Nothing is lost meanwhile: the namespaces stay marked. Waits, or gives up.
    await this.#d.retrier.failed(OPERATION, failure);
    this.schedule(0);
  }

  /**
   * Reports an earlier run left: their parts are remembered, and namespaces that now have
   * no results are marked, so their reports are deleted.
   */
  async adoptExisting(): Promise<void> {
    const { status, json } = await this.#d.retrier.retry('list PolicyReports', async () => {
      const answer = await this.#d.kube.request('GET', `${REPORTS}/policyreports`, {
        query: { labelSelector: 'app.kubernetes.io/managed-by=imagegate' },
      });
      if (answer.status >= 500 || answer.status === 429) {
        throw new Error(`list PolicyReports: HTTP ${answer.status}`);
      }
      return answer;
    });
    if (status !== 200) return;
    const items = isRecord(json) && Array.isArray(json.items) ? json.items.filter(isRecord) : [];
    const live = new Set(this.#d.store.namespaces());
    for (const item of items) {
      const metadata = isRecord(item.metadata) ? item.metadata : {};
      const namespace = String(metadata.namespace ?? '');
      const part = REPORT_NAMES.indexOf(String(metadata.name ?? ''));
      if (part === -1) continue;
      this.#parts.set(namespace, Math.max(this.#parts.get(namespace) ?? 1, part + 1));
      if (!live.has(namespace) || part > 0) this.#d.store.markDirty(namespace);
    }
  }

  /** Publishes what is pending now and waits for it. */
  async flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#enqueue();
    }
    await this.#publishing;
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
