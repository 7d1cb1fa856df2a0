/**
 * Benchmark reviews of a chosen size, grown from the real fixture
 * test/fixtures/admission/pod-create-v1.json: its four containers (two app containers and
 * two init containers: trusted, untrusted, local-registry and `:latest` images, mixed pull
 * policies) are cycled into `spec.containers` until the pod has n of them.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import { packageRoot } from '../../src/shared/paths.ts';

export const FIXTURE = join(packageRoot(), 'test', 'fixtures', 'admission', 'pod-create-v1.json');

function record(value: unknown, what: string): JsonObject {
  if (!isRecord(value)) throw new TypeError(`${what} is not an object`);
  return value;
}

function records(value: unknown, what: string): JsonObject[] {
  if (!Array.isArray(value)) throw new TypeError(`${what} is not a list`);
  return value.map((item, i) => record(item, `${what}[${i}]`));
}

export function fixtureReview(): JsonObject {
  return record(JSON.parse(readFileSync(FIXTURE, 'utf8')), 'fixture');
}

function podSpec(review: JsonObject): JsonObject {
  const request = record(review.request, 'request');
  return record(record(request.object, 'request.object').spec, 'request.object.spec');
}

/** An AdmissionReview (Pod CREATE) whose pod has exactly n containers. */
export function podReview(n: number): JsonObject {
  const review = fixtureReview();
  const spec = podSpec(review);
  const templates = [
    ...records(spec.containers, 'containers'),
    ...records(spec.initContainers, 'initContainers'),
  ];
  spec.containers = Array.from({ length: n }, (_, i) => {
    const template = templates[i % templates.length] ?? {};
    return { ...structuredClone(template), name: `${String(template.name)}-${i}` };
  });
  delete spec.initContainers;
  return review;
}

/** The ImageReview the API server's ImagePolicyWebhook sends for the same pod. */
export function imageReviewOf(review: JsonObject): JsonObject {
  const spec = podSpec(review);
  const request = record(review.request, 'request');
  const lists = ['containers', 'initContainers', 'ephemeralContainers'];
  return {
    apiVersion: 'imagepolicy.k8s.io/v1alpha1',
    kind: 'ImageReview',
    spec: {
      containers: lists.flatMap((list) =>
        spec[list] === undefined
          ? []
          : records(spec[list], list).map((container) => ({ image: container.image })),
      ),
      annotations: {},
      namespace: request.namespace,
    },
  };
}
