/**
 * `imagegate audit` while the API server fails under it, against the real kube-apiserver:
 * stopped and started again; behind a proxy that answers 500s and resets connections; a
 * standby that cannot read its Lease; a leader that cannot recover, which must release
 * its Lease and exit 1 so that the standby takes over. The audits run as the
 * ServiceAccount deploy/components/audit makes (token kubeconfigs).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import { Teardowns } from '../helpers/gateway.ts';
import { type ApiProxy, startApiProxy } from './helpers/api-proxy.ts';
import {
  type AuditProcess,
  auditAccess,
  installPolicyReportCrds,
  startAuditProcess,
} from './helpers/audit-process.ts';
import { podWith } from './helpers/kubectl.ts';
import { eventually } from './helpers/poll.ts';
import { useE2e } from './helpers/scenario.ts';

const EVIL = 'quay.io/evil/miner:1';
const NS = 'e2e-warn';
const RETRYING = 'audit: API call failed; retrying';

const cleanup = new Teardowns();
test.after.always(() => cleanup.run());

let proxy: ApiProxy | undefined;
let kubeconfigs: Record<string, string> = {};
let config = '';

const e2e = useE2e(test, { imagePolicyWebhook: false }, async (env) => {
  await installPolicyReportCrds(env);
  proxy = await startApiProxy({
    upstream: env.controlPlane.apiserver,
    ca: env.controlPlane.ca,
    cert: env.controlPlane.serving.cert,
    key: env.controlPlane.serving.key,
  });
  cleanup.teardown(() => proxy?.close());
  kubeconfigs = await auditAccess(env, {
    direct: env.controlPlane.apiserver,
    proxied: proxy.url,
  });
  config = join(env.work, 'audit-config.yaml');
  await writeFile(config, 'excludeNamespaces: [kube-system, imagegate-system, e2e-excluded]\n');
  await env.kubectl.must(['create', '-f', '-'], JSON.stringify(podWith(NS, 'res-bad', EVIL)));
});

function faultyProxy(): ApiProxy {
  if (proxy === undefined) throw new Error('no proxy');
  return proxy;
}

async function audit(name: string, args: readonly string[]): Promise<AuditProcess> {
  const started = await startAuditProcess(
    name,
    [`--config=${config}`, '--lease-namespace=imagegate-system', ...args],
    e2e().work,
  );
  cleanup.teardown(async () => {
    await started.stop();
  });
  return started;
}

/** The failing pods the namespace's reports name. */
async function failingPods(): Promise<string[]> {
  const listed = await e2e().kubectl.run(['get', 'policyreport', '-n', NS, '-o', 'json']);
  if (listed.code !== 0) return [];
  const items = (JSON.parse(listed.stdout) as JsonObject).items as JsonObject[];
  return items.flatMap((report) =>
    ((report.results ?? []) as JsonObject[])
      .filter((r) => r.result === 'fail' && Array.isArray(r.resources))
      .map((r) => String((r.resources as JsonObject[])[0]?.name)),
  );
}

const reported = (pod: string) =>
  eventually(`pod ${pod} in the ${NS} reports`, async () => (await failingPods()).includes(pod), {
    timeoutMs: 60_000,
  });

const logged = (process: AuditProcess, what: string, check: (line: JsonObject) => boolean) =>
  eventually(
    `${what} (${process.logFile})`,
    async () => process.lines.some(check) || process.child.exitCode !== null,
    { timeoutMs: 90_000 },
  );

async function createPod(name: string): Promise<void> {
  await e2e().kubectl.must(['create', '-f', '-'], JSON.stringify(podWith(NS, name, EVIL)));
}

test.serial('the API server stopped and started again under the audit: it audits on', async (t) => {
  const b = await audit('restart', [`--kubeconfig=${kubeconfigs.direct}`]);
  await reported('res-bad');
  await e2e().controlPlane.stopApiserver();
  try {
    await logged(b, 'a failed watch retried', (l) => l.msg === RETRYING);
    // Still within --give-up-after-s: alive, and saying what fails. Polled: while the API
    // server shuts down gracefully it still accepts a watch or two, and a watch it accepts
    // is rightly no longer failing (CI once read /healthz in that moment).
    let failing: object = {};
    await eventually(
      'the audit alive and saying what fails',
      async () => {
        const healthz = await b.health('/healthz');
        t.is(healthz.status, 200);
        failing = isRecord(healthz.body) ? (healthz.body.failing as object) : {};
        return Object.keys(failing).length > 0;
      },
      { timeoutMs: 60_000 },
    );
    t.true(Object.keys(failing).length > 0);
  } finally {
    await e2e().controlPlane.startApiserver();
  }
  await createPod('after-restart');
  await reported('after-restart');
  t.is(b.child.exitCode, null, 'the audit kept running');
  t.true(b.messages('audit: the API server answers again').length > 0);
  t.is(await b.stop(), 0);
});

let leader: AuditProcess | undefined;

test.serial('a 500 on the first list is retried; then the audit publishes', async (t) => {
  faultyProxy().fail('500', /^\/api\/v1\/pods/);
  leader = await audit('leader', [
    `--kubeconfig=${kubeconfigs.proxied}`,
    '--leader-elect',
    '--lease-identity=replica-a',
    '--give-up-after-s=10',
  ]);
  const a = leader;
  await logged(
    a,
    'the first list retried twice',
    (l) => l.msg === RETRYING && l.operation === 'list Pod' && l.attempt === 2,
  );
  t.is((await a.health('/healthz')).status, 200, 'retrying is alive');
  t.is((await a.health('/readyz')).status, 503, 'not audited yet');
  faultyProxy().fail('none');
  await reported('res-bad');
  await eventually('readiness', async () => (await a.health('/readyz')).status === 200);
  t.is(a.child.exitCode, null);
  t.true(faultyProxy().counts['500'] >= 2);
});

test.serial(
  'connections reset under its watches: resumed, and later pods still reported',
  async (t) => {
    const a = leader;
    if (a === undefined) return t.fail('no leader');
    const before = a.messages(RETRYING).length;
    faultyProxy().fail('reset', /watch=true/);
    await logged(
      a,
      'a reset watch retried',
      (l) =>
        l.msg === RETRYING &&
        String(l.operation).startsWith('watch ') &&
        a.messages(RETRYING).length > before,
    );
    faultyProxy().fail('none');
    await createPod('after-reset');
    await reported('after-reset');
    t.is(a.child.exitCode, null);
    t.true(faultyProxy().counts.reset > 0);
  },
);

test.serial('a standby that cannot read its Lease logs why and is not ready', async (t) => {
  const broken = join(e2e().work, 'broken.kubeconfig');
  const { readFile } = await import('node:fs/promises');
  await writeFile(
    broken,
    (await readFile(kubeconfigs.direct ?? '', 'utf8')).replace(/token: .*/, 'token: not-a-token'),
  );
  const f = await audit('broken', [
    `--kubeconfig=${broken}`,
    '--leader-elect',
    '--lease-identity=replica-broken',
  ]);
  await logged(f, 'a Lease error', (l) => l.msg === 'audit lease: cannot take or renew it');
  t.regex(String(f.messages('audit lease: cannot take or renew it')[0]?.error), /Unauthorized|401/);
  const ready = await f.health('/readyz');
  t.is(ready.status, 503);
  t.like(ready.body, { leading: false, lease: { answered: false } });
  t.is((await f.health('/healthz')).status, 200);
  t.is(await f.stop(), 0);
});

test.serial(
  'a leader that cannot recover releases its Lease and exits 1; the standby takes over',
  async (t) => {
    const a = leader;
    if (a === undefined) return t.fail('no leader');
    const s = await audit('standby', [
      `--kubeconfig=${kubeconfigs.direct}`,
      '--leader-elect',
      '--lease-identity=replica-s',
    ]);
    await eventually(
      'the standby to be ready',
      async () => (await s.health('/readyz')).status === 200,
    );
    t.like((await s.health('/readyz')).body, { leading: false });
    // The workloads fail, the Lease does not: the leader gives up on its own, not on a lost Lease.
    faultyProxy().fail('500', /^\/api\/v1\/|^\/apis\/(apps|batch)\//);
    t.is(await a.exit, 1);
    t.true(a.messages('audit gave up; exiting').length > 0);
    t.true(a.messages('audit lease released').length > 0);
    await logged(s, 'the standby leading', (l) => l.msg === 'leading the audit');
    await createPod('after-handover');
    await reported('after-handover');
    const lease = await e2e().kubectl.get('lease', 'imagegate-system', 'imagegate-audit');
    t.like(lease, { spec: { holderIdentity: 'replica-s' } });
    faultyProxy().fail('none');
    t.is(await s.stop(), 0);
    // Stopped on a signal, it hands the Lease back too.
    const after = await e2e().kubectl.get('lease', 'imagegate-system', 'imagegate-audit');
    t.like(after, { spec: { holderIdentity: '' } });
  },
);
