import test from 'ava';
import { parseAdmissionReview } from '../../src/review/admission-review.ts';
import { InputError } from '../../src/shared/input-error.ts';
import { getPointer, isRecord, type JsonObject } from '../../src/shared/json.ts';
import { fixtureNames, loadJsonObject, sentString } from '../helpers/fixtures.ts';

const ADMISSION_FIXTURES = [
  'cronjob-create-v1',
  'daemonset-create-v1',
  'deployment-create-v1',
  'job-create-from-cronjob-v1',
  'job-create-v1',
  'job-update-finalizers-v1',
  'pod-create-break-glass-v1',
  'pod-create-image-volumes-v1',
  'pod-create-owned-v1',
  'pod-create-v1',
  'pod-create-v1beta1',
  'pod-delete-v1',
  'pod-ephemeralcontainers-v1',
  'pod-update-labels-only-v1',
  'pod-update-new-image-v1',
  'pvc-create-empty-class-v1',
  'pvc-create-v1',
  'replicaset-create-v1',
  'replicaset-update-scale-v1',
  'replicationcontroller-create-v1',
  'statefulset-create-v1',
];

test('every admission fixture is covered here', (t) => {
  t.deepEqual(fixtureNames('admission'), ADMISSION_FIXTURES);
});

function requestOf(body: JsonObject): JsonObject {
  const request = body.request;
  if (!isRecord(request)) throw new TypeError('fixture without a request');
  return request;
}

const parses = test.macro({
  exec(t, name: string) {
    const body = loadJsonObject('admission', name);
    const sent = requestOf(body);
    const { apiVersion, request } = parseAdmissionReview(body);
    const version: string = apiVersion;
    t.is(version, sentString(body, 'apiVersion'));
    // Kept as sent, not copied: the policy sees exactly what the API server sent.
    t.is(request.raw, sent);
    t.is(request.uid, sentString(sent, 'uid'));
    t.deepEqual(request.kind, sent.kind);
    t.deepEqual(request.resource, sent.resource);
    t.is(request.subResource, sentString(sent, 'subResource'));
    t.is(request.operation, sentString(sent, 'operation'));
    t.is(request.namespace, sentString(sent, 'namespace'));
    t.is(request.name, sentString(sent, 'name'));
    t.false(request.dryRun);
    t.is(request.object, sent.object);
    t.is(request.oldObject, sent.oldObject);
    if (request.operation === 'CREATE') t.is(request.oldObject, null);
    if (request.operation === 'DELETE') t.is(request.object, null);
    if (request.operation === 'UPDATE') t.true(isRecord(request.oldObject));
  },
  title: (_, name: string) => name,
});

for (const name of ADMISSION_FIXTURES) test(parses, name);

test('a request without name (generateName) parses with name ""', (t) => {
  const { request } = parseAdmissionReview(loadJsonObject('admission', 'pod-create-v1beta1'));
  t.is(request.name, '');
  t.is(getPointer(request.object, '/metadata/generateName'), 'worker-6b7f9d8c5-');
});

test('dryRun true is read from the request', (t) => {
  const body = loadJsonObject('admission', 'pod-create-v1');
  requestOf(body).dryRun = true;
  t.true(parseAdmissionReview(body).request.dryRun);
});

// --- bodies that must be refused -----------------------------------------------------------

interface BadBody {
  readonly title: string;
  readonly body: () => unknown;
  /** The whole message: it must say what is wrong. */
  readonly message: string;
}

/** pod-create-v1 with one change to the envelope. */
function envelope(change: (body: JsonObject) => void): () => JsonObject {
  return () => {
    const body = loadJsonObject('admission', 'pod-create-v1');
    change(body);
    return body;
  };
}

/** pod-create-v1 with one change to its request. */
function withRequest(change: (request: JsonObject) => void): () => JsonObject {
  return envelope((body) => change(requestOf(body)));
}

const NOT_AN_OBJECT = 'the body is not a JSON object';
const NO_REQUEST = 'the AdmissionReview has no request';
const EXPECTED_VERSIONS = 'expected admission.k8s.io/v1 or admission.k8s.io/v1beta1';
const OPERATIONS = 'is not one of CREATE, UPDATE, DELETE, CONNECT';
const NO_UID = 'request.uid is missing or not a string';
const NO_KIND = 'request.kind is missing or has no kind';

const badBodies: readonly BadBody[] = [
  { title: 'null', body: () => null, message: NOT_AN_OBJECT },
  { title: 'a string', body: () => 'AdmissionReview', message: NOT_AN_OBJECT },
  { title: 'a number', body: () => 42, message: NOT_AN_OBJECT },
  {
    title: 'an array holding a review',
    body: () => [loadJsonObject('admission', 'pod-create-v1')],
    message: NOT_AN_OBJECT,
  },
  {
    title: 'apiVersion missing',
    body: envelope((b) => {
      delete b.apiVersion;
    }),
    message: `unsupported apiVersion "": ${EXPECTED_VERSIONS}`,
  },
  {
    title: 'apiVersion admission.k8s.io/v2',
    body: envelope((b) => {
      b.apiVersion = 'admission.k8s.io/v2';
    }),
    message: `unsupported apiVersion "admission.k8s.io/v2": ${EXPECTED_VERSIONS}`,
  },
  {
    title: 'apiVersion of an ImageReview',
    body: envelope((b) => {
      b.apiVersion = 'imagepolicy.k8s.io/v1alpha1';
    }),
    message: `unsupported apiVersion "imagepolicy.k8s.io/v1alpha1": ${EXPECTED_VERSIONS}`,
  },
  {
    title: 'apiVersion in upper case',
    body: envelope((b) => {
      b.apiVersion = 'Admission.K8s.io/v1';
    }),
    message: `unsupported apiVersion "Admission.K8s.io/v1": ${EXPECTED_VERSIONS}`,
  },
  {
    title: 'kind missing',
    body: envelope((b) => {
      delete b.kind;
    }),
    message: 'unsupported kind "": expected AdmissionReview',
  },
  {
    title: 'kind ImageReview',
    body: envelope((b) => {
      b.kind = 'ImageReview';
    }),
    message: 'unsupported kind "ImageReview": expected AdmissionReview',
  },
  {
    title: 'request missing',
    body: envelope((b) => {
      delete b.request;
    }),
    message: NO_REQUEST,
  },
  {
    title: 'request null',
    body: envelope((b) => {
      b.request = null;
    }),
    message: NO_REQUEST,
  },
  {
    title: 'request an array',
    body: envelope((b) => {
      b.request = [requestOf(b)];
    }),
    message: NO_REQUEST,
  },
  {
    title: 'a response instead of a request',
    body: envelope((b) => {
      delete b.request;
      b.response = { uid: 'd2db6384-0582-4081-a8d1-ec59d0dea2a7', allowed: true };
    }),
    message: NO_REQUEST,
  },
  {
    title: 'request only under a "__proto__" key',
    body: () => {
      const body = loadJsonObject('admission', 'pod-create-v1');
      const request = JSON.stringify(requestOf(body));
      const head = '"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"';
      return JSON.parse(`{${head},"__proto__":{"request":${request}}}`);
    },
    message: NO_REQUEST,
  },
  {
    title: 'request only inherited from a prototype',
    body: () => {
      const body = loadJsonObject('admission', 'pod-create-v1');
      const inherited: JsonObject = Object.create({ request: requestOf(body) });
      inherited.apiVersion = 'admission.k8s.io/v1';
      inherited.kind = 'AdmissionReview';
      return inherited;
    },
    message: NO_REQUEST,
  },
  {
    title: 'uid missing',
    body: withRequest((r) => {
      delete r.uid;
    }),
    message: NO_UID,
  },
  {
    title: 'uid empty',
    body: withRequest((r) => {
      r.uid = '';
    }),
    message: NO_UID,
  },
  {
    title: 'uid a number',
    body: withRequest((r) => {
      r.uid = 705;
    }),
    message: NO_UID,
  },
  {
    title: 'operation PATCH (a verb, not an admission operation)',
    body: withRequest((r) => {
      r.operation = 'PATCH';
    }),
    message: `request.operation "PATCH" ${OPERATIONS}`,
  },
  {
    title: 'operation in lower case',
    body: withRequest((r) => {
      r.operation = 'create';
    }),
    message: `request.operation "create" ${OPERATIONS}`,
  },
  {
    title: 'operation missing',
    body: withRequest((r) => {
      delete r.operation;
    }),
    message: `request.operation "" ${OPERATIONS}`,
  },
  {
    title: 'operation not a string',
    body: withRequest((r) => {
      r.operation = ['CREATE'];
    }),
    message: `request.operation "" ${OPERATIONS}`,
  },
  {
    title: 'kind missing from the request',
    body: withRequest((r) => {
      delete r.kind;
    }),
    message: NO_KIND,
  },
  {
    title: 'request kind without its kind',
    body: withRequest((r) => {
      r.kind = { group: '', version: 'v1' };
    }),
    message: NO_KIND,
  },
  {
    title: 'request kind a string',
    body: withRequest((r) => {
      r.kind = 'Pod';
    }),
    message: NO_KIND,
  },
];

const refuses = test.macro({
  exec(t, bad: BadBody) {
    const error = t.throws(() => parseAdmissionReview(bad.body()), { instanceOf: InputError });
    if (!(error instanceof InputError)) return;
    t.is(error.message, bad.message);
    t.is(error.status, 400);
    t.true(error.expose);
  },
  title: (_, bad: BadBody) => `refuses ${bad.title}`,
});

for (const bad of badBodies) test(refuses, bad);

// --- annotations are the policy input's business, but must survive parsing unharmed --------

test('non-string annotation values do not stop parsing; the object is kept as sent', (t) => {
  const body = loadJsonObject('admission', 'pod-create-break-glass-v1');
  const annotations = getPointer(requestOf(body), '/object/metadata/annotations');
  if (!isRecord(annotations)) return t.fail('fixture without annotations');
  annotations['count.image-policy.k8s.io/n'] = 3;
  annotations['flag.image-policy.k8s.io/on'] = true;
  annotations['nested.image-policy.k8s.io/x'] = { reason: 'INC-1' };
  const { request } = parseAdmissionReview(body);
  t.deepEqual(getPointer(request.object, '/metadata/annotations/count.image-policy.k8s.io~1n'), 3);
});

test('a "__proto__" annotation key stays a plain key and pollutes nothing', (t) => {
  const text = JSON.stringify(loadJsonObject('admission', 'pod-create-v1')).replace(
    '"annotations":{',
    '"annotations":{"__proto__":{"polluted":"yes"},',
  );
  const { request } = parseAdmissionReview(JSON.parse(text));
  const annotations = getPointer(request.object, '/metadata/annotations');
  if (!isRecord(annotations)) return t.fail('annotations lost');
  t.true(Object.hasOwn(annotations, '__proto__'));
  t.is(Object.getPrototypeOf(annotations), Object.prototype);
  t.false('polluted' in {});
  t.false('polluted' in Object.prototype);
});

for (const operation of ['CREATE', 'UPDATE'] as const) {
  for (const [title, object] of [
    ['missing', undefined],
    ['null', null],
    ['a string', 'nginx'],
    ['a list', [{ image: 'nginx' }]],
  ] as const) {
    test(`refuses ${operation} whose object is ${title}`, (t) => {
      const body = loadJsonObject('admission', 'pod-create-v1');
      const request = requestOf(body);
      request.operation = operation;
      if (object === undefined) delete request.object;
      else request.object = object;
      const error = t.throws(() => parseAdmissionReview(body), { instanceOf: InputError });
      t.is(error?.message, `request.object is missing or not an object on ${operation}`);
      t.is(error?.status, 400);
    });
  }
}
