/** The audit's results and the PolicyReports made of them (wgpolicyk8s.io/v1alpha2). */
import test from 'ava';
import type { AuditedObject } from '../../src/audit/evaluate.ts';
import { clusterPolicyReport, MAX_RESULTS, policyReport } from '../../src/audit/reports.ts';
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
  const report = policyReport(
    'shop',
    [object('b', 'pass'), object('a', 'fail')],
    new Date(1_800_000_000_000),
    'rev1',
  );
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

test('a report holds at most MAX_RESULTS results and says how many it left out', (t) => {
  const many = Array.from({ length: MAX_RESULTS + 5 }, (_, i) => object(`p${i}`, 'fail'));
  const report = policyReport('shop', many, new Date(), 'rev');
  t.is(report.results.length, MAX_RESULTS);
  t.is(report.summary.fail, MAX_RESULTS + 5);
  t.is(report.metadata.annotations['imagegate.dev/results-left-out'], '5');
});

test('the ClusterPolicyReport totals the cluster, one result per namespace with failures', (t) => {
  const store = new AuditStore();
  store.set('uid-a', 'shop', object('a', 'fail'));
  store.set('uid-b', 'web', object('b', 'pass', 'web'));
  const report = clusterPolicyReport(store, new Date(), 'rev');
  t.deepEqual(report.summary, { pass: 1, fail: 1, warn: 0, error: 0, skip: 0 });
  t.deepEqual(
    report.results.map((r) => [r.result, r.resources[0]?.name]),
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
