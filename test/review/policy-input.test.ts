import test, { type ExecutionContext } from 'ava';
import { parseAdmissionReview } from '../../src/review/admission-review.ts';
import type { PolicyReference } from '../../src/review/image-reference.ts';
import { parseImageReview } from '../../src/review/image-review.ts';
import {
  admissionInput,
  imageReviewInput,
  type PolicyController,
  type PolicyInput,
  type PolicyPodSpec,
  type PolicyVolumeClaim,
} from '../../src/review/policy-input.ts';
import type { ImageList } from '../../src/review/workloads.ts';
import { getPointer, isRecord, type JsonObject } from '../../src/shared/json.ts';
import { fixtureNames, loadJsonObject, sentString } from '../helpers/fixtures.ts';

// --- the images the fixtures use, and what each must parse to ------------------------------

const DIGEST = 'sha256:e63f7cd23fd0a746efbe0bfd303bad00b8bfc9f0a89aaef1de2d146e3bd96204';
const NGINX = 'nginx';
const NGINX_127 = 'nginx:1.27';
const API = 'registry.example.com/team/api:2.3.1';
const WORKER = `ghcr.io/acme/worker@${DIGEST}`;
const BUSYBOX = 'busybox:latest';
const MIGRATE = 'localhost:5000/tools/migrate:7';
const EXPORTER = 'quay.io/prometheus/node-exporter:v1.8.2';
const WORKER_UPPER = 'ghcr.io/acme/Worker:1.0';
const LOOKALIKE = 'registry.example.com.evil.io/team/api:2.3.1';
const INFERENCE = 'registry.example.com/shop/inference:2.1.0';
const MODELS = 'registry.example.com/shop/models:2026-11';
const MINER = 'quay.io/evil/miner:latest';
const SHOP_WEB = 'registry.example.com/shop/web:1.4.2';
const BACKUP = 'registry.example.com/shop/backup:3.0.1';
const SHOP_MIGRATE = 'registry.example.com/shop/migrate:7';

function valid(
  domain: string,
  path: string,
  tag: string,
  digest: string,
  familiar: string,
): PolicyReference {
  const name = `${domain}/${path}`;
  const normalized = name + (tag === '' ? '' : `:${tag}`) + (digest === '' ? '' : `@${digest}`);
  return { valid: true, error: '', domain, path, name, tag, digest, normalized, familiar };
}

const HUB = 'docker.io';
const REFERENCES: ReadonlyMap<string, PolicyReference> = new Map([
  [NGINX, valid(HUB, 'library/nginx', '', '', 'nginx')],
  [NGINX_127, valid(HUB, 'library/nginx', '1.27', '', 'nginx:1.27')],
  [API, valid('registry.example.com', 'team/api', '2.3.1', '', API)],
  [WORKER, valid('ghcr.io', 'acme/worker', '', DIGEST, WORKER)],
  [BUSYBOX, valid(HUB, 'library/busybox', 'latest', '', 'busybox:latest')],
  [MIGRATE, valid('localhost:5000', 'tools/migrate', '7', '', MIGRATE)],
  [EXPORTER, valid('quay.io', 'prometheus/node-exporter', 'v1.8.2', '', EXPORTER)],
  // a look-alike host is its own registry, never registry.example.com
  [LOOKALIKE, valid('registry.example.com.evil.io', 'team/api', '2.3.1', '', LOOKALIKE)],
  [INFERENCE, valid('registry.example.com', 'shop/inference', '2.1.0', '', INFERENCE)],
  [MODELS, valid('registry.example.com', 'shop/models', '2026-11', '', MODELS)],
  [MINER, valid('quay.io', 'evil/miner', 'latest', '', MINER)],
  [SHOP_WEB, valid('registry.example.com', 'shop/web', '1.4.2', '', SHOP_WEB)],
  [BACKUP, valid('registry.example.com', 'shop/backup', '3.0.1', '', BACKUP)],
  [SHOP_MIGRATE, valid('registry.example.com', 'shop/migrate', '7', '', SHOP_MIGRATE)],
]);
const INVALID_IMAGES: ReadonlySet<string> = new Set([WORKER_UPPER]);

function checkReference(t: ExecutionContext, raw: string, ref: PolicyReference): void {
  const expected = REFERENCES.get(raw);
  if (expected !== undefined) {
    t.deepEqual(ref, expected, raw);
    return;
  }
  t.true(INVALID_IMAGES.has(raw), `no expectation for image ${raw}`);
  t.false(ref.valid, raw);
  t.not(ref.error, '', raw);
  const { valid: _, error: __, ...parts } = ref;
  t.deepEqual(Object.values(parts), ['', '', '', '', '', '', ''], raw);
}

// --- expectations per admission fixture ----------------------------------------------------

type Row = readonly [
  container: string,
  list: ImageList,
  index: number,
  raw: string,
  isNew: boolean,
  pullPolicy: string,
];

interface Expected {
  readonly name: string;
  /** The pod spec every image is in ("" when the object has none). */
  readonly podSpecPath: string;
  readonly images: readonly Row[];
  readonly podSpecs: readonly PolicyPodSpec[];
  readonly volumeClaims: readonly PolicyVolumeClaim[];
  readonly annotations: Readonly<Record<string, string>>;
  /** The controller ownerReference; null when there is none. */
  readonly controller?: PolicyController;
}

const C = 'containers';
const V = 'volumes';
const I = 'initContainers';
const E = 'ephemeralContainers';
const secrets = (path: string, ...names: string[]): PolicyPodSpec => ({
  path,
  imagePullSecrets: names.map((name) => ({ name })),
  hasImagePullSecrets: names.length > 0,
});
const POD = '/spec';
const TEMPLATE = '/spec/template/spec';
const CRON = '/spec/jobTemplate/spec/template/spec';
const none = { volumeClaims: [], annotations: {} } as const;

const EXPECTED: Readonly<Record<string, Expected>> = {
  'pod-create-v1': {
    name: 'api',
    podSpecPath: POD,
    images: [
      ['api', C, 0, API, true, 'IfNotPresent'],
      ['proxy', C, 1, NGINX_127, true, 'IfNotPresent'],
      ['migrate', I, 0, MIGRATE, true, 'IfNotPresent'],
      ['wait-for-db', I, 1, BUSYBOX, true, 'Always'],
    ],
    podSpecs: [secrets(POD, 'regcred')],
    ...none,
  },
  'pod-create-v1beta1': {
    name: '', // generateName: the API server has not named it yet
    podSpecPath: POD,
    images: [
      ['worker', C, 0, WORKER, true, 'IfNotPresent'],
      ['cache', C, 1, NGINX, true, 'Always'],
    ],
    podSpecs: [secrets(POD)],
    ...none,
    controller: { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'worker-6b7f9d8c5' },
  },
  'pod-update-new-image-v1': {
    name: 'storefront',
    podSpecPath: POD,
    images: [
      // pull policy is defaulted on CREATE only: "Always" from the old untagged image stays
      ['web', C, 0, NGINX_127, true, 'Always'],
      ['metrics', C, 1, EXPORTER, false, 'IfNotPresent'],
      ['init-config', I, 0, BUSYBOX, false, 'Always'],
    ],
    podSpecs: [secrets(POD)],
    ...none,
  },
  'pod-update-labels-only-v1': {
    name: 'payments',
    podSpecPath: POD,
    images: [
      ['app', C, 0, API, false, 'IfNotPresent'],
      ['migrate', I, 0, MIGRATE, false, 'IfNotPresent'],
    ],
    podSpecs: [secrets(POD, 'regcred')],
    ...none,
  },
  'pod-ephemeralcontainers-v1': {
    name: 'checkout',
    podSpecPath: POD,
    images: [
      ['web', C, 0, NGINX_127, false, 'IfNotPresent'],
      ['debugger-x7k2q', E, 0, BUSYBOX, true, 'Always'],
    ],
    podSpecs: [secrets(POD)],
    ...none,
  },
  'deployment-create-v1': {
    name: 'api',
    podSpecPath: TEMPLATE,
    images: [
      ['api', C, 0, API, true, 'IfNotPresent'],
      ['proxy', C, 1, NGINX, true, 'Always'],
      ['migrate', I, 0, MIGRATE, true, 'IfNotPresent'],
    ],
    podSpecs: [secrets(TEMPLATE, 'regcred')],
    volumeClaims: [],
    // object: CHG-1001 and owner; template: CHG-1002 (wins); last-applied and prometheus dropped
    annotations: {
      'audit.image-policy.k8s.io/ticket': 'CHG-1002',
      'owner.image-policy.k8s.io/team': 'payments',
    },
  },
  'replicaset-create-v1': {
    name: 'web-5c9f7b8d4',
    podSpecPath: TEMPLATE,
    images: [['web', C, 0, NGINX_127, true, 'IfNotPresent']],
    podSpecs: [secrets(TEMPLATE)],
    ...none,
    controller: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' },
  },
  'statefulset-create-v1': {
    name: 'queue',
    podSpecPath: TEMPLATE,
    images: [
      ['worker', C, 0, WORKER, true, 'IfNotPresent'],
      ['init-perms', I, 0, BUSYBOX, true, 'Always'],
    ],
    podSpecs: [secrets(TEMPLATE)],
    ...none,
  },
  'daemonset-create-v1': {
    name: 'node-exporter',
    podSpecPath: TEMPLATE,
    images: [['node-exporter', C, 0, EXPORTER, true, 'IfNotPresent']],
    podSpecs: [secrets(TEMPLATE)],
    ...none,
  },
  'job-create-v1': {
    name: 'db-migrate-20250603',
    podSpecPath: TEMPLATE,
    images: [['migrate', C, 0, MIGRATE, true, 'IfNotPresent']],
    podSpecs: [secrets(TEMPLATE, 'regcred')],
    ...none,
  },
  'cronjob-create-v1': {
    name: 'nightly-report',
    podSpecPath: CRON,
    images: [['report', C, 0, BUSYBOX, true, 'Always']],
    podSpecs: [secrets(CRON, 'ops-registry', 'regcred')],
    volumeClaims: [],
    annotations: { 'owner.image-policy.k8s.io/team': 'ops' },
  },
  'replicationcontroller-create-v1': {
    name: 'frontend',
    podSpecPath: TEMPLATE,
    images: [['frontend', C, 0, NGINX, true, 'Always']],
    podSpecs: [secrets(TEMPLATE)],
    ...none,
  },
  'pvc-create-v1': {
    name: 'uploads',
    podSpecPath: '',
    images: [],
    podSpecs: [],
    volumeClaims: [{ path: '/spec', storageClassName: '', hasStorageClassName: false }],
    annotations: {},
  },
  'pvc-create-empty-class-v1': {
    name: 'archive',
    podSpecPath: '',
    images: [],
    podSpecs: [],
    // "" is an explicit "no class" and must stay distinguishable from a missing field
    volumeClaims: [{ path: '/spec', storageClassName: '', hasStorageClassName: true }],
    annotations: {},
  },
  'pod-create-break-glass-v1': {
    name: 'hotfix',
    podSpecPath: POD,
    images: [['hotfix', C, 0, NGINX_127, true, 'IfNotPresent']],
    podSpecs: [secrets(POD)],
    volumeClaims: [],
    // "image-policy.k8s.io/reason" (no leading dot) and "….k8s.io.evil.com/reason" are dropped
    annotations: { 'break-glass.image-policy.k8s.io/reason': 'INC-4711 registry outage' },
  },
  'pod-delete-v1': {
    name: 'api',
    podSpecPath: '',
    images: [], // object is null on DELETE: nothing will run
    podSpecs: [],
    ...none,
  },
  // The fixtures below were captured from kube-apiserver 1.37.2 and its controllers.
  'pod-create-image-volumes-v1': {
    name: 'inference',
    podSpecPath: POD,
    images: [
      ['server', C, 0, INFERENCE, true, 'IfNotPresent'],
      // image volumes follow the containers; the emptyDir at volumes[2] is not an image
      ['model', V, 0, MODELS, true, 'IfNotPresent'],
      ['payload', V, 1, MINER, true, 'IfNotPresent'],
    ],
    podSpecs: [secrets(POD)],
    ...none,
  },
  'pod-create-owned-v1': {
    name: 'web-756cd79df7-6rrlc',
    podSpecPath: POD,
    images: [['web', C, 0, SHOP_WEB, true, 'IfNotPresent']],
    podSpecs: [secrets(POD)],
    ...none,
    controller: { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-756cd79df7' },
  },
  'replicaset-update-scale-v1': {
    name: 'web-756cd79df7',
    podSpecPath: TEMPLATE,
    images: [['web', C, 0, SHOP_WEB, false, 'IfNotPresent']],
    podSpecs: [secrets(TEMPLATE)],
    ...none,
    controller: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' },
  },
  'job-create-from-cronjob-v1': {
    name: 'backup-manual',
    podSpecPath: TEMPLATE,
    images: [['backup', C, 0, BACKUP, true, 'IfNotPresent']],
    podSpecs: [secrets(TEMPLATE)],
    ...none,
    controller: { apiVersion: 'batch/v1', kind: 'CronJob', name: 'backup' },
  },
  'job-update-finalizers-v1': {
    name: 'migrate',
    podSpecPath: TEMPLATE,
    images: [['migrate', C, 0, SHOP_MIGRATE, false, 'IfNotPresent']],
    podSpecs: [secrets(TEMPLATE)],
    ...none,
  },
};

/** Every key of the input, of an image, of a reference (docs/policy-input.md). */
const INPUT_KEYS = [
  'annotations',
  'apiVersion',
  'controller',
  'dryRun',
  'images',
  'kind',
  'name',
  'namespace',
  'operation',
  'podSpecs',
  'protocol',
  'resource',
  'review',
  'subResource',
  'uid',
  'volumeClaims',
];
const IMAGE_KEYS = [
  'container',
  'imagePath',
  'index',
  'list',
  'new',
  'path',
  'podSpecPath',
  'pullPolicy',
  'pullPolicyPath',
  'raw',
  'reference',
];
const REFERENCE_KEYS = [
  'digest',
  'domain',
  'error',
  'familiar',
  'name',
  'normalized',
  'path',
  'tag',
  'valid',
];
const keys = (value: object): string[] => Object.keys(value).sort();

function requestOf(body: JsonObject): JsonObject {
  const request = body.request;
  if (!isRecord(request)) throw new TypeError('fixture without a request');
  return request;
}

function admissionFixture(name: string): { body: JsonObject; input: PolicyInput } {
  const body = loadJsonObject('admission', name);
  const review = parseAdmissionReview(body);
  return { body, input: admissionInput(review.apiVersion, review.request) };
}

/** Every string anywhere in a JSON value, keys excluded. */
function strings(value: unknown, into = new Set<string>()): Set<string> {
  if (typeof value === 'string') into.add(value);
  else if (Array.isArray(value)) for (const item of value) strings(item, into);
  else if (isRecord(value)) for (const item of Object.values(value)) strings(item, into);
  return into;
}

test('every admission fixture has expectations', (t) => {
  t.deepEqual(fixtureNames('admission'), Object.keys(EXPECTED).sort());
});

const buildsInput = test.macro({
  exec(t, name: string) {
    const expected = EXPECTED[name];
    if (expected === undefined) return t.fail(`no expectations for ${name}`);
    const { body, input } = admissionFixture(name);
    const request = requestOf(body);
    const object = request.object;

    t.is(input.protocol, 'admission');
    t.is(input.apiVersion, sentString(body, 'apiVersion'));
    t.is(input.uid, sentString(request, 'uid'));
    t.is(input.operation, sentString(request, 'operation'));
    t.is(input.namespace, sentString(request, 'namespace'));
    t.is(input.name, expected.name);
    t.deepEqual(input.kind, request.kind);
    t.deepEqual(input.resource, request.resource);
    t.is(input.subResource, sentString(request, 'subResource'));
    t.false(input.dryRun);
    t.is(input.review, request, 'review is the request itself');

    // images: order, fields, and that every pointer lands on that very container or volume
    t.deepEqual(
      input.images.map((i) => [i.container, i.list, i.index, i.raw, i.new, i.pullPolicy]),
      expected.images.map((row) => [...row]),
    );
    t.deepEqual(input.controller, expected.controller ?? null);
    for (const image of input.images) {
      t.deepEqual(keys(image), IMAGE_KEYS);
      t.deepEqual(keys(image.reference), REFERENCE_KEYS);
      t.is(image.podSpecPath, expected.podSpecPath);
      t.is(image.path, `${expected.podSpecPath}/${image.list}/${image.index}`);
      const container = getPointer(object, image.path);
      if (!isRecord(container)) return t.fail(`${image.path} does not resolve to a container`);
      t.is(container.name, image.container, image.path);
      t.is(getPointer(object, image.imagePath), image.raw, image.imagePath);
      t.is(getPointer(object, image.pullPolicyPath) ?? '', image.pullPolicy, image.pullPolicyPath);
      const volume = image.list === 'volumes';
      t.is(image.imagePath, `${image.path}/${volume ? 'image/reference' : 'image'}`);
      t.is(
        image.pullPolicyPath,
        `${image.path}/${volume ? 'image/pullPolicy' : 'imagePullPolicy'}`,
      );
      const podSpec = getPointer(object, image.podSpecPath);
      if (!isRecord(podSpec)) return t.fail(`${image.podSpecPath} is not a pod spec`);
      const list = podSpec[image.list];
      t.true(Array.isArray(list) && list[image.index] === container, image.path);
      checkReference(t, image.raw, image.reference);
    }

    t.deepEqual(input.podSpecs, [...expected.podSpecs]);
    for (const podSpec of input.podSpecs) {
      t.deepEqual(
        podSpec.imagePullSecrets,
        getPointer(object, `${podSpec.path}/imagePullSecrets`) ?? [],
      );
    }
    t.deepEqual(input.volumeClaims, [...expected.volumeClaims]);
    t.deepEqual(input.annotations, { ...expected.annotations });
  },
  title: (_, name: string) => name,
});

for (const name of Object.keys(EXPECTED)) test(buildsInput, name);

const inventsNothing = test.macro({
  exec(t, name: string) {
    const { body, input } = admissionFixture(name);
    const request = requestOf(body);
    t.deepEqual(keys(input), INPUT_KEYS);
    // plain JSON: no undefined, no class instances, nothing lost in a round trip
    t.deepEqual(JSON.parse(JSON.stringify(input)), input);
    // Every string the input carries comes from the review, except what the translation
    // itself names: the protocol, container lists, JSON pointers and parsed references.
    const { review, images, podSpecs, volumeClaims, protocol, ...rest } = input;
    t.is(protocol, 'admission');
    const sent = strings(body);
    const carried = strings([
      rest,
      images.map(({ container, raw, pullPolicy }) => [container, raw, pullPolicy]),
      podSpecs.map((podSpec) => podSpec.imagePullSecrets),
      volumeClaims.map((claim) => claim.storageClassName),
    ]);
    carried.delete('');
    for (const value of carried) t.true(sent.has(value), `invented: ${JSON.stringify(value)}`);
    // annotations are exactly entries of the object or its pod template
    const object = request.object;
    for (const [key, value] of Object.entries(input.annotations)) {
      const from = [
        '/metadata/annotations',
        '/spec/template/metadata/annotations',
        '/spec/jobTemplate/spec/template/metadata/annotations',
      ].map((path) => getPointer(object, path));
      t.true(
        from.some((annotations) => isRecord(annotations) && annotations[key] === value),
        key,
      );
    }
    t.is(review, request);
  },
  title: (_, name: string) => `${name}: input holds nothing the review did not send`,
});

for (const name of Object.keys(EXPECTED)) test(inventsNothing, name);

// --- UPDATE: "new" means new to the pod spec, not to the container -------------------------

test('an UPDATE that only swaps images between containers brings nothing new', (t) => {
  const body = loadJsonObject('admission', 'pod-update-new-image-v1');
  const request = requestOf(body);
  // web now runs the exporter image, metrics nginx: both already ran in this pod spec
  const containers = getPointer(request.object, '/spec/containers');
  if (!Array.isArray(containers)) return t.fail('fixture changed');
  const [web, metrics] = containers;
  if (!isRecord(web) || !isRecord(metrics)) return t.fail('fixture changed');
  t.deepEqual([web.image, metrics.image], [NGINX_127, EXPORTER]);
  t.is(getPointer(request.oldObject, '/spec/containers/0/image'), NGINX);
  web.image = EXPORTER;
  metrics.image = NGINX;
  const { apiVersion, request: parsed } = parseAdmissionReview(body);
  const input = admissionInput(apiVersion, parsed);
  t.deepEqual(
    input.images.map((i) => [i.raw, i.new]),
    [
      [EXPORTER, false],
      [NGINX, false],
      [BUSYBOX, false],
    ],
  );
});

test('an UPDATE to an image only an init container ran is not new', (t) => {
  const body = loadJsonObject('admission', 'pod-update-new-image-v1');
  const request = requestOf(body);
  const web = getPointer(request.object, '/spec/containers/0');
  if (!isRecord(web)) return t.fail('fixture changed');
  web.image = BUSYBOX;
  const { apiVersion, request: parsed } = parseAdmissionReview(body);
  const [first] = admissionInput(apiVersion, parsed).images;
  t.is(first?.raw, BUSYBOX);
  t.false(first?.new);
});

// --- annotations: only strings, only *.image-policy.k8s.io/*, no prototype games ------------

test('annotation values that are not strings are dropped', (t) => {
  const body = loadJsonObject('admission', 'pod-create-break-glass-v1');
  const annotations = getPointer(requestOf(body), '/object/metadata/annotations');
  if (!isRecord(annotations)) return t.fail('fixture changed');
  annotations['count.image-policy.k8s.io/n'] = 3;
  annotations['flag.image-policy.k8s.io/on'] = true;
  annotations['empty.image-policy.k8s.io/x'] = null;
  annotations['nested.image-policy.k8s.io/x'] = { reason: 'INC-1' };
  const { apiVersion, request } = parseAdmissionReview(body);
  t.deepEqual(admissionInput(apiVersion, request).annotations, {
    'break-glass.image-policy.k8s.io/reason': 'INC-4711 registry outage',
  });
});

test('a "__proto__" annotation key reaches neither the input nor any prototype', (t) => {
  const text = JSON.stringify(loadJsonObject('admission', 'deployment-create-v1')).replaceAll(
    '"annotations":{',
    '"annotations":{"__proto__":{"polluted":"yes"},"x.image-policy.k8s.io/__proto__":"kept",',
  );
  const { apiVersion, request } = parseAdmissionReview(JSON.parse(text));
  const { annotations } = admissionInput(apiVersion, request);
  t.is(Object.getPrototypeOf(annotations), Object.prototype);
  t.false(Object.hasOwn(annotations, '__proto__'));
  t.is(annotations['x.image-policy.k8s.io/__proto__'], 'kept');
  t.is(annotations['audit.image-policy.k8s.io/ticket'], 'CHG-1002');
  t.false('polluted' in {});
});

// --- ImageReview ---------------------------------------------------------------------------

const IMAGEREVIEW_IMAGES: Readonly<Record<string, readonly string[]>> = {
  'imagereview-break-glass': [NGINX_127],
  'imagereview-mixed': [API, NGINX_127, WORKER, BUSYBOX, EXPORTER, WORKER_UPPER, LOOKALIKE],
  'imagereview-trusted': [API, WORKER, MIGRATE],
  'imagereview-untrusted': [NGINX, BUSYBOX],
};

test('every ImageReview fixture has expectations', (t) => {
  t.deepEqual(fixtureNames('imagereview'), Object.keys(IMAGEREVIEW_IMAGES).sort());
});

const buildsImageReviewInput = test.macro({
  exec(t, name: string) {
    const body = loadJsonObject('imagereview', name);
    const spec = body.spec;
    if (!isRecord(spec)) return t.fail('fixture without a spec');
    const input = imageReviewInput(parseImageReview(body));

    t.deepEqual(keys(input), INPUT_KEYS);
    t.deepEqual(JSON.parse(JSON.stringify(input)), input);
    t.is(input.protocol, 'imagereview');
    t.is(input.apiVersion, 'imagepolicy.k8s.io/v1alpha1');
    t.is(input.uid, '');
    t.is(input.operation, '');
    t.is(input.namespace, sentString(spec, 'namespace'));
    t.is(input.name, '');
    // The ImagePolicyWebhook reviews pods only; the input says so rather than leaving it blank.
    t.deepEqual(input.kind, { group: '', version: 'v1', kind: 'Pod' });
    t.deepEqual(input.resource, { group: '', version: 'v1', resource: 'pods' });
    t.is(input.subResource, '');
    t.false(input.dryRun);
    t.deepEqual(input.podSpecs, []);
    t.deepEqual(input.volumeClaims, []);
    t.is(input.review, spec, 'review is the spec itself');
    t.deepEqual(input.annotations, spec.annotations ?? {});

    t.deepEqual(
      input.images.map((image) => image.raw),
      [...(IMAGEREVIEW_IMAGES[name] ?? [])],
    );
    input.images.forEach((image, index) => {
      t.deepEqual(keys(image), IMAGE_KEYS);
      // the plugin sends no names, and every image is up for review
      t.is(image.container, '');
      t.true(image.new);
      t.is(image.list, 'containers');
      t.is(image.index, index);
      t.is(image.pullPolicy, '');
      t.is(image.podSpecPath, '/spec');
      t.is(image.path, `/spec/containers/${index}`);
      t.deepEqual(getPointer(body, image.path), { image: image.raw });
      checkReference(t, image.raw, image.reference);
    });
  },
  title: (_, name: string) => name,
});

for (const name of Object.keys(IMAGEREVIEW_IMAGES)) test(buildsImageReviewInput, name);

test('ImageReview annotations outside *.image-policy.k8s.io/* are dropped', (t) => {
  const body = loadJsonObject('imagereview', 'imagereview-break-glass');
  const spec = body.spec;
  if (!isRecord(spec)) return t.fail('fixture changed');
  spec.annotations = {
    'break-glass.image-policy.k8s.io/reason': 'INC-4711 registry outage',
    'image-policy.k8s.io/reason': 'no leading label',
    'break-glass.image-policy.k8s.io.evil.com/reason': 'other domain',
    'kubectl.kubernetes.io/last-applied-configuration': '{}',
  };
  t.deepEqual(imageReviewInput(parseImageReview(body)).annotations, {
    'break-glass.image-policy.k8s.io/reason': 'INC-4711 registry outage',
  });
});
