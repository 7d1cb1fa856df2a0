/** The audit's Prometheus metrics, all prefixed `imagegate_audit_`, on their own registry. */
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { AuditObserver } from './auditor.ts';
import type { AuditStore } from './store.ts';

export interface AuditMetrics extends AuditObserver {
  readonly registry: Registry;
}

export function createAuditMetrics(options: { processMetrics?: boolean } = {}): AuditMetrics {
  const registry = new Registry();
  if (options.processMetrics !== false)
    collectDefaultMetrics({ register: registry, prefix: 'imagegate_' });
  const results = new Gauge({
    name: 'imagegate_audit_results',
    help: 'Audit results now, by namespace, rule and result (fail, warn, pass, skip, error).',
    labelNames: ['namespace', 'rule', 'result'],
    registers: [registry],
  });
  const objects = new Gauge({
    name: 'imagegate_audit_objects',
    help: 'Objects the last full audit evaluated.',
    registers: [registry],
  });
  const last = new Gauge({
    name: 'imagegate_audit_last_audit_timestamp_seconds',
    help: 'When the last full audit finished (Unix time).',
    registers: [registry],
  });
  const duration = new Gauge({
    name: 'imagegate_audit_duration_seconds',
    help: 'How long the last full audit took (list and evaluate every object).',
    registers: [registry],
  });
  const published = new Counter({
    name: 'imagegate_audit_reports_published_total',
    help: 'PolicyReport writes (apply or delete), by result.',
    labelNames: ['result'],
    registers: [registry],
  });
  return {
    registry,
    audited(seconds, count) {
      objects.set(count);
      duration.set(seconds);
      last.set(Date.now() / 1000);
    },
    changed(store: AuditStore) {
      results.reset();
      for (const [namespace, rules] of store.counts()) {
        for (const [rule, summary] of rules) {
          for (const [result, n] of Object.entries(summary)) {
            if (n > 0) results.set({ namespace, rule, result }, n);
          }
        }
      }
    },
    published(result) {
      published.inc({ result });
    },
  };
}
