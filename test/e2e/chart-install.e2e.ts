/**
 * The gateway as the pods its Helm chart describes, on the bed's real node: the image
 * built without Docker (deploy/build-image.sh) and pushed to the bed's registry with crane,
 * `helm install` of deploy/helm/imagegate with certificates from `imagegate certs`, the API
 * server reaching the webhooks through the Service (endpoint routing: no kube-proxy), a
 * rollout restart of both replicas under the PodDisruptionBudget that loses no admission,
 * and `helm upgrade`s that switch the gateways from the ConfigMap bundle to an OCI bundle
 * (the distribution registry on the node's address, the bundle pushed by oras) and back,
 * again losing no admission.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { getPointer, isRecord, type JsonObject } from '../../src/shared/json.ts';
import { imagegate, ROOT } from '../helpers/cli.ts';
import { orasPushBundle, variantBundle } from '../helpers/fleet.ts';
import { startRegistry } from '../helpers/registry.ts';
import { Teardowns } from '../helpers/teardown.ts';
import type { Kubectl } from './helpers/kubectl.ts';
import { podWith } from './helpers/kubectl.ts';
import { eventually } from './helpers/poll.ts';
import { errorCreating, useE2e, WEBHOOK_DENIED } from './helpers/scenario.ts';

const run = promisify(execFile);
const NS = 'imagegate-system';
const HELM = join(ROOT, '.tools', 'bin', 'helm');
let pushed = { repository: '', digest: '' };

const e2e = useE2e(test, { imagePolicyWebhook: false, node: {} }, async (env) => {
  const node = env.node;
  if (node === undefined) throw new Error('no node');
  // The image, assembled from the cached layers and dist/ and pushed to the bed's registry.
  const crane = JSON.parse(await readFile(join(node.dir, '..', 'node.json'), 'utf8')) as unknown;
  const { stdout } = await run(
    'bash',
    [join(ROOT, 'deploy', 'build-image.sh'), `${node.registry}/imagegate:e2e`],
    {
      env: {
        ...process.env,
        CRANE: isRecord(crane) && typeof crane.crane === 'string' ? crane.crane : 'crane',
        CRANE_FLAGS: '--insecure',
      },
      maxBuffer: 8 << 20,
    },
  );
  // crane prints host:port/imagegate:e2e@sha256:…
  const [tagged = '', digest = ''] = stdout.trim().split('@');
  pushed = { repository: tagged.replace(/:e2e$/, ''), digest };

  const certs = join(env.work, 'chart-certs');
  const made = await imagegate(['certs', `--out=${certs}`]);
  if (made.code !== 0) throw new Error(`imagegate certs: ${made.stderr}`);
  // The loopback gateway's webhooks go; the chart's take their place.
  await env.unregisterWebhooks();
  // Too long for one argument: through a file.
  const bundle = join(env.work, 'bundle.base64');
  await writeFile(
    bundle,
    (await readFile(join(ROOT, 'bundles', 'imagegate.tar.gz'))).toString('base64'),
  );
  await run(
    HELM,
    [
      'install',
      'imagegate',
      join(ROOT, 'deploy', 'helm', 'imagegate'),
      '-n',
      NS,
      `--kubeconfig=${env.kubeconfig}`,
      '--set=namespace.create=false',
      `--set=image.repository=${pushed.repository}`,
      '--set=image.tag=e2e',
      `--set=image.digest=${pushed.digest}`,
      `--set-file=tls.cert=${join(certs, 'tls.crt')}`,
      `--set-file=tls.key=${join(certs, 'tls.key')}`,
      `--set-file=tls.ca=${join(certs, 'ca.crt')}`,
      '--set=bundle.create=true',
      `--set-file=bundle.archiveBase64=${bundle}`,
      '--set=config.enforcement=deny',
      `--set=config.trustedRegistries={${node.registry}}`,
      '--wait',
      '--timeout=120s',
    ],
    { maxBuffer: 8 << 20 },
  );
});

async function gatewayPods(kubectl: Kubectl): Promise<JsonObject[]> {
  const out = await kubectl.must(['get', 'pods', '-n', NS, '-o', 'json']);
  const list: unknown = JSON.parse(out.stdout);
  return isRecord(list) && Array.isArray(list.items) ? list.items.filter(isRecord) : [];
}

const ready = (pod: JsonObject) =>
  getPointer(pod, '/metadata/deletionTimestamp') === undefined &&
  getPointer(pod, '/status/containerStatuses/0/ready') === true;

test.serial(
  'helm install: the pods run the pushed image and the API server reaches them',
  async (t) => {
    const { kubectl } = e2e();
    const pods = (await gatewayPods(kubectl)).filter(ready);
    t.is(pods.length, 2);
    for (const pod of pods) {
      t.is(
        getPointer(pod, '/spec/containers/0/image'),
        `${pushed.repository}:e2e@${pushed.digest}`,
      );
      t.is(
        getPointer(pod, '/status/containerStatuses/0/imageID'),
        `${pushed.repository}@${pushed.digest}`,
      );
    }
    const stored = await kubectl.must([
      'get',
      'validatingwebhookconfiguration',
      'imagegate',
      '-o',
      'json',
    ]);
    const validating: unknown = JSON.parse(stored.stdout);
    t.deepEqual(getPointer(validating, '/webhooks/0/clientConfig/service'), {
      name: 'imagegate',
      namespace: NS,
      path: '/v1/validate',
      port: 443,
    });
    // Denied by the chart's gateway, through the Service; admitted and mutated likewise.
    const refused = await kubectl.create(podWith('e2e', 'untrusted', 'quay.io/evil/miner:1'));
    t.true(refused.stderr.startsWith(errorCreating('Forbidden') + WEBHOOK_DENIED), refused.stderr);
    const admitted = await kubectl.create(
      podWith('e2e', 'trusted', e2e().node?.busybox ?? ''),
      '--dry-run=server',
      '-o=jsonpath={.spec.containers[0].imagePullPolicy}',
    );
    t.is(admitted.stdout, 'Always', admitted.stderr);
  },
);

test.serial('a rollout restart of both replicas under the PDB loses no admission', async (t) => {
  const { kubectl } = e2e();
  const before = new Set((await gatewayPods(kubectl)).map((p) => getPointer(p, '/metadata/name')));
  let attempts = 0;
  const failures: string[] = [];
  let done = false;
  // Reviews all through the restart: dry-run pod creations, one after the other.
  const traffic = (async () => {
    while (!done) {
      attempts += 1;
      const r = await kubectl.create(
        podWith('e2e', `probe-${attempts}`, 'quay.io/evil/miner:1'),
        '--dry-run=server',
      );
      if (!r.stderr.includes(WEBHOOK_DENIED)) failures.push(r.stderr.trim());
    }
  })();
  await kubectl.must(['rollout', 'restart', '-n', NS, 'deployment/imagegate']);
  await kubectl.must(['rollout', 'status', '-n', NS, 'deployment/imagegate', '--timeout=240s']);
  // The old pods' endpoints go after their preStop pause: keep reviewing until they are gone.
  await eventually(
    'the old pods to be gone',
    async () =>
      (await gatewayPods(kubectl)).every((p) => !before.has(getPointer(p, '/metadata/name'))),
    { timeoutMs: 90_000, everyMs: 500 },
  );
  done = true;
  await traffic;
  const after = (await gatewayPods(kubectl)).filter(ready);
  t.is(after.length, 2);
  t.true(
    after.every((p) => !before.has(getPointer(p, '/metadata/name'))),
    'both replaced',
  );
  t.deepEqual(failures, [], `${failures.length} of ${attempts} reviews failed`);
  t.true(attempts >= 20, `${attempts} reviews during the restart`);
  t.log(`${attempts} reviews during the rollout restart, ${failures.length} failed`);
});

/**
 * Reviews one after the other (dry-run pod creations of an untrusted image) while `change`
 * runs and until the pods it replaced are gone: every one must be denied by the gateway.
 */
async function reviewedThrough(
  kubectl: Kubectl,
  change: () => Promise<void>,
): Promise<{ attempts: number; failures: string[] }> {
  const before = new Set((await gatewayPods(kubectl)).map((p) => getPointer(p, '/metadata/name')));
  let attempts = 0;
  const failures: string[] = [];
  let done = false;
  const traffic = (async () => {
    while (!done) {
      attempts += 1;
      const r = await kubectl.create(
        podWith('e2e', `switch-${attempts}`, 'quay.io/evil/miner:1'),
        '--dry-run=server',
      );
      if (!r.stderr.includes(WEBHOOK_DENIED)) failures.push(r.stderr.trim());
    }
  })();
  try {
    await change();
    await kubectl.must(['rollout', 'status', '-n', NS, 'deployment/imagegate', '--timeout=240s']);
    await eventually(
      'the old pods to be gone',
      async () =>
        (await gatewayPods(kubectl)).every((p) => !before.has(getPointer(p, '/metadata/name'))),
      { timeoutMs: 90_000, everyMs: 500 },
    );
  } finally {
    done = true;
    await traffic;
  }
  return { attempts, failures };
}

test.serial(
  'helm upgrade: from the ConfigMap bundle to an OCI bundle and back, no failed review',
  async (t) => {
    const { kubectl, kubeconfig } = e2e();
    const node = e2e().node;
    if (node === undefined) throw new Error('no node');
    const teardowns = new Teardowns();
    t.teardown(() => teardowns.run());
    // A registry the pods reach: on the node's address, its own CA.
    const registry = await startRegistry(teardowns, { auth: 'none', address: '10.244.0.1' });
    // The OCI revision refuses one more tag than the ConfigMap's: which one judges shows.
    const digest = await orasPushBundle(
      teardowns,
      registry,
      'policy/imagegate:1',
      await variantBundle('fleet-oci', node.registry, { disallowedTags: ['oci-only'] }),
    );
    t.regex(digest, /^sha256:/);
    await kubectl.must(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'imagegate-bundle-registry-ca', namespace: NS },
        data: { 'ca.crt': registry.ca },
      }),
    );
    const marked = podWith('e2e', 'marked', `${node.registry}/busybox:oci-only`);
    const judged = async () => {
      const r = await kubectl.create(marked, '--dry-run=server');
      return r.code === 0
        ? 'allowed'
        : r.stderr.includes('tag "oci-only" is not allowed')
          ? 'denied'
          : r.stderr;
    };
    t.is(await judged(), 'allowed', 'the ConfigMap bundle allows the tag');

    const helm = (...set: string[]) =>
      run(
        HELM,
        [
          'upgrade',
          'imagegate',
          join(ROOT, 'deploy', 'helm', 'imagegate'),
          '-n',
          NS,
          `--kubeconfig=${kubeconfig}`,
          '--reuse-values',
          ...set.map((value) => `--set=${value}`),
        ],
        { maxBuffer: 8 << 20 },
      ).then(() => undefined);

    const toOci = await reviewedThrough(kubectl, () =>
      helm(
        'bundle.source=oci',
        `bundle.oci.reference=oci://${registry.host}/policy/imagegate:1`,
        'registryFacts.caConfigMap=imagegate-bundle-registry-ca',
        'bundle.pollIntervalMs=5000',
      ),
    );
    t.deepEqual(toOci.failures, [], `${toOci.failures.length} of ${toOci.attempts} reviews failed`);
    t.is(await judged(), 'denied', 'the OCI bundle judges now');
    t.regex(
      registry.logs(),
      /GET \/v2\/policy\/imagegate\/blobs\/sha256:/,
      'fetched from the registry',
    );

    const back = await reviewedThrough(kubectl, () => helm('bundle.source=configMap'));
    t.deepEqual(back.failures, [], `${back.failures.length} of ${back.attempts} reviews failed`);
    t.is(await judged(), 'allowed', 'the ConfigMap bundle judges again');
    t.log(
      `switch to OCI: ${toOci.attempts} reviews, 0 failed; back to the ConfigMap: ${back.attempts} reviews, 0 failed`,
    );
  },
);
