/**
 * The webhooks among the real controllers (kube-controller-manager beside the API server):
 * Deployments, their ReplicaSets and pods, CronJobs and their Jobs, StatefulSets, with
 * pull policy, a pull secret and a registry rewrite on (namespace e2e-controllers), for
 * workloads made before the webhooks existed and after. Asserted on what the API server
 * stored: one ReplicaSet per template revision, no collisionCount, converged generations,
 * and the controllers' pods mutated; no update the API server would refuse.
 */
import test, { type ExecutionContext } from 'ava';
import { getPointer, isRecord, type JsonObject } from '../../src/shared/json.ts';
import type { Kubectl } from './helpers/kubectl.ts';
import { eventually } from './helpers/poll.ts';
import { createdAndStored, useE2e } from './helpers/scenario.ts';

// The Helm chart's webhook configurations, so one run registers those (the others use
// deploy/base's; test/deploy/chart.test.ts keeps the two equal).
const e2e = useE2e(test, { imagePolicyWebhook: false, webhooks: 'chart' }, async (env) => {
  // What exists before imagegate is installed, made without the webhooks.
  await env.unregisterWebhooks();
  for (const object of Object.values(legacy)) {
    await env.kubectl.must(['create', '-f', '-'], JSON.stringify(object));
  }
  await settle(env.kubectl);
  await env.registerWebhooks();
});

const NS = 'e2e-controllers';
/** Docker Hub is not trusted here; the rewrite sends it to the mirror, which is. */
const HUB = 'nginx:1.27.3';
const MIRRORED = 'mirror.example.com/library/nginx:1.27.3';

function deployment(name: string, image: string): JsonObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'web', image, imagePullPolicy: 'IfNotPresent' }] },
      },
    },
  };
}

function cronJob(name: string, image: string): JsonObject {
  return {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: { name, namespace: NS },
    spec: {
      // Never due while the test runs: Jobs come from `kubectl create job --from`.
      schedule: '0 0 29 2 *',
      jobTemplate: {
        spec: {
          template: {
            spec: {
              restartPolicy: 'Never',
              containers: [{ name: 'task', image, imagePullPolicy: 'IfNotPresent' }],
            },
          },
        },
      },
    },
  };
}

function statefulSet(name: string, image: string): JsonObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name, namespace: NS },
    spec: {
      replicas: 1,
      serviceName: name,
      // No kubelet: pods never become Ready, and OrderedReady would wait for them.
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'web', image, imagePullPolicy: 'IfNotPresent' }] },
      },
    },
  };
}

async function items(kubectl: Kubectl, resource: string, selector: string): Promise<JsonObject[]> {
  const result = await kubectl.must(['get', resource, '-n', NS, '-l', selector, '-o', 'json']);
  const list: unknown = JSON.parse(result.stdout);
  const found = isRecord(list) && Array.isArray(list.items) ? list.items : [];
  return found.filter(isRecord);
}

async function stored(kubectl: Kubectl, resource: string, name: string): Promise<JsonObject> {
  const object = await kubectl.get(resource, NS, name);
  if (object === undefined) throw new Error(`${resource} ${NS}/${name} is not stored`);
  return object;
}

const field = (object: unknown, pointer: string): unknown => getPointer(object, pointer);
const ownerName = (object: JsonObject): unknown =>
  field(object, '/metadata/ownerReferences/0/name');

/** The container of a pod as the kubelet would get it: image, pull policy, pull secrets. */
function pulled(pod: JsonObject): unknown[] {
  return [
    field(pod, '/spec/containers/0/image'),
    field(pod, '/spec/containers/0/imagePullPolicy'),
    field(pod, '/spec/imagePullSecrets'),
  ];
}
const MUTATED = (image: string) => [image, 'Always', [{ name: 'mirror-pull' }]];

/** The template without the label the controller adds, for comparing with its owner's. */
function templateOf(object: JsonObject): unknown {
  const template = structuredClone(field(object, '/spec/template'));
  const labels = field(template, '/metadata/labels');
  if (isRecord(labels)) delete labels['pod-template-hash'];
  return template;
}

/**
 * The Deployment has settled: its controller saw the latest generation, made exactly
 * `revisions` ReplicaSets (one per template revision, no collision), and each ReplicaSet
 * has the pods it wants, created through the webhooks (without a kubelet they stay
 * Pending, so old ReplicaSets keep some: the controller scales proportionally). Holds for
 * a few more seconds, which an endless ReplicaSet loop would not.
 */
async function settledDeployment(
  t: ExecutionContext,
  kubectl: Kubectl,
  name: string,
  revisions: number,
): Promise<{ deployment: JsonObject; newest: JsonObject; pods: JsonObject[] }> {
  const state = async () => {
    const deployment = await stored(kubectl, 'deployment', name);
    const sets = await items(kubectl, 'replicaset', `app=${name}`);
    const pods = await items(kubectl, 'pod', `app=${name}`);
    const newest = sets.find(
      (rs) =>
        field(rs, '/metadata/annotations/deployment.kubernetes.io~1revision') === String(revisions),
    );
    const complete = sets.every(
      (rs) =>
        pods.filter((pod) => ownerName(pod) === field(rs, '/metadata/name')).length ===
        field(rs, '/spec/replicas'),
    );
    return { deployment, sets, newest, pods, complete };
  };
  await eventually(
    `deployment ${name}: ${revisions} ReplicaSets, each with its pods`,
    async () => {
      const { deployment, sets, newest, complete } = await state();
      return (
        field(deployment, '/status/observedGeneration') ===
          field(deployment, '/metadata/generation') &&
        sets.length === revisions &&
        newest !== undefined &&
        Number(field(newest, '/spec/replicas')) >= 1 &&
        complete
      );
    },
    { timeoutMs: 40_000, everyMs: 250 },
  );
  await new Promise((resolve) => setTimeout(resolve, 4_000));
  const { deployment, sets, newest, pods } = await state();
  t.is(sets.length, revisions, 'one ReplicaSet per template revision, none made since');
  t.is(field(deployment, '/status/collisionCount'), undefined, 'the controller found its own');
  t.is(field(deployment, '/status/observedGeneration'), field(deployment, '/metadata/generation'));
  if (newest === undefined) throw new Error(`deployment ${name}: no ReplicaSet ${revisions}`);
  // The ReplicaSet carries its owner's template exactly: nothing mutated it.
  t.deepEqual(templateOf(newest), templateOf(deployment));
  return { deployment, newest, pods };
}

/** Wait for a Job's pods (the Job controller creates them through the webhooks). */
async function podsOfJob(kubectl: Kubectl, job: string): Promise<JsonObject[]> {
  let pods: JsonObject[] = [];
  await eventually(`the pods of job ${job}`, async () => {
    pods = await items(kubectl, 'pod', `job-name=${job}`);
    return pods.length > 0;
  });
  return pods;
}

/** Workloads made before imagegate was installed (or before this configuration). */
const legacy = {
  deployment: deployment('legacy', HUB),
  cronJob: cronJob('legacy-cron', HUB),
  statefulSet: statefulSet('legacy-sts', HUB),
  job: {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: 'legacy-job', namespace: NS, finalizers: ['example.com/hold'] },
    spec: {
      suspend: true,
      template: {
        spec: {
          restartPolicy: 'Never',
          containers: [{ name: 'task', image: HUB, imagePullPolicy: 'IfNotPresent' }],
        },
      },
    },
  },
  pod: {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'legacy-pod', namespace: NS },
    spec: { containers: [{ name: 'web', image: HUB, imagePullPolicy: 'IfNotPresent' }] },
  },
} satisfies Record<string, JsonObject>;

/** Before the webhooks come: the legacy Deployment and StatefulSet have their pods. */
async function settle(kubectl: Kubectl): Promise<void> {
  await eventually('the legacy workloads to have their pods', async () => {
    const deploymentPods = await items(kubectl, 'pod', 'app=legacy');
    const statefulPods = await items(kubectl, 'pod', 'app=legacy-sts');
    return deploymentPods.length === 1 && statefulPods.length === 1;
  });
}

test.serial('a Deployment from before imagegate: restart, scale, set image', async (t) => {
  const { kubectl } = e2e();
  // As it was made: IfNotPresent, Docker Hub, no secret.
  const before = await settledDeployment(t, kubectl, 'legacy', 1);
  t.deepEqual(before.pods.map(pulled), [[HUB, 'IfNotPresent', undefined]]);
  const old = new Set(before.pods.map((pod) => field(pod, '/metadata/name')));
  /** Every pod the controller made since the webhooks came pulls as configured. */
  const mutatedSince = (pods: JsonObject[], image: string) => {
    for (const pod of pods.filter((p) => !old.has(field(p, '/metadata/name')))) {
      t.deepEqual(pulled(pod), MUTATED(image), String(field(pod, '/metadata/name')));
    }
  };

  await kubectl.must(['rollout', 'restart', 'deployment/legacy', '-n', NS]);
  const restarted = await settledDeployment(t, kubectl, 'legacy', 2);
  // The template is left as it was; the pods the controller creates are mutated.
  t.is(field(restarted.newest, '/spec/template/spec/containers/0/imagePullPolicy'), 'IfNotPresent');
  t.true(restarted.pods.length > old.size);
  mutatedSince(restarted.pods, MIRRORED);

  // kubectl scale goes through deployments/scale; the controller then updates ReplicaSets.
  await kubectl.must(['scale', 'deployment/legacy', '--replicas=3', '-n', NS]);
  const scaled = await settledDeployment(t, kubectl, 'legacy', 2);
  t.true(scaled.pods.length >= 3);
  mutatedSince(scaled.pods, MIRRORED);

  // A new image is a change the mutating webhook makes to the Deployment's template.
  const updatedImage = 'mirror.example.com/library/nginx:1.27.4';
  await kubectl.must(['set', 'image', 'deployment/legacy', 'web=nginx:1.27.4', '-n', NS]);
  const updated = await settledDeployment(t, kubectl, 'legacy', 3);
  t.deepEqual(
    [
      field(updated.deployment, '/spec/template/spec/containers/0/image'),
      field(updated.deployment, '/spec/template/spec/containers/0/imagePullPolicy'),
      field(updated.deployment, '/spec/template/spec/imagePullSecrets'),
    ],
    MUTATED(updatedImage),
  );
  const newestPods = updated.pods.filter(
    (pod) => ownerName(pod) === field(updated.newest, '/metadata/name'),
  );
  t.true(newestPods.length > 0);
  for (const pod of newestPods) t.deepEqual(pulled(pod), MUTATED(updatedImage));
});

test.serial('a Deployment made with imagegate in place: create, restart, scale', async (t) => {
  const { kubectl } = e2e();
  const { stored: created } = await createdAndStored(t, e2e(), deployment('fresh', HUB));
  t.deepEqual(
    [
      field(created, '/spec/template/spec/containers/0/image'),
      field(created, '/spec/template/spec/containers/0/imagePullPolicy'),
      field(created, '/spec/template/spec/imagePullSecrets'),
    ],
    MUTATED(MIRRORED),
  );
  const first = await settledDeployment(t, kubectl, 'fresh', 1);
  for (const pod of first.pods) t.deepEqual(pulled(pod), MUTATED(MIRRORED));

  await kubectl.must(['rollout', 'restart', 'deployment/fresh', '-n', NS]);
  await settledDeployment(t, kubectl, 'fresh', 2);
  await kubectl.must(['scale', 'deployment/fresh', '--replicas=3', '-n', NS]);
  const scaled = await settledDeployment(t, kubectl, 'fresh', 2);
  t.true(scaled.pods.length >= 3);
  for (const pod of scaled.pods) t.deepEqual(pulled(pod), MUTATED(MIRRORED));
});

test.serial("a CronJob's Job keeps its owner's template; its pods are mutated", async (t) => {
  const { kubectl } = e2e();
  await createdAndStored(t, e2e(), cronJob('fresh-cron', HUB));
  for (const [cron, job] of [
    ['legacy-cron', 'legacy-run'],
    ['fresh-cron', 'fresh-run'],
  ] as const) {
    const made = await kubectl.run(['create', 'job', job, `--from=cronjob/${cron}`, '-n', NS]);
    t.is(made.code, 0, made.stderr);
    t.is(made.stderr, '', 'no warning either');
    const stored_ = await stored(kubectl, 'job', job);
    t.is(field(stored_, '/metadata/ownerReferences/0/kind'), 'CronJob');
    const owner = await stored(kubectl, 'cronjob', cron);
    t.deepEqual(
      field(stored_, '/spec/template/spec/containers'),
      field(owner, '/spec/jobTemplate/spec/template/spec/containers'),
    );
    t.deepEqual(
      field(stored_, '/spec/template/spec/imagePullSecrets'),
      field(owner, '/spec/jobTemplate/spec/template/spec/imagePullSecrets'),
    );
    for (const pod of await podsOfJob(kubectl, job)) t.deepEqual(pulled(pod), MUTATED(MIRRORED));
  }
});

// A Job's template is immutable: one patch into it fails the whole update, the garbage
// collector's finalizer removal included.
test.serial('with a pull secret on, Jobs and Pods from before still update', async (t) => {
  const { kubectl } = e2e();
  const labelled = await kubectl.run(['label', 'job', 'legacy-job', 'reviewed=yes', '-n', NS]);
  t.is(labelled.code, 0, labelled.stderr);
  const resumed = await kubectl.run([
    'patch',
    'job',
    'legacy-job',
    '-n',
    NS,
    '--type=merge',
    '-p',
    '{"metadata":{"finalizers":null}}',
  ]);
  t.is(resumed.code, 0, resumed.stderr);
  const job = await stored(kubectl, 'job', 'legacy-job');
  t.is(field(job, '/metadata/finalizers'), undefined);
  t.is(field(job, '/metadata/labels/reviewed'), 'yes');
  t.is(field(job, '/spec/template/spec/imagePullSecrets'), undefined, 'the template as it was');

  const pod = await kubectl.run(['label', 'pod', 'legacy-pod', 'reviewed=yes', '-n', NS]);
  t.is(pod.code, 0, pod.stderr);
  t.deepEqual(pulled(await stored(kubectl, 'pod', 'legacy-pod')), [HUB, 'IfNotPresent', undefined]);
  const deleted = await kubectl.run(['delete', 'job', 'legacy-job', '-n', NS, '--wait=true']);
  t.is(deleted.code, 0, deleted.stderr);
});

test.serial(
  'a StatefulSet from before imagegate: restart recreates its pod, mutated',
  async (t) => {
    const { kubectl } = e2e();
    await kubectl.must(['rollout', 'restart', 'statefulset/legacy-sts', '-n', NS]);
    let set: JsonObject = {};
    let pod: JsonObject | undefined;
    await eventually(
      'legacy-sts-0 recreated at the new revision',
      async () => {
        set = await stored(kubectl, 'statefulset', 'legacy-sts');
        pod = await kubectl.get('pod', NS, 'legacy-sts-0');
        const revision = field(pod, '/metadata/labels/controller-revision-hash');
        return (
          field(set, '/status/observedGeneration') === field(set, '/metadata/generation') &&
          revision !== undefined &&
          revision === field(set, '/status/updateRevision')
        );
      },
      { timeoutMs: 40_000, everyMs: 250 },
    );
    if (pod === undefined) throw new Error('legacy-sts-0 is gone');
    t.deepEqual(pulled(pod), MUTATED(MIRRORED));
    const revisions = await items(kubectl, 'controllerrevision', 'app=legacy-sts');
    t.is(revisions.length, 2, 'one ControllerRevision per template revision');
    t.is(field(set, '/spec/template/spec/containers/0/imagePullPolicy'), 'IfNotPresent');
  },
);
