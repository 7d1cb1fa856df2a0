/**
 * POST /v1/mutate over the real HTTPS server, for every AdmissionReview fixture: the patch
 * is base64 JSONPatch that applies (validated by fast-json-patch) to the reviewed object and
 * yields exactly what SPEC rules 3–6 ask for; no change means no patch fields at all.
 */
import test, { type ExecutionContext } from 'ava';
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import { getPointer, isRecord, type JsonObject } from '../../src/shared/json.ts';
import { fixtureNames, loadJsonObject, sentString } from '../helpers/fixtures.ts';
import {
  admissionAnswer,
  gatewaysByConfig,
  list,
  record,
  type TestGateway,
} from '../helpers/gateway.ts';

const { applyPatch } = fastJsonPatch;

const POD_SPEC: Record<string, string> = {
  Pod: '/spec',
  Deployment: '/spec/template/spec',
  ReplicaSet: '/spec/template/spec',
  StatefulSet: '/spec/template/spec',
  DaemonSet: '/spec/template/spec',
  Job: '/spec/template/spec',
  ReplicationController: '/spec/template/spec',
  CronJob: '/spec/jobTemplate/spec/template/spec',
};

const LISTS = ['containers', 'initContainers', 'ephemeralContainers'];

const WORKER_DIGEST = 'sha256:e63f7cd23fd0a746efbe0bfd303bad00b8bfc9f0a89aaef1de2d146e3bd96204';

/** `rewriteRegistry: mirror.example.com` (replace mode) for every image in the fixtures. */
const REWRITTEN: Record<string, string> = {
  'registry.example.com/team/api:2.3.1': 'mirror.example.com/team/api:2.3.1',
  nginx: 'mirror.example.com/library/nginx',
  'nginx:1.27': 'mirror.example.com/library/nginx:1.27',
  'localhost:5000/tools/migrate:7': 'mirror.example.com/tools/migrate:7',
  'busybox:latest': 'mirror.example.com/library/busybox:latest',
  'quay.io/prometheus/node-exporter:v1.8.2': 'mirror.example.com/prometheus/node-exporter:v1.8.2',
  [`ghcr.io/acme/worker@${WORKER_DIGEST}`]: `mirror.example.com/acme/worker@${WORKER_DIGEST}`,
  'registry.example.com/shop/inference:2.1.0': 'mirror.example.com/shop/inference:2.1.0',
  'registry.example.com/shop/models:2026-11': 'mirror.example.com/shop/models:2026-11',
  'quay.io/evil/miner:latest': 'mirror.example.com/evil/miner:latest',
  'registry.example.com/shop/web:1.4.2': 'mirror.example.com/shop/web:1.4.2',
  'registry.example.com/shop/backup:3.0.1': 'mirror.example.com/shop/backup:3.0.1',
  'registry.example.com/shop/migrate:7': 'mirror.example.com/shop/migrate:7',
};

const FULL_CONFIG = `
rewriteRegistry: mirror.example.com
imagePullSecret: regcred
defaultStorageClass: standard
`;

interface Mutations {
  readonly rewrite: boolean;
  readonly secret?: string;
  readonly storageClass?: string;
}

const DEFAULTS: Mutations = { rewrite: false };
const FULL: Mutations = { rewrite: true, secret: 'regcred', storageClass: 'standard' };

/** One gateway per configuration for the whole file (starting one costs a bundle load). */
const gateway = gatewaysByConfig();

function containersOf(spec: JsonObject): JsonObject[] {
  return LISTS.flatMap((name) =>
    spec[name] === undefined ? [] : list(spec[name], name).map((c) => record(c, name)),
  );
}

/** Every container and image volume of a pod spec, as [holder, image field, policy field]. */
function pulledImages(spec: JsonObject): [JsonObject, string, string][] {
  const containers = containersOf(spec).map((c): [JsonObject, string, string] => [
    c,
    'image',
    'imagePullPolicy',
  ]);
  const volumes = (spec.volumes === undefined ? [] : list(spec.volumes, 'volumes'))
    .map((v) => record(v, 'volume').image)
    .filter(isRecord)
    .map((source): [JsonObject, string, string] => [source, 'reference', 'pullPolicy']);
  return [...containers, ...volumes];
}

/**
 * The object as the API server should persist it, computed from SPEC, not from the policy:
 * new images (CREATE, or an UPDATE image the old pod spec did not pull) pull Always and
 * are rewritten, pod specs get the pull secret on CREATE (a template also on an UPDATE
 * that brings a new image), PVCs without a class get the default one. Living among
 * controllers: a template its controller owns is left alone, and an UPDATE gets nothing
 * the API server refuses (on a Pod only its new container images change, on the
 * ephemeralcontainers subresource only the new ephemeral containers; a Job's template
 * never).
 */
function expectedObject(request: JsonObject, mutations: Mutations): unknown {
  const object = structuredClone(request.object);
  const operation = request.operation;
  if (operation !== 'CREATE' && operation !== 'UPDATE') return object;
  const kind = String(record(request.kind, 'kind').kind);
  if (kind === 'PersistentVolumeClaim') {
    const spec = record(getPointer(object, '/spec'), 'pvc spec');
    if (operation === 'CREATE' && mutations.storageClass !== undefined) {
      if (!Object.hasOwn(spec, 'storageClassName')) spec.storageClassName = mutations.storageClass;
    }
    return object;
  }
  const specPath = POD_SPEC[kind];
  if (specPath === undefined) return object;
  const owners = getPointer(object, '/metadata/ownerReferences');
  const controlled = Array.isArray(owners) && owners.some((o) => isRecord(o) && o.controller);
  if (kind !== 'Pod' && controlled) return object;
  if (kind === 'Job' && operation === 'UPDATE') return object;
  const spec = record(getPointer(object, specPath), 'pod spec');
  const old = getPointer(request.oldObject, specPath);
  const oldImages = new Set(isRecord(old) ? pulledImages(old).map(([h, f]) => h[f]) : []);
  const podUpdate = kind === 'Pod' && operation === 'UPDATE';
  const ephemeral = request.subResource === 'ephemeralcontainers';
  const ephemeralOnes = new Set(
    spec.ephemeralContainers === undefined ? [] : list(spec.ephemeralContainers, 'ephemeral'),
  );
  let newImages = 0;
  for (const [holder, imageField, policyField] of pulledImages(spec)) {
    if (operation === 'UPDATE' && oldImages.has(holder[imageField])) continue;
    newImages++;
    if (podUpdate && ephemeral !== ephemeralOnes.has(holder)) continue;
    if (mutations.rewrite) {
      const rewritten = REWRITTEN[String(holder[imageField])];
      if (rewritten === undefined)
        throw new Error(`add ${String(holder[imageField])} to REWRITTEN`);
      holder[imageField] = rewritten;
    }
    if (!podUpdate || ephemeral) holder[policyField] = 'Always';
  }
  const secret = operation === 'CREATE' || (kind !== 'Pod' && newImages > 0);
  if (mutations.secret !== undefined && secret) {
    spec.imagePullSecrets = [{ name: mutations.secret }];
  }
  return object;
}

const OPS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);

function isOperation(value: unknown): value is Operation {
  return isRecord(value) && typeof value.path === 'string' && OPS.has(String(value.op));
}

function decodePatch(t: ExecutionContext, encoded: unknown): Operation[] {
  t.is(typeof encoded, 'string');
  const decoded: unknown = JSON.parse(Buffer.from(String(encoded), 'base64').toString('utf8'));
  const ops = list(decoded, 'patch');
  t.true(ops.length > 0, 'a patch field is only sent with operations in it');
  return ops.filter((op) => {
    t.true(isOperation(op), `not an RFC 6902 operation: ${JSON.stringify(op)}`);
    return isOperation(op);
  });
}

async function assertMutation(
  t: ExecutionContext,
  gw: TestGateway,
  review: JsonObject,
  mutations: Mutations,
): Promise<Operation[]> {
  const request = record(review.request, 'request');
  const answer = admissionAnswer(await gw.post('/v1/mutate', review));
  t.is(answer.apiVersion, sentString(review, 'apiVersion'));
  t.is(answer.kind, 'AdmissionReview');
  const { response } = answer;
  t.is(response.uid, request.uid);
  t.true(response.allowed);
  t.false('status' in response);
  const expected = expectedObject(request, mutations);
  if (JSON.stringify(expected) === JSON.stringify(request.object)) {
    t.false('patch' in response, 'a patch for an object that must not change');
    t.false('patchType' in response);
    return [];
  }
  t.is(response.patchType, 'JSONPatch');
  const ops = decodePatch(t, response.patch);
  const kind = String(record(request.kind, 'kind').kind);
  const root = POD_SPEC[kind] ?? '/spec';
  for (const op of ops) t.true(op.path.startsWith(`${root}/`), `${op.path} is outside ${root}`);
  // validateOperation: every path must exist as the op requires; the input stays untouched.
  const { newDocument } = applyPatch(structuredClone(request.object), ops, true, false);
  t.deepEqual(newDocument, expected);
  return ops;
}

const mutated = test.macro({
  async exec(t, name: string, config: string, mutations: Mutations) {
    await assertMutation(t, await gateway(config), loadJsonObject('admission', name), mutations);
  },
  title: (_ = '', name: string, config: string) =>
    config === '' ? name : `${name} (rewrite, pull secret, storage class)`,
});

for (const name of fixtureNames('admission')) {
  test(mutated, name, '', DEFAULTS);
  test(mutated, name, FULL_CONFIG, FULL);
}

function podSpecOf(review: JsonObject, key: 'object' | 'oldObject'): JsonObject {
  return record(record(record(review.request, 'request')[key], key).spec, `${key}.spec`);
}

function container(spec: JsonObject, listName: string, index: number): JsonObject {
  return record(list(spec[listName], listName)[index], `${listName}[${index}]`);
}

test('a new ephemeral container gets pull policy Always, the running one does not', async (t) => {
  const review = structuredClone(loadJsonObject('admission', 'pod-ephemeralcontainers-v1'));
  container(podSpecOf(review, 'object'), 'ephemeralContainers', 0).imagePullPolicy = 'IfNotPresent';
  const ops = await assertMutation(t, await gateway(), review, DEFAULTS);
  t.deepEqual(ops, [
    { op: 'add', path: '/spec/ephemeralContainers/0/imagePullPolicy', value: 'Always' },
  ]);
});

// Pod validation refuses every spec change on UPDATE but container images: patching the
// pull policy there would turn `kubectl set image` into a refused update.
test('Pod UPDATE: only the image whose container changed is rewritten, nothing else', async (t) => {
  const review = structuredClone(loadJsonObject('admission', 'pod-update-new-image-v1'));
  container(podSpecOf(review, 'object'), 'containers', 0).imagePullPolicy = 'IfNotPresent';
  t.is((await assertMutation(t, await gateway(), review, DEFAULTS)).length, 0);
  const ops = await assertMutation(t, await gateway(FULL_CONFIG), review, FULL);
  // containers[1] runs an image the pod ran before: it is not new, so not touched.
  t.deepEqual(ops, [
    {
      op: 'replace',
      path: '/spec/containers/0/image',
      value: 'mirror.example.com/library/nginx:1.27',
    },
  ]);
});

test('template UPDATE: only the container whose image changed is patched', async (t) => {
  const review = structuredClone(loadJsonObject('admission', 'pod-update-new-image-v1'));
  // The same update, as a Deployment's template (mutable, unlike a Pod's spec).
  const request = record(review.request, 'request');
  for (const side of ['object', 'oldObject'] as const) {
    const pod = record(request[side], side);
    request[side] = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: pod.metadata,
      spec: { selector: {}, template: { spec: pod.spec } },
    };
  }
  request.kind = { group: 'apps', version: 'v1', kind: 'Deployment' };
  request.resource = { group: 'apps', version: 'v1', resource: 'deployments' };
  const template = record(getPointer(request.object, '/spec/template/spec'), 'template');
  container(template, 'containers', 0).imagePullPolicy = 'IfNotPresent';
  const ops = await assertMutation(t, await gateway(), review, DEFAULTS);
  t.deepEqual(ops, [
    { op: 'add', path: '/spec/template/spec/containers/0/imagePullPolicy', value: 'Always' },
  ]);
});

test('rewrite, pull secret, Always: the Pod as the API server would store it', async (t) => {
  const review = loadJsonObject('admission', 'pod-create-v1');
  const request = record(review.request, 'request');
  const answer = admissionAnswer(await (await gateway(FULL_CONFIG)).post('/v1/mutate', review));
  const ops = decodePatch(t, answer.response.patch);
  const { newDocument } = applyPatch(structuredClone(request.object), ops, true, false);
  const spec = record(getPointer(newDocument, '/spec'), 'spec');
  t.deepEqual(
    containersOf(spec).map((c) => [c.image, c.imagePullPolicy]),
    [
      ['mirror.example.com/team/api:2.3.1', 'Always'],
      ['mirror.example.com/library/nginx:1.27', 'Always'],
      ['mirror.example.com/tools/migrate:7', 'Always'],
      ['mirror.example.com/library/busybox:latest', 'Always'],
    ],
  );
  t.deepEqual(spec.imagePullSecrets, [{ name: 'regcred' }]);
});

test('CronJob: the pull secret list is replaced under the job template', async (t) => {
  const review = loadJsonObject('admission', 'cronjob-create-v1');
  const request = record(review.request, 'request');
  const answer = admissionAnswer(await (await gateway(FULL_CONFIG)).post('/v1/mutate', review));
  const ops = decodePatch(t, answer.response.patch);
  const { newDocument } = applyPatch(structuredClone(request.object), ops, true, false);
  const spec = record(getPointer(newDocument, '/spec/jobTemplate/spec/template/spec'), 'spec');
  t.deepEqual(spec.imagePullSecrets, [{ name: 'regcred' }]);
  t.is(container(spec, 'containers', 0).image, 'mirror.example.com/library/busybox:latest');
});

test('PVC without a class gets the default storage class', async (t) => {
  const review = loadJsonObject('admission', 'pvc-create-v1');
  const ops = await assertMutation(t, await gateway(FULL_CONFIG), review, FULL);
  t.deepEqual(ops, [{ op: 'add', path: '/spec/storageClassName', value: 'standard' }]);
});

test('PVC with an explicit "" class is left alone: no patch at all', async (t) => {
  const review = loadJsonObject('admission', 'pvc-create-empty-class-v1');
  const answer = admissionAnswer(await (await gateway(FULL_CONFIG)).post('/v1/mutate', review));
  t.true(answer.response.allowed);
  t.false('patch' in answer.response);
  t.false('patchType' in answer.response);
});
