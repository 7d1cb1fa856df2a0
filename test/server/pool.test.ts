/**
 * Evaluation off the event loop (server/pool/): a costly review no longer holds the
 * gateway — health probes and other reviews are answered while it evaluates — a policy
 * reaches every thread or none, and a thread that dies fails its review closed and is
 * replaced with the policy in service.
 */
import test from 'ava';
import { loadPolicy } from '../../src/policy/loader.ts';
import { EvaluationPool } from '../../src/server/pool/evaluation-pool.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { defaultBundlePath } from '../../src/shared/paths.ts';
import { loadJsonObject } from '../helpers/fixtures.ts';
import { admissionAnswer, LogCapture, record, startTestGateway } from '../helpers/gateway.ts';

/** The captured Pod CREATE with `count` containers of one trusted image. */
function podWith(count: number, uid = '3f0e2c7a-4b1d-4c8e-9a51-0d5f6b7c8e90') {
  const review = structuredClone(loadJsonObject('admission', 'pod-create-v1'));
  const request = record(review.request, 'request');
  request.uid = uid;
  const spec = record(record(request.object, 'object').spec, 'spec');
  spec.containers = Array.from({ length: count }, (_, i) => ({
    name: `c${i}`,
    image: `registry.example.com/shop/app-${i}:1.0`,
    imagePullPolicy: 'Always',
  }));
  delete spec.initContainers;
  return review;
}

const bytes = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

test('a costly review does not hold the event loop: health and a small review answer first', async (t) => {
  // The default pool; with evaluationThreads: 0 (the event loop) the costly one answers first.
  const gateway = await startTestGateway(t);
  const answered: string[] = [];
  // About 20,000 containers: seconds of evaluation on one thread.
  const costly = gateway.post('/v1/validate', podWith(20_000)).then((r) => {
    answered.push('costly');
    return r;
  });
  // Give the costly one a head start into its thread.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const health = gateway.health('/healthz').then((r) => {
    answered.push('healthz');
    return r;
  });
  const small = gateway
    .post('/v1/validate', podWith(1, '11111111-4b1d-4c8e-9a51-0d5f6b7c8e90'))
    .then((r) => {
      answered.push('small');
      return r;
    });
  const [costlyResult, healthResult, smallResult] = await Promise.all([costly, health, small]);
  t.is(healthResult.status, 200);
  t.true(admissionAnswer(smallResult).response.allowed === true);
  t.is(admissionAnswer(costlyResult).response.uid, '3f0e2c7a-4b1d-4c8e-9a51-0d5f6b7c8e90');
  t.deepEqual(answered.slice(0, 2).sort(), ['healthz', 'small']);
  t.is(answered[2], 'costly');
});

test('a policy reaches every thread or none: a refused one leaves the old one serving', async (t) => {
  const pool = new EvaluationPool(2, async () => ({ facts: new Map() }), createLogger('silent'));
  t.teardown(() => pool.close());
  const good = await loadPolicy({ bundle: defaultBundlePath() });
  (await pool.prepare(good.snapshot))();
  const broken = {
    ...good.snapshot,
    bundle: { ...good.snapshot.bundle, wasm: new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 9]) },
  };
  await t.throwsAsync(pool.prepare(broken), {
    message: /^an evaluation thread refused the policy: bundle .* policy\.wasm does not load/,
  });
  // Both threads still judge with the policy committed before.
  for (let i = 0; i < 4; i++) {
    const result = await pool.review('validate', bytes(podWith(1)));
    t.is(result.revision, good.engine.revision);
    t.is(JSON.parse(result.body).response.allowed, true);
  }
});

test('a thread that dies fails its review closed and is replaced with the policy in service', async (t) => {
  const logs = new LogCapture();
  // A small heap: a review of a few MiB of JSON kills the thread, as a runaway one would.
  const pool = new EvaluationPool(
    1,
    async () => ({ facts: new Map() }),
    createLogger('info', logs),
    {
      maxOldGenerationSizeMb: 12,
      maxYoungGenerationSizeMb: 4,
    },
  );
  t.teardown(() => pool.close());
  const loaded = await loadPolicy({ bundle: defaultBundlePath() });
  (await pool.prepare(loaded.snapshot))();
  const lost = await pool.review('validate', bytes(podWith(30_000)));
  t.is(lost.status, 500);
  t.is(lost.body, '{"error":"internal error"}');
  t.regex(String(lost.log.fields.error), /^evaluation thread exited/);
  // The replacement serves the same policy.
  let served: string | undefined;
  for (let i = 0; i < 50 && served === undefined; i++) {
    const result = await pool.review('validate', bytes(podWith(1)));
    if (result.status === 200 && result.revision !== '') served = result.revision;
    else await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.is(served, loaded.engine.revision);
  t.true(logs.text.includes('evaluation thread exited; starting another'));
});
