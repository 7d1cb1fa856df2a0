/**
 * maxImages: a review's images are counted before its policy input is built, and a review
 * over the bound is refused (400 inside the review) without being evaluated.
 */
import test from 'ava';
import { DEFAULT_MAX_IMAGES } from '../../src/policy/engine.ts';
import type { JsonObject } from '../../src/shared/json.ts';
import { admissionAnswer, gatewaysByConfig, record, type TestGateway } from '../helpers/gateway.ts';
import { imageReview, podReview, TRUSTED } from '../robustness/hostile-json.ts';

const gateway = gatewaysByConfig();
const SMALL = 'maxImages: 3\n';

const trusted = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ name: `c${i}`, image: `${TRUSTED}-${i}` }));

/** The metric line's value, 0 when the series does not exist yet. */
async function metric(gw: TestGateway, line: string): Promise<number> {
  const text = (await gw.health('/metrics')).text;
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? 0 : Number(found.split(' ')[1]);
}

const refusedInside = async (
  t: import('ava').ExecutionContext,
  gw: TestGateway,
  path: string,
  review: JsonObject,
  images: number,
  max: number,
) => {
  const answer = admissionAnswer(await gw.post(path, review));
  t.false(answer.response.allowed);
  const status = record(answer.response.status, 'status');
  t.is(status.code, 400);
  t.is(
    status.message,
    `imagegate: the object has ${images} images; a review may have at most ${max} (maxImages)`,
  );
};

test.serial(
  'over maxImages: refused inside the review on both webhooks, never evaluated',
  async (t) => {
    // Its own configuration, so no other test moves these counters meanwhile.
    const gw = await gateway(`${SMALL}# metrics\n`);
    const series = [
      'imagegate_evaluation_duration_seconds_count{entrypoint="validate"}',
      'imagegate_evaluation_duration_seconds_count{entrypoint="mutate"}',
      'imagegate_limit_refusals_total{endpoint="validate",limit="images"}',
      'imagegate_limit_refusals_total{endpoint="mutate",limit="images"}',
      'imagegate_requests_total{endpoint="validate",outcome="bad_request"}',
    ];
    const before = await Promise.all(series.map((line) => metric(gw, line)));
    await refusedInside(t, gw, '/v1/validate', podReview(trusted(4)), 4, 3);
    await refusedInside(t, gw, '/v1/mutate', podReview(trusted(4)), 4, 3);
    const after = await Promise.all(series.map((line) => metric(gw, line)));
    t.deepEqual(
      after.map((value, i) => value - (before[i] ?? 0)),
      [0, 0, 1, 1, 1],
      'never evaluated; counted as a limit refusal and a bad request',
    );
    // At the bound, an ordinary decision.
    t.true(admissionAnswer(await gw.post('/v1/validate', podReview(trusted(3)))).response.allowed);
  },
);

test('over maxImages: image volumes, init containers and the old object count', async (t) => {
  const gw = await gateway(SMALL);
  const volumes = podReview(trusted(2));
  const spec = record(record(record(volumes.request, 'request').object, 'object').spec, 'spec');
  spec.initContainers = [{ name: 'init', image: TRUSTED }];
  spec.volumes = [
    { name: 'v', image: { reference: TRUSTED } },
    { name: 'e', emptyDir: {} },
  ];
  await refusedInside(t, gw, '/v1/validate', volumes, 4, 3);
  // An UPDATE walks the old object too: four images there, one in the new one.
  const old = record(podReview(trusted(4)).request, 'request').object;
  const update = podReview(trusted(1), { operation: 'UPDATE', oldObject: old });
  await refusedInside(t, gw, '/v1/validate', update, 4, 3);
});

test('over maxImages: an ImageReview is refused with the reason', async (t) => {
  const gw = await gateway(SMALL);
  const result = await gw.post(
    '/v1/imagereview',
    imageReview([TRUSTED, TRUSTED, TRUSTED, TRUSTED]),
  );
  t.is(result.status, 200);
  t.deepEqual(record(result.body, 'body').status, {
    allowed: false,
    reason: 'imagegate: the object has 4 images; a review may have at most 3 (maxImages)',
  });
});

// The hostile body of the issue: 100,000 empty containers in 300 KB took the process to a
// 510 MB peak; 1.39 M in 4 MiB to 2.2 GB, blocking the event loop for seconds.
test('the default bound refuses 100,000 empty containers before building anything', async (t) => {
  const gw = await gateway();
  const review = podReview([]);
  const spec = record(record(record(review.request, 'request').object, 'object').spec, 'spec');
  spec.containers = Array.from({ length: 100_000 }, () => ({}));
  await refusedInside(t, gw, '/v1/validate', review, 100_000, DEFAULT_MAX_IMAGES);
});
