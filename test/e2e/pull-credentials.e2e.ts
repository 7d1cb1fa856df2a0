/**
 * The AlwaysPullImages story on a real kubelet. Tenant A pulls a private image with its
 * pull secret; tenant B, on the same node, names the same image without credentials.
 * Which guard stops B, and at what cost:
 *
 * - no guard (the kubelet's `imagePullCredentialsVerificationPolicy: NeverVerify`, no
 *   webhook): B runs A's private image — the hole;
 * - imagegate forcing `imagePullPolicy: Always`: B's pull is refused by the registry; every
 *   pod start costs A a manifest request, and a registry outage stops A's new pods too;
 * - the kubelet's own check (KEP-2535) with no webhook: the default
 *   `NeverVerifyPreloadedImages` and `AlwaysVerify` refuse B; A's pod with the secret the
 *   image was pulled with starts without asking the registry, also while it is down.
 *
 * Evidence: pod phases and waiting reasons from the kubelet, and manifest requests in the
 * private registry's access log. The tests run in order; each builds on the node's state.
 */
import test from 'ava';
import { dockerConfigJson, startRegistry, type TestRegistry } from '../helpers/registry.ts';
import type { Teardown } from '../helpers/teardown.ts';
import type { E2e } from './helpers/environment.ts';
import { manifestRequests, podReaches, pullRefused, pushRunnable, runPod } from './helpers/pods.ts';
import { useE2e } from './helpers/scenario.ts';

const A = 'tenant-a';
const B = 'tenant-b';
const REPO = 'private/app';
let registry: TestRegistry | undefined;
let image = '';
let teardown: Teardown | undefined;

const e2e = useE2e(
  test,
  {
    imagePolicyWebhook: false,
    // Start with the kubelet trusting whatever is on the node: the hole, as before 1.35.
    node: { kubeletConfig: 'imagePullCredentialsVerificationPolicy: NeverVerify' },
    before: async (_work, t) => {
      teardown = t;
      registry = await startRegistry(t, { auth: 'htpasswd' });
      const trusted = `trustedRegistries: ["${registry.host}"]`;
      return {
        namespaces: [A, B],
        namespaceOverrides: `  ${A}: {${trusted}}\n  ${B}: {${trusted}}\n`,
      };
    },
  },
  async (env) => {
    const node = env.node;
    if (registry === undefined || teardown === undefined || node === undefined) {
      throw new Error('no registry or node');
    }
    await node.trustRegistry(registry.host, registry.caFile);
    image = (await pushRunnable(teardown, registry, node.busybox, REPO, '1')).reference;
    await env.kubectl.must(
      ['create', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'private-pull', namespace: A },
        type: 'kubernetes.io/dockerconfigjson',
        data: { '.dockerconfigjson': Buffer.from(dockerConfigJson(registry)).toString('base64') },
      }),
    );
    // What exists before imagegate is installed is made without its webhooks.
    await env.unregisterWebhooks();
  },
);

const requests = () => manifestRequests(registry?.logs() ?? '', REPO);

/** Creates the pod; returns the manifest requests its start cost and how long it took. */
async function start(
  env: E2e,
  namespace: string,
  name: string,
  options: { secret?: boolean; pullPolicy?: 'IfNotPresent' | 'Always' } = {},
) {
  const before = requests();
  const began = Date.now();
  await env.kubectl.must(
    ['create', '-f', '-'],
    JSON.stringify(
      runPod(namespace, name, image, {
        pullPolicy: options.pullPolicy ?? 'IfNotPresent',
        ...(options.secret === true ? { pullSecret: 'private-pull' } : {}),
      }),
    ),
  );
  return { before, began, requests: () => requests() - before, ms: () => Date.now() - began };
}

test.serial("the hole: tenant B runs tenant A's private image without credentials", async (t) => {
  const env = e2e();
  const a = await start(env, A, 'a1', { secret: true });
  await podReaches(env.kubectl, A, 'a1');
  t.true(a.requests() >= 1, 'tenant A pulled from the registry');

  const b = await start(env, B, 'b1');
  const state = await podReaches(env.kubectl, B, 'b1');
  t.is(state.image, image);
  t.is(b.requests(), 0, 'tenant B never asked the registry');
  t.log(`A's first start: ${a.ms()} ms; B on the cached image: ${b.ms()} ms`);
});

test.serial(
  'imagegate forces Always: B is refused by the registry, A pulls every time',
  async (t) => {
    const env = e2e();
    await env.registerWebhooks();
    const b = await start(env, B, 'b2');
    const stored = await env.kubectl.get('pod', B, 'b2');
    t.is(JSON.stringify(stored?.spec).includes('"imagePullPolicy":"Always"'), true);
    const refused = await pullRefused(env.kubectl, B, 'b2');
    t.regex(
      refused.waitingMessage,
      /401 Unauthorized|authorization failed|no basic auth credentials/,
    );
    t.true(b.requests() >= 1, 'the refusal came from the registry');

    const a = await start(env, A, 'a2', { secret: true });
    await podReaches(env.kubectl, A, 'a2');
    t.true(a.requests() >= 1, 'tenant A asked the registry again');
    t.log(
      `Always: A's pod start with the image cached: ${a.ms()} ms, ${a.requests()} manifest requests`,
    );
  },
);

test.serial("registry outage under Always: even tenant A's new pod cannot start", async (t) => {
  const env = e2e();
  await registry?.stop();
  try {
    await start(env, A, 'a3', { secret: true });
    await pullRefused(env.kubectl, A, 'a3');
    t.pass();
  } finally {
    await registry?.start();
  }
});

for (const policy of ['NeverVerifyPreloadedImages', 'AlwaysVerify'] as const) {
  test.serial(
    `the kubelet's ${policy} without a webhook: B refused, A starts without a pull`,
    async (t) => {
      const env = e2e();
      // The first of the two removes imagegate; the second finds it gone.
      if (policy === 'NeverVerifyPreloadedImages') await env.unregisterWebhooks();
      await env.node?.restartKubelet(`imagePullCredentialsVerificationPolicy: ${policy}`);
      const suffix = policy === 'AlwaysVerify' ? 'v' : 'p';
      const b = await start(env, B, `b-${suffix}`);
      const stored = await env.kubectl.get('pod', B, `b-${suffix}`);
      t.true(
        JSON.stringify(stored?.spec).includes('"imagePullPolicy":"IfNotPresent"'),
        'no webhook',
      );
      await pullRefused(env.kubectl, B, `b-${suffix}`);
      t.true(b.requests() >= 1, 'the kubelet asked the registry with no credentials');

      const a = await start(env, A, `a-${suffix}`, { secret: true });
      await podReaches(env.kubectl, A, `a-${suffix}`);
      t.is(a.requests(), 0, 'the secret the image was pulled with is enough: no pull');
      t.log(
        `${policy}: A's pod start with the image cached: ${a.ms()} ms, ${a.requests()} manifest requests`,
      );

      await registry?.stop();
      try {
        await start(env, A, `a-${suffix}-outage`, { secret: true });
        await podReaches(env.kubectl, A, `a-${suffix}-outage`);
        t.pass('A starts during a registry outage');
      } finally {
        await registry?.start();
      }
    },
  );
}
