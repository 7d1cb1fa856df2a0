/**
 * What the kubelet pulls under imagegate, on a real node with real registries (crane
 * pushes, TLS with their own CAs): a pinned digest is what runs, a mirrored image comes
 * from the mirror and never from its source, a trusted image volume is mounted and read
 * while an untrusted one never reaches the kubelet, and a Deployment rollout, a CronJob
 * run and a DaemonSet end with running pods and no controller churn.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { getPointer, isRecord, type JsonObject } from '../../src/shared/json.ts';
import { pushImage, startRegistry, type TestRegistry } from '../helpers/registry.ts';
import type { Teardown } from '../helpers/teardown.ts';
import type { Kubectl } from './helpers/kubectl.ts';
import { manifestRequests, podReaches, podState, pushRunnable, runPod } from './helpers/pods.ts';
import { eventually } from './helpers/poll.ts';
import { refusedOnCreate, useE2e, WEBHOOK_DENIED } from './helpers/scenario.ts';

const PIN = 'node-pin';
const MIRROR = 'node-mirror';
const VOLUMES = 'node-volumes';
const WORKLOADS = 'node-workloads';

interface Registries {
  /** Trusted everywhere; the gateway asks it for digests (pinDigests). */
  readonly trusted: TestRegistry;
  /** The source a mirror rule sends elsewhere; untrusted. */
  readonly source: TestRegistry;
  readonly mirror: TestRegistry;
}
let registries: Registries | undefined;
let teardown: Teardown | undefined;
const the = (): Registries => {
  if (registries === undefined) throw new Error('the registries did not start');
  return registries;
};
const images = { app1: '', app2: '', digest1: '', content: '' };

const e2e = useE2e(
  test,
  {
    imagePolicyWebhook: false,
    node: {},
    before: async (work, t) => {
      teardown = t;
      registries = {
        trusted: await startRegistry(t, { auth: 'none' }),
        source: await startRegistry(t, { auth: 'none' }),
        mirror: await startRegistry(t, { auth: 'none' }),
      };
      const ca = join(work, 'trusted-registry-ca.crt');
      await writeFile(ca, registries.trusted.ca);
      const { trusted, source, mirror } = registries;
      return {
        namespaces: [PIN, MIRROR, VOLUMES, WORKLOADS],
        args: [`--registry-ca=${ca}`],
        namespaceOverrides: [
          `  ${PIN}: {trustedRegistries: ["${trusted.host}"], pinDigests: pods}`,
          `  ${MIRROR}:`,
          `    trustedRegistries: ["${mirror.host}"]`,
          `    mirrors: {"${source.host}": "${mirror.host}/proxy"}`,
          `  ${VOLUMES}: {trustedRegistries: ["${trusted.host}"]}`,
          `  ${WORKLOADS}: {trustedRegistries: ["${trusted.host}"]}`,
          '',
        ].join('\n'),
      };
    },
  },
  async (env) => {
    const { trusted, source, mirror } = the();
    const node = env.node;
    if (node === undefined || teardown === undefined) throw new Error('no node');
    for (const registry of [trusted, source, mirror]) {
      await node.trustRegistry(registry.host, registry.caFile);
    }
    const app1 = await pushRunnable(teardown, trusted, node.busybox, 'team/app', '1');
    images.app1 = app1.reference;
    images.digest1 = app1.digest;
    images.app2 = (await pushRunnable(teardown, trusted, node.busybox, 'team/app', '2')).reference;
    images.content = (await pushImage(trusted, 'team/content', '1')).repository;
    await pushRunnable(teardown, source, node.busybox, 'team/tool', '1');
    await pushRunnable(teardown, mirror, node.busybox, 'proxy/team/tool', '1');
  },
);

const create = (kubectl: Kubectl, object: JsonObject) =>
  kubectl.must(['create', '-f', '-'], JSON.stringify(object));

test.serial('pinDigests: the container runs the digest the tag named at admission', async (t) => {
  const { kubectl } = e2e();
  await create(kubectl, runPod(PIN, 'pinned', images.app1));
  const stored = await kubectl.get('pod', PIN, 'pinned');
  t.is(getPointer(stored, '/spec/containers/0/image'), `${images.app1}@${images.digest1}`);
  const state = await podReaches(kubectl, PIN, 'pinned');
  t.is(state.imageID, `${the().trusted.host}/team/app@${images.digest1}`);
});

test.serial('mirrors: the image comes from the mirror, never from its source', async (t) => {
  const { kubectl } = e2e();
  const { source, mirror } = the();
  // crane's push asked too: count from here.
  const sourceBefore = manifestRequests(source.logs(), 'team/tool');
  const mirrorBefore = manifestRequests(mirror.logs(), 'proxy/team/tool');
  await create(kubectl, runPod(MIRROR, 'mirrored', `${source.host}/team/tool:1`));
  const state = await podReaches(kubectl, MIRROR, 'mirrored');
  t.is(state.image, `${mirror.host}/proxy/team/tool:1`);
  t.true(state.imageID.startsWith(`${mirror.host}/proxy/team/tool@sha256:`), state.imageID);
  t.true(
    manifestRequests(mirror.logs(), 'proxy/team/tool') > mirrorBefore,
    'pulled from the mirror',
  );
  t.is(manifestRequests(source.logs(), 'team/tool'), sourceBefore, 'the source was never asked');
});

const volumePod = (name: string, reference: string) =>
  runPod(VOLUMES, name, images.app1, {
    restartPolicy: 'Never',
    command: ['sh', '-c', 'cat /data/imagegate-test.txt > /dev/termination-log'],
    volumes: [{ name: 'data', image: { reference, pullPolicy: 'IfNotPresent' } }],
    volumeMounts: [{ name: 'data', mountPath: '/data', readOnly: true }],
  });

test.serial('image volumes: a trusted one is mounted and read', async (t) => {
  const { kubectl } = e2e();
  await create(kubectl, volumePod('trusted-volume', `${images.content}:1`));
  const state = await podReaches(kubectl, VOLUMES, 'trusted-volume', ['Succeeded', 'Failed']);
  t.is(state.exitCode, 0);
  t.true(state.terminated.startsWith(`${images.content}:1 linux/amd64 `), state.terminated);
});

test.serial('image volumes: an untrusted one never reaches the kubelet', async (t) => {
  const env = e2e();
  const untrusted = `${the().source.host}/team/tool:1`;
  const before = manifestRequests(the().source.logs(), 'team/tool');
  await refusedOnCreate(
    t,
    env,
    volumePod('untrusted-volume', untrusted),
    `${WEBHOOK_DENIED}volume "data" (volumes[0]) image "${untrusted}": registry ${the().source.host}/team/tool is not trusted (trusted: ${the().trusted.host})`,
  );
  t.is(manifestRequests(the().source.logs(), 'team/tool'), before, 'nothing was pulled');
});

// --- workloads: the controllers' objects under the gateway's mutations --------------------

async function list(kubectl: Kubectl, resource: string, selector: string): Promise<JsonObject[]> {
  const out = await kubectl.must(['get', resource, '-n', WORKLOADS, '-l', selector, '-o', 'json']);
  const parsed: unknown = JSON.parse(out.stdout);
  return isRecord(parsed) && Array.isArray(parsed.items) ? parsed.items.filter(isRecord) : [];
}

const converged = (object: JsonObject | undefined) =>
  object !== undefined &&
  getPointer(object, '/status/observedGeneration') === getPointer(object, '/metadata/generation');

/** Every pod with the label runs `image`, ready, pulled Always (the gateway's mutation). */
async function allRunning(kubectl: Kubectl, selector: string, image: string, count: number) {
  await eventually(
    `${count} running pods of ${selector} with ${image}`,
    async () => {
      const pods = await list(kubectl, 'pod', selector);
      const live = pods.filter((p) => getPointer(p, '/metadata/deletionTimestamp') === undefined);
      return (
        live.length === count &&
        live.every(
          (p) =>
            getPointer(p, '/status/phase') === 'Running' &&
            getPointer(p, '/status/containerStatuses/0/ready') === true &&
            getPointer(p, '/spec/containers/0/image') === image &&
            getPointer(p, '/spec/containers/0/imagePullPolicy') === 'Always',
        )
      );
    },
    { timeoutMs: 120_000, everyMs: 500 },
  );
}

const template = (name: string, image: string) => ({
  metadata: { labels: { app: name } },
  spec: {
    terminationGracePeriodSeconds: 0,
    containers: [{ name: 'app', image, command: ['sleep', '3600'] }],
  },
});

test.serial(
  'a Deployment rollout ends with running pods and one ReplicaSet per revision',
  async (t) => {
    const { kubectl } = e2e();
    await create(kubectl, {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: WORKLOADS },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'web' } },
        template: template('web', images.app1),
      },
    });
    await allRunning(kubectl, 'app=web', images.app1, 2);
    await kubectl.must(['set', 'image', '-n', WORKLOADS, 'deployment/web', `app=${images.app2}`]);
    await kubectl.must(['rollout', 'status', '-n', WORKLOADS, 'deployment/web', '--timeout=120s']);
    await allRunning(kubectl, 'app=web', images.app2, 2);
    const deployment = await kubectl.get('deployment', WORKLOADS, 'web');
    t.true(converged(deployment));
    t.is(getPointer(deployment, '/status/collisionCount'), undefined);
    t.is(getPointer(deployment, '/status/updatedReplicas'), 2);
    const sets = await list(kubectl, 'replicaset', 'app=web');
    t.is(sets.length, 2, 'one ReplicaSet per template revision');
    t.true(sets.every(converged));
  },
);

test.serial('a CronJob run: its Job succeeds, its pod pulled Always', async (t) => {
  const { kubectl } = e2e();
  await create(kubectl, {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: { name: 'tick', namespace: WORKLOADS },
    spec: {
      schedule: '* * * * *',
      jobTemplate: {
        spec: {
          template: {
            metadata: { labels: { app: 'tick' } },
            spec: {
              restartPolicy: 'Never',
              terminationGracePeriodSeconds: 0,
              containers: [{ name: 'task', image: images.app1, command: ['true'] }],
            },
          },
        },
      },
    },
  });
  // The controller starts a Job at the next minute.
  await eventually(
    'the CronJob controller to run a Job to completion',
    async () => {
      const cronJob = await kubectl.get('cronjob', WORKLOADS, 'tick');
      return getPointer(cronJob, '/status/lastSuccessfulTime') !== undefined;
    },
    { timeoutMs: 150_000, everyMs: 1000 },
  );
  const jobs = await list(kubectl, 'job', 'app=tick');
  t.true(jobs.length >= 1);
  t.true(jobs.every((job) => getPointer(job, '/metadata/ownerReferences/0/name') === 'tick'));
  const pods = await list(kubectl, 'pod', 'app=tick');
  t.true(pods.some((p) => getPointer(p, '/status/phase') === 'Succeeded'));
  t.true(pods.every((p) => getPointer(p, '/spec/containers/0/imagePullPolicy') === 'Always'));
  await kubectl.must(['patch', '-n', WORKLOADS, 'cronjob/tick', '-p', '{"spec":{"suspend":true}}']);
});

test.serial('a DaemonSet runs its pod on the node, one revision', async (t) => {
  const { kubectl } = e2e();
  await create(kubectl, {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: 'agent', namespace: WORKLOADS },
    spec: { selector: { matchLabels: { app: 'agent' } }, template: template('agent', images.app1) },
  });
  await allRunning(kubectl, 'app=agent', images.app1, 1);
  await eventually('the DaemonSet status', async () => {
    const ds = await kubectl.get('daemonset', WORKLOADS, 'agent');
    return converged(ds) && getPointer(ds, '/status/numberReady') === 1;
  });
  const revisions = await list(kubectl, 'controllerrevision', 'app=agent');
  t.is(revisions.length, 1, 'no second revision: the template was not changed after creation');
  const state = await podState(
    kubectl,
    WORKLOADS,
    String(getPointer((await list(kubectl, 'pod', 'app=agent'))[0], '/metadata/name')),
  );
  t.is(state.image, images.app1);
});
