/**
 * `imagegate audit` against the real API server and controllers: the PolicyReport CRDs
 * from deploy/crds/policy-reports, `imagegate audit` as a subprocess with the admin
 * kubeconfig and a watched bundle directory; pods created through the webhooks, then
 * read back from the PolicyReports the audit publishes.
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import { imagegate } from '../helpers/cli.ts';
import { kubeletSwap, mountConfigMap } from '../helpers/configmap.ts';
import { Teardowns } from '../helpers/gateway.ts';
import {
  type AuditProcess,
  auditAccess,
  installPolicyReportCrds,
  startAuditProcess,
} from './helpers/audit-process.ts';
import { policyBundle } from './helpers/cluster-files.ts';
import { pod, podWith } from './helpers/kubectl.ts';
import { eventually } from './helpers/poll.ts';
import { createdAndStored, useE2e } from './helpers/scenario.ts';

const EVIL = 'quay.io/evil/miner:1';
const GOOD = 'registry.example.com/app:1.0';
const TRUSTED = ['registry.example.com', 'mirror.example.com'];
const EXCLUDED = ['kube-system', 'imagegate-system', 'e2e-excluded'];
/**
 * The gateway's namespaces and exclusions, and no trustedRegistries: those come from the
 * bundle (its data.json), so swapping the bundle changes them.
 */
const AUDIT_CONFIG = `excludeNamespaces: [${EXCLUDED.join(', ')}]\nnamespaces:\n  e2e-warn: {enforcement: warn}\n`;

const cleanup = new Teardowns();
test.after.always(() => cleanup.run());

const e2e = useE2e(test, { imagePolicyWebhook: false }, async (env) => {
  await installPolicyReportCrds(env);
  // Running before the audit starts: the first audit finds them.
  await env.kubectl.must(
    ['create', '-f', '-'],
    JSON.stringify(podWith('e2e-warn', 'warn-bad', EVIL)),
  );
  await env.kubectl.must(['create', '-f', '-'], JSON.stringify(podWith('e2e', 'good', GOOD)));
  await env.kubectl.must(
    ['create', '-f', '-'],
    JSON.stringify(podWith('e2e-excluded', 'excluded-bad', EVIL)),
  );
});

let audit: AuditProcess | undefined;
let mount = '';

async function startAudit(): Promise<AuditProcess> {
  mount = await mountConfigMap(await policyBundle({ trustedRegistries: TRUSTED }));
  cleanup.teardown(() => rm(mount, { recursive: true, force: true }));
  const config = join(e2e().work, 'audit-config.yaml');
  await writeFile(config, AUDIT_CONFIG);
  // As deploy/components/audit runs it: its ServiceAccount and RBAC, nothing more.
  const { direct } = await auditAccess(e2e(), { direct: e2e().controlPlane.apiserver });
  const started = await startAuditProcess(
    'main',
    [`--kubeconfig=${direct}`, `--bundle=${mount}`, `--config=${config}`],
    e2e().work,
  );
  cleanup.teardown(async () => {
    await started.stop();
  });
  return started;
}

async function clusterReport(): Promise<JsonObject> {
  const { stdout } = await e2e().kubectl.must([
    'get',
    'clusterpolicyreport',
    'imagegate',
    '-o',
    'json',
  ]);
  return JSON.parse(stdout) as JsonObject;
}

async function report(namespace: string): Promise<JsonObject | undefined> {
  return e2e().kubectl.get('policyreport', namespace, 'imagegate');
}

function results(report: JsonObject | undefined): JsonObject[] {
  return Array.isArray(report?.results) ? report.results.filter(isRecord) : [];
}

/** The result for a pod: [rule, result] pairs. */
function resultsFor(report: JsonObject | undefined, pod: string): string[][] {
  return results(report)
    .filter(
      (r) => Array.isArray(r.resources) && isRecord(r.resources[0]) && r.resources[0].name === pod,
    )
    .map((r) => [String(r.rule), String(r.result)]);
}

const reportShows = (namespace: string, pod: string, expected: string[][]) =>
  eventually(
    `PolicyReport ${namespace} to show ${pod} as ${JSON.stringify(expected)}`,
    async () => {
      return JSON.stringify(resultsFor(await report(namespace), pod)) === JSON.stringify(expected);
    },
  );

test.serial(
  'pods running in warn mode appear as failures in their namespace’s report',
  async (t) => {
    audit = await startAudit();
    await reportShows('e2e-warn', 'warn-bad', [['trusted-registry', 'fail']]);
    const stored = await e2e().kubectl.get('pod', 'e2e-warn', 'warn-bad');
    const failure = results(await report('e2e-warn')).find((r) => r.result === 'fail');
    t.like(failure, {
      policy: 'imagegate',
      source: 'imagegate',
      message: `container "web" (containers[0]) image "${EVIL}": registry quay.io/evil/miner is not trusted (trusted: ${TRUSTED.join(', ')})`,
      properties: { image: EVIL, container: 'web', enforcement: 'warn' },
    });
    t.deepEqual(((failure?.resources ?? []) as JsonObject[])[0], {
      apiVersion: 'v1',
      kind: 'Pod',
      namespace: 'e2e-warn',
      name: 'warn-bad',
      uid: ((stored?.metadata ?? {}) as JsonObject).uid,
    });
    await reportShows('e2e', 'good', [['images', 'pass']]);
    // A pod created while the audit watches is judged without a re-list.
    await createdAndStored(t, e2e(), podWith('e2e-warn', 'late-bad', EVIL));
    await reportShows('e2e-warn', 'late-bad', [['trusted-registry', 'fail']]);
    t.true((((await clusterReport()).summary as JsonObject).fail as number) >= 2);
  },
);

test.serial('excluded namespaces are skipped: no report there', async (t) => {
  t.is(await report('e2e-excluded'), undefined);
  t.is(await report('kube-system'), undefined);
});

test.serial('fixing a pod clears its failure; deleting one removes its result', async (t) => {
  const fixed = await e2e().kubectl.run([
    'set',
    'image',
    'pod/warn-bad',
    '-n',
    'e2e-warn',
    `web=${GOOD}`,
  ]);
  t.is(fixed.code, 0, fixed.stderr);
  await reportShows('e2e-warn', 'warn-bad', [['images', 'pass']]);
  await e2e().kubectl.must(['delete', 'pod', 'late-bad', '-n', 'e2e-warn', '--wait=false']);
  // No kubelet: force the deletion through, as the node would once the container stopped.
  await e2e().kubectl.run([
    'delete',
    'pod',
    'late-bad',
    '-n',
    'e2e-warn',
    '--grace-period=0',
    '--force',
  ]);
  await reportShows('e2e-warn', 'late-bad', []);
  t.pass();
});

test.serial(
  'a bundle that distrusts a registry turns running pods into failures, nothing restarted',
  async (t) => {
    const pod = await e2e().kubectl.get('pod', 'e2e', 'good');
    const pid = audit?.child.pid;
    await kubeletSwap(mount, await policyBundle({ trustedRegistries: ['mirror.example.com'] }));
    await reportShows('e2e', 'good', [['trusted-registry', 'fail']]);
    const after = await e2e().kubectl.get('pod', 'e2e', 'good');
    const uid = (object: JsonObject | undefined) => ((object?.metadata ?? {}) as JsonObject).uid;
    t.is(uid(after), uid(pod));
    t.is(audit?.child.pid, pid);
    t.is(audit?.child.exitCode, null);
    const metrics = await fetch(`http://127.0.0.1:${audit?.healthPort}/metrics`).then((r) =>
      r.text(),
    );
    t.regex(
      metrics,
      /imagegate_audit_results\{namespace="e2e",rule="trusted-registry",result="fail"\} 1/,
    );
  },
);

test.serial('--once prints the failures and exits 1', async (t) => {
  const { code, stdout } = await imagegate([
    'audit',
    '--once',
    `--kubeconfig=${e2e().kubeconfig}`,
    `--bundle=${join(mount, 'imagegate.tar.gz')}`,
    `--config=${join(e2e().work, 'audit-config.yaml')}`,
  ]);
  t.is(code, 1, stdout);
  t.regex(stdout, /^e2e\s+Pod\s+good\s+FAIL\s+trusted-registry\s+container "web"/m);
  t.notRegex(stdout, /e2e-excluded/);
  t.regex(stdout, /\d+ object\(s\) in \d+ namespace\(s\): [1-9]\d* failing/);
});

test.serial(
  'leader election: one replica holds the Lease; another takes it once renewals stop',
  async (t) => {
    const { Kube, loadKubeConfig } = await import('../../src/audit/kube.ts');
    const { LeaderElection } = await import('../../src/audit/leader.ts');
    const kube = new Kube(loadKubeConfig(e2e().kubeconfig));
    const options = { namespace: 'e2e', name: 'imagegate-audit-test', leaseMs: 2000, renewMs: 300 };
    const a = new LeaderElection(kube, { ...options, identity: 'replica-a' });
    const b = new LeaderElection(kube, { ...options, identity: 'replica-b' });
    t.true(await a.tryAcquire());
    t.false(await b.tryAcquire(), 'b must not take a lease a renews');
    let lost = false;
    await a.lead(() => {
      lost = true;
    });
    let bLeads = false;
    const bLeading = b
      .lead(() => undefined)
      .then(() => {
        bLeads = true;
      });
    await new Promise((resolve) => setTimeout(resolve, 2500));
    t.false(bLeads, 'b led while a renewed');
    a.stop();
    await bLeading;
    b.stop();
    const lease = await kube.get(
      '/apis/coordination.k8s.io/v1/namespaces/e2e/leases/imagegate-audit-test',
    );
    t.like(lease, { spec: { holderIdentity: 'replica-b', leaseTransitions: 1 } });
    t.false(lost);
  },
);

test.serial(
  'the audit may write its own reports and nothing else (RBAC as deployed)',
  async (t) => {
    const can = async (...args: string[]) =>
      (
        await e2e().kubectl.run([
          'auth',
          'can-i',
          ...args,
          '--as=system:serviceaccount:imagegate-system:imagegate-audit',
        ])
      ).stdout.trim();
    t.is(await can('patch', 'policyreports/imagegate', '-n', 'e2e'), 'yes');
    t.is(await can('delete', 'policyreports/imagegate-10', '-n', 'shop'), 'yes');
    t.is(await can('patch', 'clusterpolicyreports/imagegate'), 'yes');
    t.is(await can('patch', 'policyreports/kyverno-report', '-n', 'e2e'), 'no');
    t.is(await can('create', 'policyreports/imagegate-3', '-n', 'shop'), 'yes');
    t.is(await can('create', 'policyreports/kyverno-report', '-n', 'e2e'), 'no');
    t.is(await can('delete', 'policyreports/imagegate-11', '-n', 'e2e'), 'no');
    t.is(await can('update', 'policyreports/imagegate', '-n', 'e2e'), 'no');
    t.is(await can('delete', 'clusterpolicyreports/imagegate'), 'no');
    t.is(await can('patch', 'clusterpolicyreports/other'), 'no');
    t.is(await can('get', 'secrets', '-n', 'e2e'), 'no');
    t.is(await can('update', 'leases/imagegate-audit', '-n', 'imagegate-system'), 'yes');
    t.is(await can('update', 'leases/other', '-n', 'imagegate-system'), 'no');
  },
);

/** A pod whose 200-character image fails one rule (its registry), and only that one. */
const bigPod = (i: number): JsonObject => {
  const suffix = `${String(i).padStart(5, '0')}:1`;
  const image = `quay.io/evil/${'m'.repeat(200 - 'quay.io/evil/'.length - suffix.length)}${suffix}`;
  return pod('e2e-big', `big-${String(i).padStart(5, '0')}`, {
    containers: [{ name: 'web', image, imagePullPolicy: 'Always' }],
  });
};

test.serial(
  '10,000 failing pods with 200-character images: reports within what etcd stores',
  async (t) => {
    // About 100 pods a second on two shared cores, the audit publishing as they come.
    t.timeout(900_000);
    const { Kube, loadKubeConfig } = await import('../../src/audit/kube.ts');
    const { REPORT_NAMES } = await import('../../src/audit/reports.ts');
    const kube = new Kube(loadKubeConfig(e2e().kubeconfig));
    t.is(
      String((bigPod(0).spec as { containers: { image: string }[] }).containers[0]?.image).length,
      200,
    );
    // Created past the webhooks (the policy would refuse them); what the audit then finds.
    await e2e().kubectl.must(['create', 'namespace', 'e2e-big']);
    await e2e().unregisterWebhooks();
    try {
      let next = 0;
      const create = async () => {
        for (let i = next++; i < 10_000; i = next++) {
          const { status, json } = await kube.request('POST', '/api/v1/namespaces/e2e-big/pods', {
            body: bigPod(i),
          });
          if (status !== 201) throw new Error(`pod ${i}: HTTP ${status} ${JSON.stringify(json)}`);
        }
      };
      await Promise.all(Array.from({ length: 16 }, create));
    } finally {
      await e2e().registerWebhooks();
    }
    const reports = async () => {
      const listed = await e2e().kubectl.run([
        'get',
        'policyreport',
        '-n',
        'e2e-big',
        '-o',
        'json',
      ]);
      return listed.code === 0
        ? ((JSON.parse(listed.stdout) as JsonObject).items as JsonObject[])
        : [];
    };
    const fails = (items: JsonObject[]) =>
      items.reduce((n, r) => n + Number(((r.summary ?? {}) as JsonObject).fail ?? 0), 0);
    await eventually(
      'the e2e-big reports to count 10,000 failures',
      async () => fails(await reports()) === 10_000,
      {
        timeoutMs: 240_000,
        everyMs: 2000,
      },
    );
    const items = await reports();
    const names = items.map((r) => String((r.metadata as JsonObject).name)).sort();
    t.true(items.length > 1, `${items.length} report(s)`);
    t.true(
      names.every((n) => REPORT_NAMES.includes(n)),
      names.join(', '),
    );
    // As the API server stores them (metadata and managedFields included): under etcd's 1.5 MiB.
    for (const report of items) {
      const bytes = Buffer.byteLength(JSON.stringify(report));
      t.true(bytes < 1.5 * 1024 * 1024, `${(report.metadata as JsonObject).name}: ${bytes} bytes`);
    }
    const listed = items.flatMap((r) => (r.results ?? []) as JsonObject[]);
    const overflow = listed.filter((r) => r.rule === 'overflow');
    const named = listed.filter((r) => r.rule !== 'overflow').length;
    t.log(`${items.length} reports, ${named} results listed, ${overflow.length} overflow line(s)`);
    if (named < 10_000) {
      t.is(overflow.length, 1);
      t.regex(
        String(overflow[0]?.message),
        new RegExp(`^${10_000 - named} more result\\(s\\) not listed`),
      );
    }
    t.is(audit?.messages('PolicyReport not published').length, 0);
    t.regex(JSON.stringify(await clusterReport()), /namespace e2e-big: 10000 failing/);
  },
);
