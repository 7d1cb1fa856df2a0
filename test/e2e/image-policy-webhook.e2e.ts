/**
 * ImagePolicyWebhook enabled with the AdmissionConfiguration and kubeconfig `imagegate
 * certs` wrote (client certificate, defaultAllow false, no cache), next to the admission
 * webhooks from deploy/base: the full control-plane setup, driven only through kubectl.
 * The API server runs ImagePolicyWebhook before the validating webhooks, so pod denials
 * are its own; in imagegate-system, which the webhooks never see, it is alone.
 */
import test from 'ava';
import { getPointer, type JsonObject } from '../../src/shared/json.ts';
import { pod, podWith } from './helpers/kubectl.ts';
import {
  BREAK_GLASS,
  bundleSwapScenario,
  createdAndStored,
  DIGEST,
  IMAGE_POLICY_DENIED,
  inImage,
  LATEST,
  notTrusted,
  refusedOnCreate,
  UNTAGGED,
  useE2e,
  WEBHOOK_DENIED,
} from './helpers/scenario.ts';

const e2e = useE2e(test, { imagePolicyWebhook: true });

const EVIL = 'quay.io/evil/miner:1.0';
const GOOD = 'registry.example.com/app:1.0';
const EVIL_UNTRUSTED = inImage(EVIL, notTrusted('quay.io/evil/miner'));

/** ImagePolicyWebhook's refusal of pod `name`, as kubectl prints it after the prefix. */
const forbidden = (name: string, reasons: string) =>
  `pods "${name}" is forbidden: ${IMAGE_POLICY_DENIED}${reasons}`;

test.serial('an untrusted registry is refused by ImagePolicyWebhook, naming it', async (t) => {
  await refusedOnCreate(
    t,
    e2e(),
    podWith('e2e', 'miner', EVIL),
    forbidden('miner', EVIL_UNTRUSTED),
  );
  // The admission webhooks never see imagegate-system: this refusal is ImagePolicyWebhook's.
  await refusedOnCreate(
    t,
    e2e(),
    podWith('imagegate-system', 'miner', EVIL),
    forbidden('miner', EVIL_UNTRUSTED),
  );
});

test.serial(':latest and untagged images are refused; a digest-pinned one is stored', async (t) => {
  const latest = 'registry.example.com/app:latest';
  await refusedOnCreate(
    t,
    e2e(),
    podWith('imagegate-system', 'latest', latest),
    forbidden('latest', inImage(latest, LATEST)),
  );
  const untagged = 'registry.example.com/app';
  await refusedOnCreate(
    t,
    e2e(),
    podWith('imagegate-system', 'untagged', untagged),
    forbidden('untagged', inImage(untagged, UNTAGGED)),
  );
  const pinned = `registry.example.com/app@${DIGEST}`;
  const { stored } = await createdAndStored(
    t,
    e2e(),
    podWith('imagegate-system', 'pinned', pinned),
  );
  t.is(getPointer(stored, '/spec/containers/0/image'), pinned);
});

test.serial('the ImageReview sees the images the mutating webhook rewrote', async (t) => {
  // docker.io is not trusted, its rewrite to mirror.example.com is, and mutation comes first.
  const manifest = podWith('e2e-rewrite', 'rewritten', 'nginx:1.27.3');
  const { stored } = await createdAndStored(t, e2e(), manifest);
  t.is(getPointer(stored, '/spec/containers/0/image'), 'mirror.example.com/library/nginx:1.27.3');
});

test.serial('an ephemeral container is checked by ImagePolicyWebhook', async (t) => {
  const { kubectl } = e2e();
  await createdAndStored(t, e2e(), podWith('imagegate-system', 'target', GOOD));
  const debug = (container: string, image: string) =>
    kubectl.run([
      'debug',
      'target',
      '-n=imagegate-system',
      '--profile=general',
      `--container=${container}`,
      `--image=${image}`,
    ]);
  const refused = await debug('probe', EVIL);
  t.is(refused.code, 1);
  t.is(
    refused.stderr.trim(),
    `Error from server (Forbidden): ${forbidden('target', EVIL_UNTRUSTED)}`,
  );
  const allowed = await debug('shell', 'registry.example.com/debug:1.0');
  t.is(allowed.code, 0, allowed.stderr);
  const stored = await kubectl.get('pod', 'imagegate-system', 'target');
  t.deepEqual(
    [
      getPointer(stored, '/spec/ephemeralContainers/0/name'),
      getPointer(stored, '/spec/ephemeralContainers/1'),
    ],
    ['shell', undefined],
  );
});

test.serial('an excluded namespace is allowed', async (t) => {
  const image = 'quay.io/evil/miner:latest';
  const { stored } = await createdAndStored(t, e2e(), podWith('e2e-excluded', 'anything', image));
  t.is(getPointer(stored, '/spec/containers/0/image'), image);
});

test.serial('break-glass is allowed and audited by ImagePolicyWebhook', async (t) => {
  const manifest = pod('imagegate-system', 'break-glass', {
    annotations: { [BREAK_GLASS]: 'INC-4711 hotfix' },
    containers: [{ name: 'fix', image: EVIL }],
  });
  const { result } = await createdAndStored(t, e2e(), manifest);
  // An ImageReview answer has no warnings: the audit log is where break-glass shows.
  t.is(result.stderr, '');
  const audit = await e2e().auditAnnotations('imagegate-system', 'break-glass');
  t.is(audit['imagepolicywebhook.image-policy.k8s.io/break-glass'], 'INC-4711 hotfix');
  t.is(audit['imagepolicywebhook.image-policy.k8s.io/violations'], EVIL_UNTRUSTED);
});

// kube-apiserver's ImagePolicyWebhook (plugin/pkg/admission/imagepolicy) reviews
// containers and init containers (ephemeral ones on their subresource), never image
// volumes: those are the admission webhooks' to catch.
test.serial(
  'ImagePolicyWebhook sends no image volumes; the validating webhook refuses them',
  async (t) => {
    const withVolume = (namespace: string, name: string): JsonObject => ({
      ...podWith(namespace, name, GOOD),
      spec: {
        containers: [{ name: 'web', image: GOOD }],
        volumes: [{ name: 'payload', image: { reference: EVIL, pullPolicy: 'Always' } }],
      },
    });
    const reviews = () =>
      e2e()
        .gateway.messages('decision')
        .filter((line) => line.endpoint === 'imagereview' && line.namespace === 'imagegate-system');
    const before = reviews().length;
    // imagegate-system: ImagePolicyWebhook alone, and it lets the image volume through.
    await createdAndStored(t, e2e(), withVolume('imagegate-system', 'volume-only-ipw'));
    const sent = reviews().slice(before);
    t.deepEqual(
      sent.map((line) => line.images),
      [[GOOD]],
      'the ImageReview named the container only',
    );
    await refusedOnCreate(
      t,
      e2e(),
      withVolume('e2e', 'volume-both'),
      `${WEBHOOK_DENIED}volume "payload" (volumes[0]) image "${EVIL}": ${notTrusted('quay.io/evil/miner')}`,
    );
  },
);

test.serial('a bundle swapped into the watched directory changes decisions, no restart', (t) =>
  bundleSwapScenario(
    t,
    e2e(),
    'imagegate-system',
    IMAGE_POLICY_DENIED + inImage('registry.example.com/app:latest', LATEST),
  ),
);

test.serial('gateway stopped: pods are refused everywhere, its namespace too', async (t) => {
  const { gateway } = e2e();
  t.is(await gateway.stop(), 0);
  const origin = `https://127.0.0.1:${gateway.port}`;
  const refused = `dial tcp 127.0.0.1:${gateway.port}: connect: connection refused`;

  // Elsewhere the mutating webhook, called first, fails closed.
  await refusedOnCreate(
    t,
    e2e(),
    podWith('e2e', 'during-outage', GOOD),
    'Internal error occurred: failed calling webhook "mutate.imagegate.imagegate-system.svc": ' +
      `failed to call webhook: Post "${origin}/v1/mutate?timeout=5s": ${refused}`,
    'InternalError',
  );
  // ImagePolicyWebhook (defaultAllow: false) exempts no namespace: the gateway's own and
  // kube-system are locked out too, as the README warns.
  for (const namespace of ['imagegate-system', 'kube-system']) {
    await refusedOnCreate(
      t,
      e2e(),
      podWith(namespace, 'imagegate-restart', 'registry.example.com/imagegate:0.1.0'),
      `pods "imagegate-restart" is forbidden: ` +
        `Post "${origin}/v1/imagereview?timeout=30s": ${refused}`,
    );
  }
});
