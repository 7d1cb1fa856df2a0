/**
 * KEP-5793 on a real kube-apiserver 1.37: started with the AdmissionConfiguration and the
 * static webhook manifests `imagegate certs` writes (ManifestBasedAdmissionControlConfig is
 * beta and on by default there), it sends the gateway every pod before a single webhook
 * object exists, and goes on after the in-cluster configurations are deleted. The static
 * configurations are no API objects, and their names are reserved. On 1.35 the feature is
 * absent (its API server refuses the staticManifestsDir field): this file runs on 1.37+.
 */
import test from 'ava';
import { getPointer } from '../../src/shared/json.ts';
import { podWith } from './helpers/kubectl.ts';
import {
  createdAndStored,
  inContainer,
  notTrusted,
  refusedOnCreate,
  useE2e,
} from './helpers/scenario.ts';

const version = process.env.IMAGEGATE_K8S_VERSION || '1.37';
const [major = 0, minor = 0] = version.split('.').map(Number);
const supported = major > 1 || (major === 1 && minor >= 37);

const STATIC_DENIED = 'admission webhook "validate.imagegate.static.k8s.io" denied the request: ';
const EVIL = 'quay.io/evil/miner:1.0';
const denied = inContainer('web', 'containers[0]', EVIL, notTrusted('quay.io/evil/miner'));

if (!supported) {
  test(`static admission manifests: absent on Kubernetes ${version}`, (t) => {
    t.log('KEP-5793 needs 1.36 with its feature gate, or 1.37+; this control plane has none');
    t.pass();
  });
} else {
  const e2e = useE2e(test, { imagePolicyWebhook: false, staticWebhooks: true });

  test.serial('a pod is judged before any webhook configuration object exists', async (t) => {
    const objects = await e2e().kubectl.must([
      'get',
      'validatingwebhookconfigurations,mutatingwebhookconfigurations',
      '-o',
      'name',
    ]);
    t.is(objects.stdout.trim(), '', 'no webhook objects in the API');
    await refusedOnCreate(t, e2e(), podWith('e2e', 'miner', EVIL), STATIC_DENIED + denied);
    const { stored } = await createdAndStored(
      t,
      e2e(),
      podWith('e2e', 'web', 'registry.example.com/app:1.0'),
    );
    t.is(getPointer(stored, '/spec/containers/0/imagePullPolicy'), 'Always', 'mutated statically');
  });

  test.serial(
    'static configurations are no API objects, and their names are reserved',
    async (t) => {
      const get = await e2e().kubectl.run([
        'get',
        'validatingwebhookconfiguration',
        'imagegate.static.k8s.io',
      ]);
      t.not(get.code, 0);
      t.regex(get.stderr, /NotFound/);
      const impostor = {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingWebhookConfiguration',
        metadata: { name: 'impostor.static.k8s.io' },
        webhooks: [],
      };
      const created = await e2e().kubectl.create(impostor);
      t.not(created.code, 0, 'the .static.k8s.io suffix is reserved for manifests');
      t.regex(created.stderr, /static\.k8s\.io/);
    },
  );

  test.serial('still judged after the in-cluster webhook configurations are deleted', async (t) => {
    await e2e().registerWebhooks();
    await e2e().unregisterWebhooks();
    const objects = await e2e().kubectl.must([
      'get',
      'validatingwebhookconfigurations,mutatingwebhookconfigurations',
      '-o',
      'name',
    ]);
    t.is(objects.stdout.trim(), '');
    await refusedOnCreate(t, e2e(), podWith('e2e', 'miner-2', EVIL), STATIC_DENIED + denied);
    // The gateway's own decision log has it.
    t.true(
      e2e()
        .gateway.messages('decision')
        .some((line) => line.name === 'miner-2'),
    );
  });
}
