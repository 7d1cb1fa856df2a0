/**
 * Status to a collector in OPA's status format (POST `<collector>/status`): the labels that
 * name this gateway, the bundle's active revision and when it was requested, downloaded and
 * activated, the error that keeps a newer one out, and each plugin's state. Sent at start,
 * soon after anything changes (debounced), and every interval — so one place shows which
 * cluster runs which revision. A failed report is not queued: the next one says it all.
 */
import { describeThrown } from '../shared/describe-thrown.ts';
import type { Logger } from '../shared/logger.ts';
import type { CollectorClient } from './collector-client.ts';

/** What the gateway knows now; every field as OPA names it, or absent. */
export interface StatusSnapshot {
  readonly revision: string | null;
  readonly lastRequest?: string | undefined;
  readonly lastSuccessfulRequest?: string | undefined;
  readonly lastSuccessfulDownload?: string | undefined;
  readonly lastSuccessfulActivation?: string | undefined;
  /** Why the newest bundle does not serve (refused, or the source failing). */
  readonly errors: readonly string[];
  /** The decision-log plugin's state, when it runs. */
  readonly decisionLogs?: 'OK' | 'ERROR' | undefined;
}

export function statusReport(
  snapshot: StatusSnapshot,
  labels: Readonly<Record<string, string>>,
): Record<string, unknown> {
  const bundle: Record<string, unknown> = { name: 'imagegate' };
  if (snapshot.revision !== null) bundle.active_revision = snapshot.revision;
  const times = {
    last_request: snapshot.lastRequest,
    last_successful_request: snapshot.lastSuccessfulRequest,
    last_successful_download: snapshot.lastSuccessfulDownload,
    last_successful_activation: snapshot.lastSuccessfulActivation,
  };
  for (const [key, value] of Object.entries(times)) if (value !== undefined) bundle[key] = value;
  if (snapshot.errors.length > 0) {
    bundle.code = 'bundle_error';
    bundle.message = snapshot.errors[0];
    bundle.errors = snapshot.errors;
  }
  const bundleState = snapshot.revision === null ? 'NOT_READY' : 'OK';
  return {
    labels,
    bundles: { imagegate: bundle },
    plugins: {
      bundle: { state: snapshot.errors.length > 0 && bundleState === 'OK' ? 'WARN' : bundleState },
      status: { state: 'OK' },
      ...(snapshot.decisionLogs === undefined
        ? {}
        : { decision_logs: { state: snapshot.decisionLogs } }),
    },
  };
}

export class StatusReporter {
  readonly #deps: StatusReporterDeps;
  readonly #interval: NodeJS.Timeout;
  #debounce: NodeJS.Timeout | undefined;
  #failures = 0;

  constructor(deps: StatusReporterDeps) {
    this.#deps = deps;
    this.#interval = setInterval(() => void this.send(), deps.intervalMs);
    this.#interval.unref();
  }

  /** Something changed: reported within a moment, once for a burst of changes. */
  changed(): void {
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => void this.send(), 200);
    this.#debounce.unref();
  }

  async send(): Promise<void> {
    const report = statusReport(this.#deps.snapshot(), this.#deps.labels);
    try {
      await this.#deps.client.post('status', JSON.stringify(report), { gzip: false });
      this.#failures = 0;
      this.#deps.observe(true);
    } catch (error) {
      this.#failures += 1;
      this.#deps.observe(false);
      if (this.#failures === 1 || this.#failures % 10 === 0) {
        this.#deps.logger.warn(
          { failures: this.#failures, error: describeThrown(error) },
          'status not delivered to the collector',
        );
      }
    }
  }

  close(): void {
    clearInterval(this.#interval);
    clearTimeout(this.#debounce);
  }
}

export interface StatusReporterDeps {
  readonly client: CollectorClient;
  readonly labels: Readonly<Record<string, string>>;
  readonly intervalMs: number;
  readonly snapshot: () => StatusSnapshot;
  readonly observe: (ok: boolean) => void;
  readonly logger: Logger;
}
