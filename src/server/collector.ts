/**
 * Decision logs and status to a collector (telemetry/), wired to the gateway: the decision
 * line app.ts builds goes to the decision log; the policy holder and the bundle source make
 * the status; metrics count what was sent and dropped. Both optional, each by its flag.
 */
import { readFile } from 'node:fs/promises';
import type { SourceStatus } from '../distribution/source-status.ts';
import type { PolicyHolder } from '../policy/holder.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import type { Logger } from '../shared/logger.ts';
import type { Metrics } from '../shared/metrics.ts';
import { CollectorClient } from '../telemetry/collector-client.ts';
import type { DecisionLine } from '../telemetry/decision-events.ts';
import { DecisionLog, type DecisionLogOptions } from '../telemetry/decision-log.ts';
import { StatusReporter, type StatusSnapshot } from '../telemetry/status-report.ts';

export interface CollectorSettings {
  readonly url: string;
  readonly tokenFile?: string | undefined;
  readonly caFiles: readonly string[];
  readonly clientCert?: string | undefined;
  readonly clientKey?: string | undefined;
  readonly timeoutMs: number;
  /** Name this gateway in every event and report (cluster, region…). */
  readonly labels: Readonly<Record<string, string>>;
  /** Send decision logs (to `<url>/logs`); undefined: do not. */
  readonly decisionLogs?: DecisionLogOptions | undefined;
  /** Send status every this many ms and on every change (to `<url>/status`); undefined: do not. */
  readonly statusIntervalMs?: number | undefined;
}

export interface Collector {
  /** The decision sink app.ts calls (undefined without decision logs). */
  readonly decisions: ((line: DecisionLine) => void) | undefined;
  /** The policy or its source changed: report status soon. */
  changed(): void;
  close(): Promise<void>;
}

export async function startCollector(
  settings: CollectorSettings,
  deps: {
    policy: PolicyHolder;
    source: () => SourceStatus | undefined;
    metrics: Metrics;
    logger: Logger;
    id: string;
    version: string;
  },
): Promise<Collector> {
  const read = async (file: string | undefined, what: string) => {
    if (file === undefined) return undefined;
    try {
      return await readFile(file, 'utf8');
    } catch (error) {
      throw new Error(`cannot read ${what} ${file}: ${describeThrown(error)}`);
    }
  };
  const ca = await Promise.all(settings.caFiles.map((f) => read(f, '--collector-ca')));
  const client = new CollectorClient({
    url: settings.url,
    tokenFile: settings.tokenFile,
    ca: ca.filter((pem): pem is string => pem !== undefined),
    clientCert: await read(settings.clientCert, '--collector-client-cert'),
    clientKey: await read(settings.clientKey, '--collector-client-key'),
    timeoutMs: settings.timeoutMs,
  });
  // OPA's labels: id and version always, then the operator's.
  const labels = { id: deps.id, version: deps.version, app: 'imagegate', ...settings.labels };
  const { metrics } = deps;
  let lastUploadOk = true;
  const log =
    settings.decisionLogs === undefined
      ? undefined
      : new DecisionLog({
          client,
          labels,
          options: settings.decisionLogs,
          logger: deps.logger,
          observe: {
            sent: (n) => metrics.decisionLogsSent.inc(n),
            dropped: (reason, n) => metrics.decisionLogsDropped.inc({ reason }, n),
            buffered: (n) => metrics.decisionLogsBuffered.set(n),
            upload: (ok) => {
              lastUploadOk = ok;
              metrics.collectorUploads.inc({ api: 'logs', result: ok ? 'ok' : 'error' });
            },
          },
        });
  const snapshot = (): StatusSnapshot => {
    const source = deps.source();
    const last = deps.policy.lastLoad;
    const errors = [
      ...(last !== undefined && !last.ok && last.error !== undefined ? [last.error] : []),
      ...(source?.lastError === undefined ? [] : [source.lastError]),
    ];
    return {
      revision: deps.policy.engine?.revision ?? null,
      lastRequest: source?.lastRequest,
      lastSuccessfulRequest: source?.lastSuccessfulRequest,
      lastSuccessfulDownload: source?.lastSuccessfulDownload,
      lastSuccessfulActivation: source?.activatedAt ?? (last?.ok === true ? last.at : undefined),
      errors,
      decisionLogs: log === undefined ? undefined : lastUploadOk ? 'OK' : 'ERROR',
    };
  };
  const status =
    settings.statusIntervalMs === undefined
      ? undefined
      : new StatusReporter({
          client,
          labels,
          intervalMs: settings.statusIntervalMs,
          snapshot,
          logger: deps.logger,
          observe: (ok) =>
            metrics.collectorUploads.inc({ api: 'status', result: ok ? 'ok' : 'error' }),
        });
  status?.changed();
  return {
    decisions: log === undefined ? undefined : (line) => log.record(line),
    changed: () => status?.changed(),
    async close() {
      status?.close();
      await log?.close();
      await client.close();
    },
  };
}
