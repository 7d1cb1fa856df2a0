/** The audit's results and the PolicyReports made of them (wgpolicyk8s.io/v1alpha2). */
import test from 'ava';
import type { AuditedObject } from '../../src/audit/evaluate.ts';
import {
  clusterPolicyReport,
  MAX_REPORTS,
  policyReports,
  REPORT_BYTES,
  REPORT_NAMES,
} from '../../src/audit/reports.ts';
import { AuditStore } from '../../src/audit/store.ts';
import { formatTable } from '../../src/commands/audit-service.ts';

const object = (name: string, result: 'pass' | 'fail', namespace = 'shop'): AuditedObject => ({
  uid: `uid-${name}`,
  apiVersion: 'v1',
  kind: 'Pod',
  namespace,
  name,
  results: [
    result === 'fail'
      ? {
          rule: 'trusted-registry',
          result,
          message: `container "c" image "x": bad ${name}`,
          image: 'x',
        }
      : { rule: 'images', result, message: 'every image passes the policy' },
  ],
});

test('a change marks its namespace once; the same results mark nothing', (t) => {
  const store = new AuditStore();
  store.set('uid-a', 'shop', object('a', 'fail'));
  store.set('uid-b', 'web', object('b', 'pass', 'web'));
  t.deepEqual(store.takeDirty(), ['shop', 'web']);
  store.set('uid-a', 'shop', object('a', 'fail'));
  t.deepEqual(store.takeDirty(), []);
  store.set('uid-a', 'shop', object('a', 'pass'));
  t.deepEqual(store.takeDirty(), ['shop']);
  store.delete('uid-b');
  t.deepEqual(store.takeDirty(), ['web']);
  t.deepEqual(store.namespaces(), ['shop']);
  // Not audited any more (say, its namespace is now excluded): gone, and its namespace marked.
  store.set('uid-a', 'shop', undefined);
  t.deepEqual([store.size, store.takeDirty()], [0, ['shop']]);
});

test('a fresh list forgets the objects of its kind it did not see', (t) => {
  const store = new AuditStore();
  store.set('uid-a', 'shop', object('a', 'fail'));
  store.set('uid-b', 'shop', object('b', 'pass'));
  store.takeDirty();
  store.retainOnly('Pod', new Set(['uid-b']));
  t.deepEqual(
    store.objects('shop').map((o) => o.name),
    ['b'],
  );
  t.deepEqual(store.takeDirty(), ['shop']);
});

test('a PolicyReport: failures first, the resource named, the summary counting all', (t) => {
  const [report, ...more] = policyReports(
    'shop',
    [object('b', 'pass'), object('a', 'fail')],
    new Date(1_800_000_000_000),
    'rev1',
  );
  t.deepEqual(more, []);
  if (report === undefined) return t.fail('no report');
  t.like(report, {
    apiVersion: 'wgpolicyk8s.io/v1alpha2',
    kind: 'PolicyReport',
    metadata: {
      name: 'imagegate',
      namespace: 'shop',
      labels: { 'app.kubernetes.io/managed-by': 'imagegate' },
    },
    summary: { pass: 1, fail: 1, warn: 0, error: 0, skip: 0 },
  });
  t.deepEqual(report.results[0], {
    policy: 'imagegate',
    rule: 'trusted-registry',
    result: 'fail',
    message: 'container "c" image "x": bad a',
    source: 'imagegate',
    scored: true,
    severity: 'high',
    category: 'Image policy',
    timestamp: { seconds: 1_800_000_000, nanos: 0 },
    resources: [{ apiVersion: 'v1', kind: 'Pod', namespace: 'shop', name: 'a', uid: 'uid-a' }],
    properties: { image: 'x' },
  });
  t.is(report.results[1]?.result, 'pass');
});

/** A failing pod with a 200-character image, as the e2e test creates 10,000 of. */
const big = (i: number): AuditedObject => {
  const image = `quay.io/evil/${'m'.repeat(180)}${String(i).padStart(5, '0')}:1`;
  return {
    ...object(`pod-${String(i).padStart(5, '0')}`, 'fail'),
    results: [
      {
        rule: 'trusted-registry',
        result: 'fail',
        message: `container "web" (containers[0]) image "${image}": registry ${image.split(':')[0]} is not trusted (trusted: registry.example.com)`,
        image,
        container: 'web',
        path: '/spec/containers/0/image',
        enforcement: 'deny',
      },
    ],
  };
};

const size = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

test('results spill into further reports, each within the bytes etcd stores', (t) => {
  const objects = Array.from({ length: 3000 }, (_, i) => big(i));
  const reports = policyReports('shop', objects, new Date(), 'rev');
  t.true(reports.length > 1, `${reports.length} report(s)`);
  t.deepEqual(
    reports.map((r) => r.metadata.name),
    REPORT_NAMES.slice(0, reports.length),
  );
  for (const report of reports) t.true(size(report) <= REPORT_BYTES, `${size(report)} bytes`);
  t.true(REPORT_BYTES < 1.5 * 1024 * 1024);
  // Every result listed once, in order, and the summaries add up to all of them.
  const listed = reports.flatMap((r) => r.results);
  t.is(listed.length, 3000);
  t.is(
    reports.reduce((n, r) => n + r.summary.fail, 0),
    3000,
  );
  t.deepEqual(
    reports.map((r) => r.metadata.annotations['imagegate.dev/part']),
    reports.map((_, i) => `${i + 1}/${reports.length}`),
  );
});

test('beyond MAX_REPORTS the rest is counted in one overflow result, not listed', (t) => {
  // Small reports, so a few hundred results fill them all.
  const limit = 32 * 1024;
  const objects = Array.from({ length: 600 }, (_, i) => big(i));
  const reports = policyReports('shop', objects, new Date(), 'rev', limit);
  t.is(reports.length, MAX_REPORTS);
  for (const report of reports) t.true(size(report) <= limit, `${size(report)} bytes`);
  const last = reports.at(-1);
  const overflow = last?.results.at(-1);
  const listed = reports.flatMap((r) => r.results).filter((r) => r.rule !== 'overflow');
  t.like(overflow, { rule: 'overflow', result: 'fail' });
  t.regex(
    String(overflow?.message),
    new RegExp(
      `^${600 - listed.length} more result\\(s\\) not listed \\(${600 - listed.length} fail`,
    ),
  );
  t.is(
    reports.reduce((n, r) => n + r.summary.fail, 0),
    600,
  );
});

test('a namespace with nothing audited has no report', (t) => {
  t.deepEqual(policyReports('shop', [], new Date(), 'rev'), []);
});

test('the ClusterPolicyReport totals the cluster, one result per namespace with failures', (t) => {
  const store = new AuditStore();
  store.set('uid-a', 'shop', object('a', 'fail'));
  store.set('uid-b', 'web', object('b', 'pass', 'web'));
  const report = clusterPolicyReport(store, new Date(), 'rev');
  t.deepEqual(report.summary, { pass: 1, fail: 1, warn: 0, error: 0, skip: 0 });
  t.deepEqual(
    report.results.map((r) => [
      r.result,
      (r.resources as { name: string }[] | undefined)?.[0]?.name,
    ]),
    [['fail', 'shop']],
  );
});

test('--once prints what fails and a summary line', (t) => {
  const text = formatTable([object('a', 'fail'), object('b', 'pass')], { fail: 1, pass: 1 });
  t.deepEqual(text.split('\n'), [
    'NAMESPACE  KIND  NAME  RESULT  RULE              MESSAGE',
    'shop       Pod   a     FAIL    trusted-registry  container "c" image "x": bad a',
    '2 object(s) in 1 namespace(s): 1 failing, 0 warning, 0 in error, 0 skipped, 1 passing',
    '',
  ]);
});
