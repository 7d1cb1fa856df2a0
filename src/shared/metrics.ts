/** Prometheus metrics, all prefixed `imagegate_`, on their own registry (no globals). */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface Metrics {
  readonly registry: Registry;
  readonly requests: Counter<'endpoint' | 'outcome'>;
  readonly requestDuration: Histogram<'endpoint'>;
  readonly evaluationDuration: Histogram<'entrypoint'>;
  readonly bundleInfo: Gauge<'revision' | 'digest'>;
  readonly configInfo: Gauge<'digest' | 'enforcement' | 'break_glass'>;
  readonly reloads: Counter<'kind' | 'result'>;
  readonly limits: Counter<'endpoint' | 'limit'>;
  readonly registryRequests: Counter<'registry' | 'kind' | 'outcome'>;
  readonly registryDuration: Histogram<'registry' | 'kind'>;
  readonly factsCache: Counter<'kind' | 'result'>;
  readonly factsDuration: Histogram<'decision'>;
  readonly registryQueued: Gauge<'registry'>;
  readonly registryQueueWait: Histogram<'registry'>;
  /** The size of every bounded registry table, read at each scrape from what `watch` names. */
  readonly registryTables: { watch(read: () => Readonly<Record<string, number>>): () => void };
  /** When the serving certificate in use expires (alerts: close to expiry). */
  readonly certificateExpiry: Gauge;
  /** When the bundle serving now was activated (any source). */
  readonly bundleActivated: Gauge;
  /** Remote bundle sources: where the bundle serving now came from, polls, failures. */
  readonly bundleSource: Gauge<'kind' | 'source' | 'origin'>;
  readonly bundleRequests: Counter<'kind' | 'result'>;
  readonly bundleLastSuccess: Gauge;
  readonly bundleFailures: Gauge;
  /** Decision logs and status sent to a collector (telemetry/). */
  readonly decisionLogsSent: Counter;
  readonly decisionLogsDropped: Counter<'reason'>;
  readonly decisionLogsBuffered: Gauge;
  readonly collectorUploads: Counter<'api' | 'result'>;
}

const REGISTRY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5];

const FAST_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
];

export function createMetrics(options: { processMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.processMetrics !== false)
    collectDefaultMetrics({ register: registry, prefix: 'imagegate_' });
  return {
    registry,
    requests: new Counter({
      name: 'imagegate_requests_total',
      help: 'Reviews answered, by endpoint and outcome (allowed, denied, patched, error, bad_request).',
      labelNames: ['endpoint', 'outcome'],
      registers: [registry],
    }),
    requestDuration: new Histogram({
      name: 'imagegate_request_duration_seconds',
      help: 'Time from request to response, by endpoint.',
      labelNames: ['endpoint'],
      buckets: FAST_BUCKETS,
      registers: [registry],
    }),
    evaluationDuration: new Histogram({
      name: 'imagegate_evaluation_duration_seconds',
      help: 'Time spent in the wasm policy, by entrypoint.',
      labelNames: ['entrypoint'],
      buckets: FAST_BUCKETS,
      registers: [registry],
    }),
    bundleInfo: new Gauge({
      name: 'imagegate_bundle_info',
      help: 'The bundle serving now (value 1), by revision and SHA-256 of its archive.',
      labelNames: ['revision', 'digest'],
      registers: [registry],
      // With --workers, one series per worker serving it would sum to the worker count.
      aggregator: 'max',
    }),
    configInfo: new Gauge({
      name: 'imagegate_config_info',
      help: 'The configuration in force (value 1): SHA-256 of data.imagegate.config as the policy sees it, its enforcement and breakGlass.',
      labelNames: ['digest', 'enforcement', 'break_glass'],
      registers: [registry],
      aggregator: 'max',
    }),
    reloads: new Counter({
      name: 'imagegate_reloads_total',
      help: 'Policy reloads by what changed (bundle, config, certificate) and result (ok, refused, unchanged).',
      labelNames: ['kind', 'result'],
      registers: [registry],
    }),
    limits: new Counter({
      name: 'imagegate_limit_refusals_total',
      help: 'Reviews refused before evaluation for exceeding a bound (images: maxImages), by endpoint.',
      labelNames: ['endpoint', 'limit'],
      registers: [registry],
    }),
    registryRequests: new Counter({
      name: 'imagegate_registry_requests_total',
      help: 'Requests to registries, by registry, kind (resolve, manifest, referrers, blob) and outcome (ok, rate_limited, http_<status>, error).',
      labelNames: ['registry', 'kind', 'outcome'],
      registers: [registry],
    }),
    registryDuration: new Histogram({
      name: 'imagegate_registry_request_duration_seconds',
      help: 'Time of one registry request (auth round trips included), by registry and kind.',
      labelNames: ['registry', 'kind'],
      buckets: REGISTRY_BUCKETS,
      registers: [registry],
    }),
    factsCache: new Counter({
      name: 'imagegate_registry_cache_total',
      help: 'Registry fact lookups by kind (tag, signature) and result (hit, miss).',
      labelNames: ['kind', 'result'],
      registers: [registry],
    }),
    factsDuration: new Histogram({
      name: 'imagegate_registry_facts_duration_seconds',
      help: 'Time one review spent gathering registry facts, by decision (mutate, validate).',
      labelNames: ['decision'],
      buckets: REGISTRY_BUCKETS,
      registers: [registry],
    }),
    registryQueued: new Gauge({
      name: 'imagegate_registry_queue_length',
      help: "Registry requests waiting for one of the registry's connection slots (served round-robin across namespaces and reviews).",
      labelNames: ['registry'],
      registers: [registry],
    }),
    registryQueueWait: new Histogram({
      name: 'imagegate_registry_queue_wait_seconds',
      help: 'Time a registry request waited for a connection slot, by registry.',
      labelNames: ['registry'],
      buckets: REGISTRY_BUCKETS,
      registers: [registry],
    }),
    registryTables: tableGauge(registry),
    certificateExpiry: new Gauge({
      name: 'imagegate_tls_certificate_expiry_timestamp_seconds',
      help: 'When the serving certificate in use expires (Unix time).',
      registers: [registry],
      aggregator: 'min',
    }),
    bundleActivated: new Gauge({
      name: 'imagegate_bundle_activation_timestamp_seconds',
      help: 'When the bundle serving now was activated (Unix time): serving since.',
      registers: [registry],
      aggregator: 'max',
    }),
    bundleSource: new Gauge({
      name: 'imagegate_bundle_source_info',
      help: 'The remote bundle source (value 1): its kind (oci, http), the --bundle value, and where the bundle serving now came from (remote, persisted: the last good one kept on disk, none).',
      labelNames: ['kind', 'source', 'origin'],
      registers: [registry],
      aggregator: 'max',
    }),
    bundleRequests: new Counter({
      name: 'imagegate_bundle_requests_total',
      help: 'Polls of the remote bundle source, by kind and result (downloaded, unchanged, error).',
      labelNames: ['kind', 'result'],
      registers: [registry],
    }),
    bundleLastSuccess: new Gauge({
      name: 'imagegate_bundle_last_successful_request_timestamp_seconds',
      help: 'When the remote bundle source last answered (Unix time; 0: never): how stale the policy may be.',
      registers: [registry],
      aggregator: 'max',
    }),
    bundleFailures: new Gauge({
      name: 'imagegate_bundle_consecutive_failures',
      help: 'Polls of the remote bundle source that failed in a row (0 once it answers).',
      registers: [registry],
      aggregator: 'max',
    }),
    decisionLogsSent: new Counter({
      name: 'imagegate_decision_logs_sent_total',
      help: 'Decision-log events a collector accepted.',
      registers: [registry],
    }),
    decisionLogsDropped: new Counter({
      name: 'imagegate_decision_logs_dropped_total',
      help: 'Decision-log events never delivered, by reason (buffer_full, upload_failed, too_large).',
      labelNames: ['reason'],
      registers: [registry],
    }),
    decisionLogsBuffered: new Gauge({
      name: 'imagegate_decision_logs_buffered',
      help: 'Decision-log events waiting to be sent.',
      registers: [registry],
    }),
    collectorUploads: new Counter({
      name: 'imagegate_collector_uploads_total',
      help: 'Uploads to the collector, by API (logs, status) and result (ok, error).',
      labelNames: ['api', 'result'],
      registers: [registry],
    }),
  };
}

/** imagegate_registry_table_entries{table}: caches, tokens, cooldowns, queues, as they are now. */
function tableGauge(registry: Registry): Metrics['registryTables'] {
  const sources: (() => Readonly<Record<string, number>>)[] = [];
  new Gauge({
    name: 'imagegate_registry_table_entries',
    help: 'Entries in each bounded registry table (tags, signatures, inflight, tokens, cooldowns, queues, queued).',
    labelNames: ['table'],
    registers: [registry],
    collect() {
      this.reset();
      for (const read of sources) {
        for (const [table, size] of Object.entries(read())) this.set({ table }, size);
      }
    },
  });
  return {
    watch(read) {
      sources.push(read);
      return () => {
        const at = sources.indexOf(read);
        if (at >= 0) sources.splice(at, 1);
      };
    },
  };
}
