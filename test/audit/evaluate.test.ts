/**
 * One stored object judged as its creation would be now, by the committed bundle: what
 * fails, what passes, what is not audited at all.
 */
import test from 'ava';
import { auditObject } from '../../src/audit/evaluate.ts';
import { PolicyEngine } from '../../src/policy/engine.ts';
import type { JsonObject } from '../../src/shared/json.ts';
import { committedBundle } from '../helpers/bundles.ts';

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;

async function engine(config: JsonObject = {}) {
  return PolicyEngine.create(await committedBundle(), {
    trustedRegistries: ['registry.example.com'],
    excludeNamespaces: ['kube-system'],
    ...config,
  });
}

function pod(name: string, images: string[], extra: JsonObject = {}): JsonObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: 'shop',
      uid: `uid-${name}`,
      ...((extra.metadata as JsonObject) ?? {}),
    },
    spec: {
      containers: images.map((image, i) => ({ name: `c${i}`, image, imagePullPolicy: 'Always' })),
    },
    status: extra.status ?? { phase: 'Running' },
  };
}

const POD = { apiVersion: 'v1', kind: 'Pod' };

test('a running pod from an untrusted registry fails, naming the rule, image and message', async (t) => {
  const audited = await auditObject(await engine(), pod('api', ['quay.io/evil/miner:1']), POD);
  t.like(audited, { uid: 'uid-api', kind: 'Pod', namespace: 'shop', name: 'api' });
  t.deepEqual(audited?.results, [
    {
      rule: 'trusted-registry',
      result: 'fail',
      message:
        'container "c0" (containers[0]) image "quay.io/evil/miner:1": registry quay.io/evil/miner is not trusted (trusted: registry.example.com)',
      enforcement: 'deny',
      image: 'quay.io/evil/miner:1',
      container: 'c0',
      path: '/spec/containers/0',
    },
  ]);
});

test('in a warn namespace the violation still fails: it is what deny would refuse', async (t) => {
  const audited = await auditObject(
    await engine({ namespaces: { shop: { enforcement: 'warn' } } }),
    pod('api', ['quay.io/evil/miner:1']),
    POD,
  );
  t.deepEqual(
    audited?.results.map((r) => [r.rule, r.result, r.enforcement]),
    [['trusted-registry', 'fail', 'warn']],
  );
});

test('a compliant pod passes once; an exempt image is a skip', async (t) => {
  const good = await auditObject(
    await engine(),
    pod('ok', [`registry.example.com/app:1@${DIGEST}`]),
    POD,
  );
  t.deepEqual(good?.results, [
    { rule: 'images', result: 'pass', message: 'every image passes the policy' },
  ]);
  const exempt = await auditObject(
    await engine({ exemptImages: ['quay.io/tools/*'] }),
    pod('tools', ['quay.io/tools/debug:1']),
    POD,
  );
  t.deepEqual(
    exempt?.results.map((r) => [r.rule, r.result]),
    [
      ['exempt-images', 'skip'],
      ['images', 'pass'],
    ],
  );
});

test('not audited: excluded namespaces, finished pods, templates a controller owns', async (t) => {
  const e = await engine();
  const excluded = pod('sys', ['quay.io/evil/miner:1'], { metadata: { namespace: 'kube-system' } });
  t.is(await auditObject(e, excluded, POD), undefined);
  const done = pod('job-pod', ['quay.io/evil/miner:1'], { status: { phase: 'Succeeded' } });
  t.is(await auditObject(e, done, POD), undefined);
  const replicaSet: JsonObject = {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: {
      name: 'web-1',
      namespace: 'shop',
      uid: 'rs',
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'd', controller: true },
      ],
    },
    spec: { template: { spec: { containers: [{ name: 'web', image: 'quay.io/evil/miner:1' }] } } },
  };
  t.is(await auditObject(e, replicaSet, { apiVersion: 'apps/v1', kind: 'ReplicaSet' }), undefined);
  const deployment = {
    ...replicaSet,
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'shop', uid: 'd' },
  };
  const judged = await auditObject(e, deployment, { apiVersion: 'apps/v1', kind: 'Deployment' });
  t.true(judged?.results.some((r) => r.rule === 'trusted-registry' && r.result === 'fail'));
});

test('break-glass: the waived violation is a warning, recorded as such', async (t) => {
  const audited = await auditObject(
    await engine({ breakGlass: true }),
    pod('glass', ['quay.io/evil/miner:1'], {
      metadata: { annotations: { 'break-glass.image-policy.k8s.io/reason': 'INC-42' } },
    }),
    POD,
  );
  t.deepEqual(
    audited?.results.map((r) => [r.result, r.enforcement]),
    [['warn', 'break-glass']],
  );
});
