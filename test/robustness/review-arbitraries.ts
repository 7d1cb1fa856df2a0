/**
 * Reviews for the endpoint properties: the real fixtures with random mutations (delete or
 * replace any field with random JSON, null, a number, a list, an object or a huge string;
 * change apiVersion, kind, operation; put random images in image fields), and reviews built
 * from scratch with every field optional and every type possible.
 */
import * as fc from 'fast-check';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import { fixtureNames, loadJsonObject } from '../helpers/fixtures.ts';
import { type Action, apply, parentOf, paths, type Sent, sent, valueAt } from './json-edits.ts';
import { nearValid } from './reference-arbitraries.ts';

const ADMISSION_VERSIONS = ['admission.k8s.io/v1', 'admission.k8s.io/v1beta1'];

const image: fc.Arbitrary<string> = fc.oneof(
  nearValid,
  fc.constantFrom(
    'registry.example.com/team/api:2.3.1',
    'evil.io/miner:1',
    'registry.example.com.evil.io/x:1',
    'nginx',
    'busybox:latest',
  ),
);

/** Any JSON, weighted towards the shapes that trip narrowing code. */
export const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 2, arbitrary: fc.constantFrom(null, 0, -1, 1.5, true, false, '', [], {}, [null], {}) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
);

interface Mutation {
  /** Which path, modulo the number of candidates. */
  readonly pick: number;
  /** Candidates: any field, or only image fields. */
  readonly among: 'any' | 'images';
  readonly action: Action;
}

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ kind: 'delete' as const }) },
  { weight: 4, arbitrary: anyJson.map((value) => ({ kind: 'replace' as const, value })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'huge' as const }) },
);

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ pick: fc.nat(), among: fc.constant('any' as const), action }),
  fc.record({
    pick: fc.nat(),
    among: fc.constant('images' as const),
    action: fc.oneof(
      image.map((value) => ({ kind: 'image' as const, value })),
      anyJson.map((value) => ({ kind: 'replace' as const, value })),
    ),
  }),
);

/** Top-level and request fields that decide how a review is read, set to likely values. */
const headline = fc.record(
  {
    apiVersion: fc.oneof(
      fc.constantFrom(...ADMISSION_VERSIONS, 'imagepolicy.k8s.io/v1alpha1', 'admission.k8s.io/v2'),
      anyJson,
    ),
    kind: fc.oneof(fc.constantFrom('AdmissionReview', 'ImageReview', 'admissionreview'), anyJson),
    operation: fc.oneof(
      fc.constantFrom('CREATE', 'UPDATE', 'DELETE', 'CONNECT', 'PATCH', 'create'),
      anyJson,
    ),
    uid: fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), anyJson),
  },
  { requiredKeys: [] },
);

function setField(root: unknown, path: readonly string[], value: unknown): void {
  const parent = parentOf(root, path);
  const last = path.at(-1);
  if (isRecord(parent) && last !== undefined) parent[last] = value;
}

function mutate(
  fixture: JsonObject,
  head: Partial<Record<'apiVersion' | 'kind' | 'operation' | 'uid', unknown>>,
  mutations: readonly Mutation[],
): unknown {
  const review: unknown = structuredClone(fixture);
  for (const [key, value] of Object.entries(head)) {
    const path = key === 'operation' || key === 'uid' ? ['request', key] : [key];
    setField(review, path, structuredClone(value));
  }
  for (const m of mutations) {
    const all = paths(review);
    const candidates = m.among === 'any' ? all : all.filter((p) => p.at(-1) === 'image');
    const path = candidates[m.pick % Math.max(1, candidates.length)];
    if (path !== undefined) apply(review, path, m.action);
  }
  return review;
}

const admissionFixtures = fixtureNames('admission').map((name) =>
  loadJsonObject('admission', name),
);
const imageReviewFixtures = fixtureNames('imagereview').map((name) =>
  loadJsonObject('imagereview', name),
);

function mutated(fixtures: readonly JsonObject[]): fc.Arbitrary<Sent> {
  return fc
    .tuple(
      fc.constantFrom(...fixtures),
      fc.oneof({ weight: 3, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: headline }),
      fc.array(mutation, { maxLength: 4 }),
    )
    .map(([fixture, head, mutations]) => sent(mutate(fixture, head, mutations)));
}

export const mutatedAdmissionReview = mutated(admissionFixtures);
export const mutatedImageReview = mutated(imageReviewFixtures);

const loneSurrogate = fc
  .tuple(fc.string({ maxLength: 4 }), fc.integer({ min: 0xd800, max: 0xdfff }), fc.string())
  .map(([before, unit, after]) => before + String.fromCharCode(unit) + after);

/** A fixture with one of its strings replaced by one holding a lone UTF-16 surrogate. */
export const loneSurrogateReview: fc.Arbitrary<Sent> = fc
  .tuple(fc.constantFrom(...admissionFixtures), fc.nat(), loneSurrogate)
  .map(([fixture, pick, text]) => {
    const review: unknown = structuredClone(fixture);
    const strings = paths(review).filter((p) => typeof valueAt(review, p) === 'string');
    const path = strings[pick % Math.max(1, strings.length)];
    if (path !== undefined) apply(review, path, { kind: 'replace', value: text });
    return sent(review);
  });

const maybe = <T>(arbitrary: fc.Arbitrary<T>): fc.Arbitrary<T | unknown> =>
  fc.oneof({ weight: 4, arbitrary }, { weight: 1, arbitrary: anyJson });

const container = maybe(
  fc.record(
    {
      name: maybe(fc.constantFrom('app', 'sidecar', '')),
      image: maybe(image),
      imagePullPolicy: maybe(fc.constantFrom('Always', 'IfNotPresent', 'Never', '')),
    },
    { requiredKeys: [] },
  ),
);

const containers = maybe(fc.array(container, { maxLength: 4 }));

const podSpec = maybe(
  fc.record(
    {
      containers,
      initContainers: containers,
      ephemeralContainers: containers,
      imagePullSecrets: maybe(fc.array(fc.record({ name: fc.constantFrom('regcred', '') }))),
    },
    { requiredKeys: [] },
  ),
);

const annotations = maybe(
  fc.dictionary(
    fc.constantFrom(
      'break-glass.image-policy.k8s.io/reason',
      'audit.image-policy.k8s.io/ticket',
      'x.image-policy.k8s.io/',
      '__proto__',
      'constructor',
    ),
    maybe(fc.string({ maxLength: 10 })),
  ),
);

const kinds: ReadonlyArray<readonly [group: string, kind: string, template: boolean]> = [
  ['', 'Pod', false],
  ['apps', 'Deployment', true],
  ['batch', 'Job', true],
  ['', 'PersistentVolumeClaim', false],
  ['', 'ConfigMap', false],
];

const requestObject = fc
  .tuple(fc.constantFrom(...kinds), podSpec, annotations)
  .map(([[, kind, template], spec, notes]) => ({
    apiVersion: 'v1',
    kind,
    metadata: { name: 'generated', namespace: 'shop', annotations: notes },
    spec: template ? { template: { metadata: { annotations: notes }, spec } } : spec,
  }));

/**
 * AdmissionReviews built from scratch: a plausible skeleton whose every field may be
 * anything; the fields a review needs are present more often than not.
 */
export const randomAdmissionReview: fc.Arbitrary<Sent> = fc
  .record(
    {
      apiVersion: maybe(fc.constantFrom(...ADMISSION_VERSIONS)),
      kind: maybe(fc.constant('AdmissionReview')),
      request: maybe(
        fc.record(
          {
            uid: maybe(fc.string({ unit: 'binary', minLength: 1, maxLength: 40 })),
            kind: maybe(
              fc
                .constantFrom(...kinds)
                .map(([group, kind]) => ({ group, version: 'v1', kind }) as unknown),
            ),
            operation: maybe(fc.constantFrom('CREATE', 'UPDATE', 'DELETE', 'CONNECT')),
            namespace: maybe(fc.constantFrom('shop', 'kube-system', 'team-a')),
            object: maybe(requestObject),
            oldObject: maybe(requestObject),
            dryRun: maybe(fc.boolean()),
          },
          { requiredKeys: ['uid', 'kind', 'operation', 'object'] },
        ),
      ),
    },
    { requiredKeys: ['apiVersion', 'kind', 'request'] },
  )
  .map(sent);

/** ImageReviews built from scratch. */
export const randomImageReview: fc.Arbitrary<Sent> = fc
  .record(
    {
      apiVersion: maybe(fc.constant('imagepolicy.k8s.io/v1alpha1')),
      kind: maybe(fc.constant('ImageReview')),
      spec: maybe(
        fc.record(
          {
            containers: maybe(
              fc.array(maybe(fc.record({ image: maybe(image) })), { maxLength: 4 }),
            ),
            annotations,
            namespace: maybe(fc.constantFrom('shop', 'kube-system', 'team-a')),
          },
          { requiredKeys: ['containers'] },
        ),
      ),
    },
    { requiredKeys: ['apiVersion', 'kind', 'spec'] },
  )
  .map(sent);
