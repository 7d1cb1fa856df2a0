/**
 * The admission webhooks from deploy/base in front of a real kube-apiserver (without
 * ImagePolicyWebhook): what it stores, mutates and refuses, driven only through kubectl.
 */
import test from 'ava';
import { getPointer, type JsonObject } from '../../src/shared/json.ts';
import { pod, podWith } from './helpers/kubectl.ts';
import {
  BREAK_GLASS,
  bundleSwapScenario,
  createdAndStored,
  DIGEST,
  errorCreating,
  inContainer,
  LATEST,
  notTrusted,
  refusedOnCreate,
  UNTAGGED,
  useE2e,
  WEBHOOK_DENIED,
} from './helpers/scenario.ts';

const e2e = useE2e(test, { imagePolicyWebhook: false });

const EVIL = 'quay.io/evil/miner:1.0';
const GOOD = 'registry.example.com/app:1.0';

/** The validating webhook's refusal of one image in containers[0]. */
const denied = (container: string, image: string, problem: string) =>
  WEBHOOK_DENIED + inContainer(container, 'containers[0]', image, problem);

function workload(kind: 'Deployment' | 'CronJob', name: string, image: string): JsonObject {
  const metadata = { name, namespace: 'e2e' };
  const template = {
    metadata: { labels: { app: name } },
    spec: {
      restartPolicy: kind === 'CronJob' ? 'OnFailure' : 'Always',
      containers: [{ name, image }],
    },
  };
  return kind === 'Deployment'
    ? {
        apiVersion: 'apps/v1',
        kind,
        metadata,
        spec: { selector: { matchLabels: { app: name } }, template },
      }
    : {
        apiVersion: 'batch/v1',
        kind,
        metadata,
        spec: { schedule: '*/5 * * * *', jobTemplate: { spec: { template } } },
      };
}

test.serial('an untrusted registry is refused by the validating webhook, naming it', async (t) => {
  await refusedOnCreate(
    t,
    e2e(),
    podWith('e2e', 'miner', EVIL),
    denied('web', EVIL, notTrusted('quay.io/evil/miner')),
  );
  // A look-alike host is another registry: sources match whole components, not prefixes.
  const lookalike = 'registry.example.com.evil.io/app:1.0';
  await refusedOnCreate(
    t,
    e2e(),
    podWith('e2e', 'lookalike', lookalike),
    denied('web', lookalike, notTrusted('registry.example.com.evil.io/app')),
  );
});

test.serial(':latest and untagged images are refused; a digest-pinned one is stored', async (t) => {
  const latest = 'registry.example.com/app:latest';
  await refusedOnCreate(t, e2e(), podWith('e2e', 'latest', latest), denied('web', latest, LATEST));
  const untagged = 'registry.example.com/app';
  await refusedOnCreate(
    t,
    e2e(),
    podWith('e2e', 'untagged', untagged),
    denied('web', untagged, UNTAGGED),
  );
  const pinned = `registry.example.com/app@${DIGEST}`;
  const { stored } = await createdAndStored(t, e2e(), podWith('e2e', 'pinned', pinned));
  t.is(getPointer(stored, '/spec/containers/0/image'), pinned);
});

test.serial('imagePullPolicy is Always on the stored containers and initContainers', async (t) => {
  const manifest = pod('e2e', 'pull-policy', {
    initContainers: [
      { name: 'init', image: 'registry.example.com/init:1.0', imagePullPolicy: 'IfNotPresent' },
    ],
    containers: [
      { name: 'web', image: GOOD, imagePullPolicy: 'Never' },
      { name: 'side', image: 'registry.example.com/side:2.0' },
    ],
  });
  const { stored } = await createdAndStored(t, e2e(), manifest);
  t.deepEqual(
    [
      getPointer(stored, '/spec/initContainers/0/imagePullPolicy'),
      getPointer(stored, '/spec/containers/0/imagePullPolicy'),
      getPointer(stored, '/spec/containers/1/imagePullPolicy'),
    ],
    ['Always', 'Always', 'Always'],
  );
});

test.serial(
  'an ephemeral container added through pods/ephemeralcontainers is checked',
  async (t) => {
    const { kubectl } = e2e();
    await createdAndStored(t, e2e(), podWith('e2e', 'target', GOOD));
    // kubectl debug adds the container with an UPDATE on the subresource; without -i it
    // does not attach, so the pod need not run (there is no kubelet here).
    const debug = (container: string, image: string) =>
      kubectl.run([
        'debug',
        'target',
        '-n=e2e',
        '--profile=general',
        `--container=${container}`,
        `--image=${image}`,
        '--image-pull-policy=IfNotPresent',
      ]);

    const refused = await debug('probe', EVIL);
    t.is(refused.code, 1);
    t.is(
      refused.stderr.trim(),
      'Error from server (Forbidden): ' +
        WEBHOOK_DENIED +
        inContainer('probe', 'ephemeralContainers[0]', EVIL, notTrusted('quay.io/evil/miner')),
    );
    const before = await kubectl.get('pod', 'e2e', 'target');
    t.is(getPointer(before, '/spec/ephemeralContainers'), undefined);

    const allowed = await debug('shell', 'registry.example.com/debug:1.0');
    t.is(allowed.code, 0, allowed.stderr);
    const after = await kubectl.get('pod', 'e2e', 'target');
    t.deepEqual(
      ['name', 'image', 'imagePullPolicy'].map((key) =>
        getPointer(after, `/spec/ephemeralContainers/0/${key}`),
      ),
      ['shell', 'registry.example.com/debug:1.0', 'Always'],
    );
  },
);

test.serial('a Deployment and a CronJob with a bad image are refused at apply time', async (t) => {
  const { kubectl } = e2e();
  const cronImage = 'registry.example.com/job:latest';
  const bad = [
    workload('Deployment', 'bad-deploy', EVIL),
    workload('CronJob', 'bad-cron', cronImage),
  ];
  const list = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: bad });
  const applied = await kubectl.run(['apply', '-f', '-'], list);
  t.is(applied.code, 1);
  t.deepEqual(applied.stderr.trim().split('\n'), [
    errorCreating('Forbidden') + denied('bad-deploy', EVIL, notTrusted('quay.io/evil/miner')),
    errorCreating('Forbidden') + denied('bad-cron', cronImage, LATEST),
  ]);
  t.is(await kubectl.get('deployment', 'e2e', 'bad-deploy'), undefined);
  t.is(await kubectl.get('cronjob', 'e2e', 'bad-cron'), undefined);

  // A good one is stored, its template's pull policy set.
  const good = JSON.stringify(workload('Deployment', 'good-deploy', GOOD));
  t.is((await kubectl.run(['apply', '-f', '-'], good)).code, 0);
  const stored = await kubectl.get('deployment', 'e2e', 'good-deploy');
  t.is(getPointer(stored, '/spec/template/spec/containers/0/imagePullPolicy'), 'Always');
});

test.serial('registry rewrite, pull secret and storage class show on stored objects', async (t) => {
  const mirrored = `mirror.example.com/team/app@${DIGEST}`;
  const { stored } = await createdAndStored(
    t,
    e2e(),
    pod('e2e-rewrite', 'rewritten', {
      initContainers: [{ name: 'init', image: 'docker.io/library/busybox:1.36' }],
      containers: [
        { name: 'web', image: 'nginx:1.27.3' },
        { name: 'mirrored', image: mirrored },
      ],
    }),
  );
  t.deepEqual(
    [
      getPointer(stored, '/spec/initContainers/0/image'),
      getPointer(stored, '/spec/containers/0/image'),
      getPointer(stored, '/spec/containers/1/image'),
    ],
    [
      'mirror.example.com/library/busybox:1.36',
      'mirror.example.com/library/nginx:1.27.3',
      mirrored,
    ],
  );
  t.deepEqual(getPointer(stored, '/spec/imagePullSecrets'), [{ name: 'mirror-pull' }]);

  const claim = (name: string, storageClassName?: string): JsonObject => ({
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace: 'e2e' },
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: '1Gi' } },
      ...(storageClassName === undefined ? {} : { storageClassName }),
    },
  });
  const defaulted = await createdAndStored(t, e2e(), claim('data'));
  t.is(getPointer(defaulted.stored, '/spec/storageClassName'), 'e2e-standard');
  const chosen = await createdAndStored(t, e2e(), claim('fast-data', 'fast'));
  t.is(getPointer(chosen.stored, '/spec/storageClassName'), 'fast');
});

test.serial('an excluded namespace is neither checked nor changed', async (t) => {
  const { result, stored } = await createdAndStored(
    t,
    e2e(),
    podWith('e2e-excluded', 'anything', EVIL),
  );
  t.is(result.stderr, '');
  t.is(getPointer(stored, '/spec/containers/0/image'), EVIL);
  // The API server's own default, not the gateway's Always.
  t.is(getPointer(stored, '/spec/containers/0/imagePullPolicy'), 'IfNotPresent');
});

// SECURITY.md 3.1: the webhooks skip namespaces by kubernetes.io/metadata.name, which the API
// server keeps equal to the namespace's name whatever a tenant sets.
test.serial('relabelling a namespace as kube-system does not escape the webhooks', async (t) => {
  const { kubectl } = e2e();
  const nameLabel = '/metadata/labels/kubernetes.io~1metadata.name';
  await kubectl.run([
    'label',
    'namespace',
    'e2e',
    'kubernetes.io/metadata.name=kube-system',
    '--overwrite',
  ]);
  t.is(getPointer(await kubectl.get('namespace', 'e2e', 'e2e'), nameLabel), 'e2e');
  await refusedOnCreate(
    t,
    e2e(),
    podWith('e2e', 'relabelled', EVIL),
    denied('web', EVIL, notTrusted('quay.io/evil/miner')),
  );
});

test.serial('break-glass allows an untrusted image, warns, and is audited', async (t) => {
  const violation = inContainer('fix', 'containers[0]', EVIL, notTrusted('quay.io/evil/miner'));
  const withReason = (name: string, reason: string) =>
    pod('e2e', name, {
      annotations: { [BREAK_GLASS]: reason },
      containers: [{ name: 'fix', image: EVIL }],
    });
  const { result, stored } = await createdAndStored(
    t,
    e2e(),
    withReason('break-glass', 'INC-4711 hotfix'),
  );
  t.is(result.stderr, `Warning: ${violation}\n`);
  t.is(getPointer(stored, '/spec/containers/0/image'), EVIL);

  const audit = await e2e().auditAnnotations('e2e', 'break-glass');
  t.is(audit['validate.imagegate.imagegate-system.svc/break-glass'], 'INC-4711 hotfix');
  t.is(audit['validate.imagegate.imagegate-system.svc/violations'], violation);

  // The annotation without a reason breaks nothing.
  await refusedOnCreate(t, e2e(), withReason('no-reason', ' '), WEBHOOK_DENIED + violation);
});

/** A pod whose kubelet would also pull `volumeImage` into the image volume "payload". */
function withImageVolume(namespace: string, name: string, volumeImage: string): JsonObject {
  const manifest = podWith(namespace, name, GOOD);
  const spec = getPointer(manifest, '/spec');
  if (spec === undefined || spec === null || typeof spec !== 'object') throw new Error('no spec');
  Object.assign(spec, {
    volumes: [{ name: 'payload', image: { reference: volumeImage, pullPolicy: 'IfNotPresent' } }],
  });
  return manifest;
}

test.serial('an image volume is checked and mutated like a container', async (t) => {
  await refusedOnCreate(
    t,
    e2e(),
    withImageVolume('e2e', 'volume-miner', EVIL),
    WEBHOOK_DENIED +
      `volume "payload" (volumes[0]) image "${EVIL}": ${notTrusted('quay.io/evil/miner')}`,
  );
  const { stored } = await createdAndStored(
    t,
    e2e(),
    withImageVolume('e2e-rewrite', 'volume-models', 'docker.io/acme/models:3'),
  );
  t.deepEqual(getPointer(stored, '/spec/volumes/0/image'), {
    reference: 'mirror.example.com/acme/models:3',
    pullPolicy: 'Always',
  });
});

// kube-apiserver keeps 4096 characters of warnings, then cuts each to 256 and drops the
// rest: what kubectl prints is what got through.
test.serial(
  'warn mode, 60 violating containers: every warning kubectl prints is whole',
  async (t) => {
    const containers = Array.from({ length: 60 }, (_, i) => ({ name: `web-${i}`, image: 'nginx' }));
    const { result } = await createdAndStored(t, e2e(), pod('e2e-warn', 'many', { containers }));
    const printed = result.stderr
      .trimEnd()
      .split('\n')
      .map((line) => line.replace(/^Warning: /, ''));
    const all = containers.flatMap((c, i) => [
      inContainer(c.name, `containers[${i}]`, 'nginx', notTrusted('docker.io/library/nginx')),
      inContainer(c.name, `containers[${i}]`, 'nginx', UNTAGGED),
    ]);
    const shown = printed.slice(0, -1);
    t.true(shown.length >= 20, `${shown.length} shown`);
    t.deepEqual(shown, all.slice(0, shown.length), 'the leading warnings, each whole');
    t.regex(
      printed.at(-1) ?? '',
      new RegExp(
        `^… and ${all.length - shown.length} more image policy warnings \\(${all.length} in all\\): ` +
          "every one is in the gateway's decision log \\(uid [0-9a-f-]{36}\\) " +
          'and the "<webhook>/violations" audit annotation$',
      ),
    );
    // The decision log does have every one.
    const logged = e2e()
      .gateway.messages('decision')
      .find((line) => line.endpoint === 'validate' && line.name === 'many');
    t.deepEqual(logged?.warnings, all);
  },
);

test.serial(
  'mirrors: proxy projects with a path, a ported registry; stored rewritten',
  async (t) => {
    const { stored } = await createdAndStored(
      t,
      e2e(),
      pod('e2e-mirrors', 'mirrored', {
        initContainers: [{ name: 'migrate', image: 'localhost:5000/tools/migrate:7' }],
        containers: [{ name: 'web', image: 'nginx:1.27.3' }],
      }),
    );
    t.deepEqual(
      [
        getPointer(stored, '/spec/initContainers/0/image'),
        getPointer(stored, '/spec/containers/0/image'),
      ],
      [
        'harbor.example.com/local/tools/migrate:7',
        'harbor.example.com/dockerhub-proxy/library/nginx:1.27.3',
      ],
    );
  },
);

test.serial('requireDigest, disallowedTags and exemptImages through the API server', async (t) => {
  const tagged = 'registry.example.com/app:1.0';
  await refusedOnCreate(
    t,
    e2e(),
    podWith('e2e-strict', 'tagged', tagged),
    denied('web', tagged, 'no digest; images here must be pinned by digest (requireDigest)'),
  );
  const dev = `registry.example.com/app:DEV`;
  const refused = await e2e().kubectl.create(podWith('e2e-strict', 'dev', dev));
  t.regex(refused.stderr, /tag "DEV" is not allowed \(disallowedTags\)/);
  await createdAndStored(
    t,
    e2e(),
    podWith('e2e-strict', 'pinned', `registry.example.com/app@${DIGEST}`),
  );
  // An exempt image is neither judged nor changed, and the exemption is in the audit log.
  const tool = 'registry.example.com/tools/netshoot:latest';
  const { stored } = await createdAndStored(t, e2e(), podWith('e2e-strict', 'debug', tool));
  t.is(getPointer(stored, '/spec/containers/0/image'), tool);
  const audit = await e2e().auditAnnotations('e2e-strict', 'debug');
  t.is(audit['validate.imagegate.imagegate-system.svc/exempt-images'], tool);
});

test.serial('a bundle swapped into the watched directory changes decisions, no restart', (t) =>
  bundleSwapScenario(t, e2e(), 'e2e', denied('web', 'registry.example.com/app:latest', LATEST)),
);

test.serial('gateway stopped: pods are refused, its own namespace is not locked out', async (t) => {
  const { kubectl, gateway } = e2e();
  await createdAndStored(t, e2e(), podWith('e2e', 'before-outage', GOOD));
  t.is(await gateway.stop(), 0);

  const url = `https://127.0.0.1:${gateway.port}/v1/mutate?timeout=5s`;
  const unreachable =
    'Internal error occurred: failed calling webhook "mutate.imagegate.imagegate-system.svc": ' +
    `failed to call webhook: Post "${url}": ` +
    `dial tcp 127.0.0.1:${gateway.port}: connect: connection refused`;
  const outage = podWith('e2e', 'during-outage', GOOD);
  await refusedOnCreate(t, e2e(), outage, unreachable, 'InternalError');
  const deployment = workload('Deployment', 'outage-deploy', GOOD);
  await refusedOnCreate(t, e2e(), deployment, unreachable, 'InternalError');

  // The webhooks never see imagegate-system or kube-system: the gateway can come back.
  for (const namespace of ['imagegate-system', 'kube-system']) {
    const restart = podWith(namespace, 'imagegate-restart', 'registry.example.com/imagegate:0.1.0');
    const { stored } = await createdAndStored(t, e2e(), restart);
    t.is(getPointer(stored, '/metadata/namespace'), namespace);
  }
  // Deletes are not reviewed: clean-up still works.
  const deleted = await kubectl.run(['delete', 'pod', 'before-outage', '-n=e2e', '--wait=false']);
  t.is(deleted.code, 0, deleted.stderr);
  t.is(await kubectl.get('pod', 'e2e', 'before-outage'), undefined);
});
