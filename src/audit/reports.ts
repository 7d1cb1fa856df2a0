/**
 * The PolicyReports the audit publishes (wgpolicyk8s.io/v1alpha2, the format Kyverno
 * writes and Policy Reporter reads): per namespace with results, `imagegate` (and as many
 * further reports as their size needs), and a ClusterPolicyReport `imagegate` with the
 * cluster's totals.
 */
import type { AuditedObject, AuditResult, ResultKind } from './evaluate.ts';
import { type AuditStore, emptySummary, type Summary } from './store.ts';

export const REPORT_NAME = 'imagegate';
export const POLICY = 'imagegate';
export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'imagegate' } as const;
/**
 * A PolicyReport is one etcd object, and etcd refuses one over 1.5 MiB (kube-apiserver
 * answers 413 or 500, and the report is never written). Results are packed into reports
 * of at most REPORT_BYTES of JSON — what the API server stores adds metadata and
 * managedFields, a few hundred bytes with `results` an atomic list — so a namespace's
 * results spill into `imagegate-2`, `imagegate-3`, … up to MAX_REPORTS; what still does not
 * fit is counted in the last report's summary and one `overflow` result, never listed.
 */
export const REPORT_BYTES = 1024 * 1024;
export const MAX_REPORTS = 10;

/** The names a namespace's reports may have, in order (RBAC lists the same). */
export const REPORT_NAMES: readonly string[] = Array.from({ length: MAX_REPORTS }, (_, i) =>
  i === 0 ? REPORT_NAME : `${REPORT_NAME}-${i + 1}`,
);

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

const severity = (result: ResultKind) =>
  result === 'fail' ? 'high' : result === 'warn' ? 'medium' : 'info';

function reportResult(object: AuditedObject, result: AuditResult, seconds: number) {
  return {
    policy: POLICY,
    rule: result.rule,
    result: result.result,
    message: result.message,
    source: 'imagegate',
    scored: true,
    severity: severity(result.result),
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
  };
}

type ReportResult = { readonly result: ResultKind } & Record<string, unknown>;

const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

/** What a report says about results it could not list: counted, one line, no details. */
function overflowResult(left: Summary, seconds: number, where: string) {
  const total = Object.values(left).reduce((a, b) => a + b, 0);
  const worst = (Object.keys(ORDER) as ResultKind[]).find((k) => left[k] > 0) ?? 'pass';
  return {
    policy: POLICY,
    rule: 'overflow',
    result: worst,
    message: `${total} more result(s) not listed (${left.fail} fail, ${left.error} error, ${left.warn} warn, ${left.skip} skip, ${left.pass} pass): ${where} are at the size the API server stores; \`imagegate audit --once\` lists every one`,
    source: 'imagegate',
    scored: false,
    severity: severity(worst),
    category: 'Image policy',
    timestamp: { seconds, nanos: 0 },
  };
}

/**
 * Results packed in order into at most `maxReports` lists of at most REPORT_BYTES each
 * (with room for the report around them), the last ending with an overflow result when
 * some did not fit. Each list's summary counts its own results, the overflow's its count:
 * the summaries of all lists add up to every result.
 */
function pack(
  results: readonly ReportResult[],
  maxReports: number,
  overflow: (left: Summary) => ReportResult,
  limit: number,
): { results: ReportResult[]; summary: Summary }[] {
  // Room for the report around the results: metadata, summary, the overflow result.
  const budget = limit - 8 * 1024;
  const parts: { results: ReportResult[]; summary: Summary; size: number }[] = [];
  const left = emptySummary();
  for (const result of results) {
    const size = bytes(result) + 1;
    let part = parts.at(-1);
    if ((part === undefined || part.size + size > budget) && parts.length < maxReports) {
      part = { results: [], summary: emptySummary(), size: 0 };
      parts.push(part);
    }
    // Once the last report is full, the rest is counted, in order, not listed.
    if (part === undefined || part.size + size > budget) {
      left[result.result]++;
      continue;
    }
    part.results.push(result);
    part.summary[result.result]++;
    part.size += size;
  }
  const last = parts.at(-1);
  if (last !== undefined && Object.values(left).some((n) => n > 0)) {
    last.results.push(overflow(left));
    for (const [kind, n] of Object.entries(left) as [ResultKind, number][]) last.summary[kind] += n;
  }
  return parts.map(({ results: r, summary }) => ({ results: r, summary }));
}

/**
 * The namespace's PolicyReports, for server-side apply: `imagegate`, then `imagegate-2`, …
 * as its results need (REPORT_BYTES each, at most MAX_REPORTS).
 */
export function policyReports(
  namespace: string,
  objects: readonly AuditedObject[],
  now: Date,
  revision: string,
  limit = REPORT_BYTES,
) {
  const seconds = Math.floor(now.getTime() / 1000);
  const results = sortedResults(objects).map(({ object, result }) =>
    reportResult(object, result, seconds),
  );
  const parts = pack(
    results,
    MAX_REPORTS,
    (left) => overflowResult(left, seconds, `the namespace's ${MAX_REPORTS} PolicyReports`),
    limit,
  );
  return parts.map((part, i) => ({
    apiVersion: 'wgpolicyk8s.io/v1alpha2',
    kind: 'PolicyReport',
    metadata: {
      name: REPORT_NAMES[i] ?? REPORT_NAME,
      namespace,
      labels: { ...MANAGED_BY },
      annotations: {
        'imagegate.dev/revision': revision,
        'imagegate.dev/part': `${i + 1}/${parts.length}`,
      },
    },
    summary: part.summary,
    results: part.results,
  }));
}

/** The cluster's totals: one result per namespace with failures or warnings. */
export function clusterPolicyReport(
  store: AuditStore,
  now: Date,
  revision: string,
  limit = REPORT_BYTES,
) {
  const seconds = Math.floor(now.getTime() / 1000);
  const results = store.namespaces().flatMap((namespace) => {
    const s = store.summary(namespace);
    if (s.fail === 0 && s.warn === 0) return [];
    return [
      {
        policy: POLICY,
        rule: 'namespace',
        result: s.fail > 0 ? ('fail' as const) : ('warn' as const),
        message: `namespace ${namespace}: ${s.fail} failing, ${s.warn} warning, ${s.pass} passing (PolicyReport ${namespace}/${REPORT_NAME})`,
        source: 'imagegate',
        scored: true,
        timestamp: { seconds, nanos: 0 },
        resources: [{ apiVersion: 'v1', kind: 'Namespace', name: namespace }],
      },
    ];
  });
  const [part] = pack(
    results,
    1,
    (left) => overflowResult(left, seconds, 'namespaces beyond the ClusterPolicyReport'),
    limit,
  );
  return {
    apiVersion: 'wgpolicyk8s.io/v1alpha2',
    kind: 'ClusterPolicyReport',
    metadata: {
      name: REPORT_NAME,
      labels: { ...MANAGED_BY },
      annotations: { 'imagegate.dev/revision': revision },
    },
    summary: store.summary(),
    results: part?.results ?? [],
  };
}
