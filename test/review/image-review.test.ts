import test from 'ava';
import { parseImageReview } from '../../src/review/image-review.ts';
import { InputError } from '../../src/shared/input-error.ts';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import { fixtureNames, loadJsonObject, sentString } from '../helpers/fixtures.ts';

const IMAGEREVIEW_FIXTURES = [
  'imagereview-break-glass',
  'imagereview-mixed',
  'imagereview-trusted',
  'imagereview-untrusted',
];

test('every ImageReview fixture is covered here', (t) => {
  t.deepEqual(fixtureNames('imagereview'), IMAGEREVIEW_FIXTURES);
});

function specOf(body: JsonObject): JsonObject {
  const spec = body.spec;
  if (!isRecord(spec)) throw new TypeError('fixture without a spec');
  return spec;
}

function imagesOf(spec: JsonObject): string[] {
  const containers = spec.containers;
  if (!Array.isArray(containers)) throw new TypeError('fixture without containers');
  return containers.map((container: unknown) => {
    if (!isRecord(container) || typeof container.image !== 'string') {
      throw new TypeError('fixture container without an image');
    }
    return container.image;
  });
}

const parses = test.macro({
  exec(t, name: string) {
    const body = loadJsonObject('imagereview', name);
    const sent = specOf(body);
    const review = parseImageReview(body);
    t.is(review.apiVersion, 'imagepolicy.k8s.io/v1alpha1');
    t.deepEqual(review.images, imagesOf(sent));
    t.is(review.namespace, sentString(sent, 'namespace'));
    // The plugin omits an empty annotation map (omitempty).
    t.deepEqual(review.annotations, sent.annotations ?? {});
    t.is(review.spec, sent);
  },
  title: (_, name: string) => name,
});

for (const name of IMAGEREVIEW_FIXTURES) test(parses, name);

test('imagereview-trusted has no annotations key at all, as the plugin sends it', (t) => {
  const body = loadJsonObject('imagereview', 'imagereview-trusted');
  t.false(Object.hasOwn(specOf(body), 'annotations'));
  t.deepEqual(parseImageReview(body).annotations, {});
});

test('a container without an image (omitempty drops "") reads as ""', (t) => {
  const body = loadJsonObject('imagereview', 'imagereview-untrusted');
  specOf(body).containers = [{ image: 'nginx' }, {}];
  t.deepEqual(parseImageReview(body).images, ['nginx', '']);
});

test('a spec without containers has no images', (t) => {
  const body = loadJsonObject('imagereview', 'imagereview-untrusted');
  delete specOf(body).containers;
  t.deepEqual(parseImageReview(body).images, []);
});

// --- bodies that must be refused -----------------------------------------------------------

interface BadBody {
  readonly title: string;
  readonly body: () => unknown;
  /** The whole message: it must say what is wrong. */
  readonly message: string;
}

function envelope(change: (body: JsonObject) => void): () => JsonObject {
  return () => {
    const body = loadJsonObject('imagereview', 'imagereview-break-glass');
    change(body);
    return body;
  };
}

function withSpec(change: (spec: JsonObject) => void): () => JsonObject {
  return envelope((body) => change(specOf(body)));
}

/** The break-glass review with one annotation written as raw JSON (so "__proto__" is a key). */
function withAnnotationJson(member: string): () => unknown {
  return () =>
    JSON.parse(
      JSON.stringify(loadJsonObject('imagereview', 'imagereview-break-glass')).replace(
        '"annotations":{',
        `"annotations":{${member},`,
      ),
    );
}

const NOT_AN_OBJECT = 'the body is not a JSON object';
const VERSION = 'expected imagepolicy.k8s.io/v1alpha1';
const NO_SPEC = 'the ImageReview has no spec';

const badBodies: readonly BadBody[] = [
  { title: 'null', body: () => null, message: NOT_AN_OBJECT },
  { title: 'a string', body: () => 'ImageReview', message: NOT_AN_OBJECT },
  { title: 'a boolean', body: () => true, message: NOT_AN_OBJECT },
  {
    title: 'an array holding a review',
    body: () => [loadJsonObject('imagereview', 'imagereview-trusted')],
    message: NOT_AN_OBJECT,
  },
  {
    title: 'apiVersion missing',
    body: envelope((b) => {
      delete b.apiVersion;
    }),
    message: `unsupported apiVersion "": ${VERSION}`,
  },
  {
    title: 'apiVersion imagepolicy.k8s.io/v1 (no such version)',
    body: envelope((b) => {
      b.apiVersion = 'imagepolicy.k8s.io/v1';
    }),
    message: `unsupported apiVersion "imagepolicy.k8s.io/v1": ${VERSION}`,
  },
  {
    title: 'apiVersion of an AdmissionReview',
    body: envelope((b) => {
      b.apiVersion = 'admission.k8s.io/v1';
    }),
    message: `unsupported apiVersion "admission.k8s.io/v1": ${VERSION}`,
  },
  {
    title: 'kind missing',
    body: envelope((b) => {
      delete b.kind;
    }),
    message: 'unsupported kind "": expected ImageReview',
  },
  {
    title: 'kind AdmissionReview',
    body: envelope((b) => {
      b.kind = 'AdmissionReview';
    }),
    message: 'unsupported kind "AdmissionReview": expected ImageReview',
  },
  {
    title: 'an AdmissionReview sent to the ImageReview route',
    body: () => loadJsonObject('admission', 'pod-create-v1'),
    message: `unsupported apiVersion "admission.k8s.io/v1": ${VERSION}`,
  },
  {
    title: 'spec missing',
    body: envelope((b) => {
      delete b.spec;
    }),
    message: NO_SPEC,
  },
  {
    title: 'spec null',
    body: envelope((b) => {
      b.spec = null;
    }),
    message: NO_SPEC,
  },
  {
    title: 'spec an array',
    body: envelope((b) => {
      b.spec = [specOf(b)];
    }),
    message: NO_SPEC,
  },
  {
    title: 'spec only under a "__proto__" key',
    body: () =>
      JSON.parse(
        '{"apiVersion":"imagepolicy.k8s.io/v1alpha1","kind":"ImageReview",' +
          '"__proto__":{"spec":{"containers":[{"image":"nginx"}]}}}',
      ),
    message: NO_SPEC,
  },
  {
    title: 'a container that is a string',
    body: withSpec((s) => {
      s.containers = [{ image: 'nginx' }, 'busybox:latest'];
    }),
    message: 'spec.containers[1] is not an object',
  },
  {
    title: 'a container that is null',
    body: withSpec((s) => {
      s.containers = [null];
    }),
    message: 'spec.containers[0] is not an object',
  },
  {
    title: 'an annotation value that is a number',
    body: withSpec((s) => {
      s.annotations = { 'ticket.image-policy.k8s.io/id': 4711 };
    }),
    message: 'spec.annotations["ticket.image-policy.k8s.io/id"] is not a string',
  },
  {
    title: 'an annotation value that is a boolean',
    body: withSpec((s) => {
      s.annotations = { 'break-glass.image-policy.k8s.io/enabled': true };
    }),
    message: 'spec.annotations["break-glass.image-policy.k8s.io/enabled"] is not a string',
  },
  {
    title: 'an annotation value that is null',
    body: withSpec((s) => {
      s.annotations = { 'break-glass.image-policy.k8s.io/reason': null };
    }),
    message: 'spec.annotations["break-glass.image-policy.k8s.io/reason"] is not a string',
  },
  {
    title: 'an annotation value that is an object',
    body: withSpec((s) => {
      s.annotations = { 'break-glass.image-policy.k8s.io/reason': { text: 'INC-4711' } };
    }),
    message: 'spec.annotations["break-glass.image-policy.k8s.io/reason"] is not a string',
  },
  {
    title: 'an annotation value that is a list',
    body: withSpec((s) => {
      s.annotations = { 'break-glass.image-policy.k8s.io/reason': ['INC-4711'] };
    }),
    message: 'spec.annotations["break-glass.image-policy.k8s.io/reason"] is not a string',
  },
  {
    title: 'a "__proto__" annotation whose value is an object',
    body: withAnnotationJson('"__proto__":{"polluted":"yes"}'),
    message: 'spec.annotations["__proto__"] is not a string',
  },
];

const refuses = test.macro({
  exec(t, bad: BadBody) {
    const error = t.throws(() => parseImageReview(bad.body()), { instanceOf: InputError });
    if (!(error instanceof InputError)) return;
    t.is(error.message, bad.message);
    t.is(error.status, 400);
    t.true(error.expose);
    t.false('polluted' in {});
  },
  title: (_, bad: BadBody) => `refuses ${bad.title}`,
});

for (const bad of badBodies) test(refuses, bad);

// Read as "no images", a non-list `containers` would be answered about nothing (fail open).
test('refuses spec.containers that is not a list', (t) => {
  const body = loadJsonObject('imagereview', 'imagereview-untrusted');
  specOf(body).containers = { image: 'nginx' };
  const error = t.throws(() => parseImageReview(body), { instanceOf: InputError });
  t.is(error?.status, 400);
});

test('a "__proto__" annotation key stays a plain key and pollutes nothing', (t) => {
  const review = parseImageReview(withAnnotationJson('"__proto__":"INC-4711"')());
  t.true(Object.hasOwn(review.annotations, '__proto__'));
  t.is(Object.getOwnPropertyDescriptor(review.annotations, '__proto__')?.value, 'INC-4711');
  t.is(Object.getPrototypeOf(review.annotations), Object.prototype);
  t.is(review.annotations['break-glass.image-policy.k8s.io/reason'], 'INC-4711 registry outage');
  t.false('polluted' in {});
});

test('"constructor" and "toString" annotation keys are plain keys too', (t) => {
  const body = withAnnotationJson('"constructor":"x","toString":"y","hasOwnProperty":"z"')();
  const review = parseImageReview(body);
  t.is(Object.getOwnPropertyDescriptor(review.annotations, 'constructor')?.value, 'x');
  t.is(Object.getOwnPropertyDescriptor(review.annotations, 'toString')?.value, 'y');
  t.is(Object.getOwnPropertyDescriptor(review.annotations, 'hasOwnProperty')?.value, 'z');
  t.is(typeof {}.toString, 'function');
});
