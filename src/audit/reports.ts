/**
 * The PolicyReports the audit publishes (wgpolicyk8s.io/v1alpha2, the format Kyverno
 * writes and Policy Reporter reads): one PolicyReport named `imagegate` per namespace with
 * results, and a ClusterPolicyReport `imagegate` with the cluster's totals.
 */
import type { AuditedObject, ResultKind } from './evaluate.ts';
import { type AuditStore, emptySummary } from './store.ts';

export const REPORT_NAME = 'imagegate';
export const POLICY = 'imagegate';
export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'imagegate' } as const;
/**
 * Results in one report, at most: a PolicyReport is one etcd object (1.5 MiB), and a
 * result is a few hundred bytes. The summary still counts every result; the report's
 * annotation says how many were left out.
 */
export const MAX_RESULTS = 2_000;

const ORDER: Record<ResultKind, number> = { fail: 0, error: 1, warn: 2, skip: 3, pass: 4 };

/** Failures first, then by kind, name and rule: what a reader looks for first. */
function sortedResults(objects: readonly AuditedObject[]) {
  return objects
    .flatMap((o) => o.results.map((r) => ({ object: o, result: r })))
    .sort(
      (x, y) =>
        ORDER[x.result.result] - ORDER[y.result.result] ||
        x.object.kind.localeCompare(y.object.kind) ||
        x.object.name.localeCompare(y.object.name) ||
        x.result.rule.localeCompare(y.result.rule),
    );
}

/** The namespace's PolicyReport, for server-side apply. */
export function policyReport(
  namespace: string,
  objects: readonly AuditedObject[],
  now: Date,
  revision: string,
) {
  const all = sortedResults(objects);
  const kept = all.slice(0, MAX_RESULTS);
  const summary = emptySummary();
  for (const { result } of all) summary[result.result]++;
  const seconds = Math.floor(now.getTime() / 1000);
  return {
    apiVersion: 'wgpolicyk8s.io/v1alpha2',
    kind: 'PolicyReport',
    metadata: {
      name: REPORT_NAME,
      namespace,
      labels: { ...MANAGED_BY },
      annotations: {
        'imagegate.dev/revision': revision,
        ...(all.length > kept.length
          ? { 'imagegate.dev/results-left-out': String(all.length - kept.length) }
          : {}),
      },
    },
    summary,
    results: kept.map(({ object, result }) => ({
      policy: POLICY,
      rule: result.rule,
      result: result.result,
      message: result.message,
      source: 'imagegate',
      scored: true,
      severity: result.result === 'fail' ? 'high' : result.result === 'warn' ? 'medium' : 'info',
      category: 'Image policy',
      timestamp: { seconds, nanos: 0 },
      resources: [
        {
          apiVersion: object.apiVersion,
          kind: object.kind,
          namespace: object.namespace,
          name: object.name,
          uid: object.uid,
        },
      ],
      properties: {
        ...(result.image === undefined ? {} : { image: result.image }),
        ...(result.container === undefined ? {} : { container: result.container }),
        ...(result.path === undefined ? {} : { path: result.path }),
        ...(result.enforcement === undefined ? {} : { enforcement: result.enforcement }),
      },
    })),
  };
}

/** The cluster's totals: one result per namespace with failures or warnings. */
export function clusterPolicyReport(store: AuditStore, now: Date, revision: string) {
  const seconds = Math.floor(now.getTime() / 1000);
  const results = store.namespaces().flatMap((namespace) => {
    const s = store.summary(namespace);
    if (s.fail === 0 && s.warn === 0) return [];
    return [
      {
        policy: POLICY,
        rule: 'namespace',
        result: s.fail > 0 ? 'fail' : 'warn',
        message: `namespace ${namespace}: ${s.fail} failing, ${s.warn} warning, ${s.pass} passing (PolicyReport ${namespace}/${REPORT_NAME})`,
        source: 'imagegate',
        scored: true,
        timestamp: { seconds, nanos: 0 },
        resources: [{ apiVersion: 'v1', kind: 'Namespace', name: namespace }],
      },
    ];
  });
  return {
    apiVersion: 'wgpolicyk8s.io/v1alpha2',
    kind: 'ClusterPolicyReport',
    metadata: {
      name: REPORT_NAME,
      labels: { ...MANAGED_BY },
      annotations: { 'imagegate.dev/revision': revision },
    },
    summary: store.summary(),
    results: results.slice(0, MAX_RESULTS),
  };
}
