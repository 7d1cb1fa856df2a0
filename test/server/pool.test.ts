/**
 * Evaluation off the event loop (server/pool/): a costly review no longer holds the
 * gateway — health probes and other reviews are answered while it evaluates — a policy
 * reaches every thread or none, and a thread that dies fails its review closed and is
 * replaced with the policy in service.
 */
import test, { type ExecutionContext } from 'ava';
import { loadPolicy } from '../../src/policy/loader.ts';
import { EvaluationPool } from '../../src/server/pool/evaluation-pool.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { defaultBundlePath } from '../../src/shared/paths.ts';
import { loadJsonObject } from '../helpers/fixtures.ts';
import { admissionAnswer, LogCapture, record, startTestGateway } from '../helpers/gateway.ts';

/** The captured Pod CREATE with `count` containers, of trusted images unless `image` says. */
function podWith(
  count: number,
  uid = '3f0e2c7a-4b1d-4c8e-9a51-0d5f6b7c8e90',
  image = (i: number) => `registry.example.com/shop/app-${i}:1.0`,
) {
  const review = structuredClone(loadJsonObject('admission', 'pod-create-v1'));
  const request = record(review.request, 'request');
  request.uid = uid;
  const spec = record(record(request.object, 'object').spec, 'spec');
  spec.containers = Array.from({ length: count }, (_, i) => ({
    name: `c${i}`,
    image: image(i),
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
    { limits: { maxOldGenerationSizeMb: 12, maxYoungGenerationSizeMb: 4 } },
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

/** 3,000 untrusted images: about 40 MiB of wasm memory for validate (docs/sizing.md). */
const untrusted = (i: number) => `evil.example.net/team-${i}/app:1.0`;
const MiB = 2 ** 20;

/** A pool whose threads' engines get 32 MiB, too little for the review above. */
async function smallPool(t: ExecutionContext, laneMemoryBytes: number, laneImages?: number) {
  const logs = new LogCapture();
  const pool = new EvaluationPool(
    1,
    async () => ({ facts: new Map() }),
    createLogger('info', logs),
    {
      memoryBytes: 32 * MiB,
      laneMemoryBytes,
      ...(laneImages === undefined ? {} : { laneImages }),
    },
  );
  t.teardown(() => pool.close());
  const loaded = await loadPolicy({ bundle: defaultBundlePath() });
  (await pool.prepare(loaded.snapshot))();
  return { pool, logs, revision: loaded.engine.revision };
}

test('a review a thread runs out of memory for is judged by the large lane, which then stops', async (t) => {
  const { pool, revision } = await smallPool(t, 256 * MiB);
  const result = await pool.review('validate', bytes(podWith(3000, undefined, untrusted)));
  t.is(result.status, 200);
  t.is(result.outcome, 'denied');
  t.is(result.revision, revision);
  const { response } = JSON.parse(result.body);
  t.false(response.allowed);
  t.is(response.status.code, 403);
  t.regex(response.status.message, /evil\.example\.net\/team-0\/app:1\.0/);
  t.regex(response.status.message, /and \d+ more/);
  // The lane's thread is stopped once it has nothing left: its memory goes back.
  for (let i = 0; i < 50 && pool.laneRunning; i++) await new Promise((r) => setTimeout(r, 20));
  t.false(pool.laneRunning);
  // The threads go on with small reviews, and the lane comes back for the next large one.
  t.is(JSON.parse((await pool.review('validate', bytes(podWith(1)))).body).response.allowed, true);
  const again = await pool.review('mutate', bytes(podWith(3000, undefined, untrusted)));
  t.is(again.status, 200);
  t.not(again.outcome, 'error');
});

test('without the large lane, or past its memory too, the review fails closed with why', async (t) => {
  for (const [lane, limit, count] of [
    [0, 32, 3000],
    [40 * MiB, 40, 8000],
  ] as const) {
    const { pool, logs } = await smallPool(t, lane);
    const result = await pool.review('validate', bytes(podWith(count, undefined, untrusted)));
    t.is(result.status, 200);
    t.is(result.outcome, 'error');
    const { response } = JSON.parse(result.body);
    t.false(response.allowed);
    t.is(response.status.code, 500);
    t.regex(
      response.status.message,
      new RegExp(`needs more than the policy's ${limit} MiB of memory`),
    );
    t.false(logs.text.includes('evaluation thread exited'));
  }
});

test('reviews queue for the one large lane; small ones are not held behind them', async (t) => {
  const { pool } = await smallPool(t, 256 * MiB);
  const answered: string[] = [];
  const large = [0, 1, 2].map((n) =>
    pool
      .review(
        'validate',
        bytes(podWith(3000, `${n}0000000-4b1d-4c8e-9a51-0d5f6b7c8e90`, untrusted)),
      )
      .then((r) => {
        answered.push(`large${n}`);
        return r;
      }),
  );
  await new Promise((resolve) => setTimeout(resolve, 300));
  const small = await pool.review('validate', bytes(podWith(1)));
  answered.push('small');
  const results = await Promise.all(large);
  t.true(JSON.parse(small.body).response.allowed);
  for (const [n, result] of results.entries()) {
    t.is(result.outcome, 'denied', `large${n}`);
    t.is(JSON.parse(result.body).response.uid, `${n}0000000-4b1d-4c8e-9a51-0d5f6b7c8e90`);
  }
  t.is(answered.indexOf('small') < answered.indexOf('large2'), true, answered.join(' '));
});

test('a review with more images than a thread takes goes to the large lane untried', async (t) => {
  // Threads of 256 MiB could judge these 8,000 images; a 40 MiB lane cannot: its answer
  // shows where the review went.
  const pool = new EvaluationPool(1, async () => ({ facts: new Map() }), createLogger('silent'), {
    laneMemoryBytes: 40 * MiB,
    laneImages: 4000,
  });
  t.teardown(() => pool.close());
  const loaded = await loadPolicy({ bundle: defaultBundlePath() });
  (await pool.prepare(loaded.snapshot))();
  const large = await pool.review('validate', bytes(podWith(8000, undefined, untrusted)));
  t.regex(
    JSON.parse(large.body).response.status.message,
    /needs more than the policy's 40 MiB of memory/,
  );
  const taken = await pool.review('validate', bytes(podWith(4000, undefined, untrusted)));
  t.is(taken.outcome, 'denied');
});

const LANE_REFUSED = /the large lane, which judges such reviews one at a time, could not take it/;

test('at most 4 reviews wait for the large lane; the others fail closed and say so', async (t) => {
  // Handed over untried (past 100 images): the lane's first start takes longer than all 8.
  const { pool, logs } = await smallPool(t, 256 * MiB, 100);
  const results = await Promise.all(
    Array.from({ length: 8 }, () =>
      pool.review('validate', bytes(podWith(3000, undefined, untrusted))),
    ),
  );
  const judged = results.filter((r) => r.outcome === 'denied');
  const refused = results.filter((r) => r.outcome === 'error');
  t.is(judged.length + refused.length, 8);
  t.true(judged.length >= 5, `${judged.length} judged`);
  t.true(refused.length >= 1, `${refused.length} refused`);
  for (const result of refused) {
    const { response } = JSON.parse(result.body);
    t.false(response.allowed);
    t.regex(response.status.message, /more than an evaluation thread judges \(100\)/);
    t.regex(response.status.message, LANE_REFUSED);
  }
  t.true(logs.text.includes('the large lane has reviews enough waiting'));
});

test('close stops the large lane and answers what waits for it, closed', async (t) => {
  const { pool } = await smallPool(t, 256 * MiB, 100);
  const pending = Array.from({ length: 3 }, () =>
    pool.review('validate', bytes(podWith(3000, undefined, untrusted))),
  );
  for (let i = 0; i < 200 && !pool.laneRunning; i++) await new Promise((r) => setTimeout(r, 10));
  t.true(pool.laneRunning);
  await pool.close();
  t.false(pool.laneRunning);
  const results = await Promise.all(pending);
  t.true(
    results.some((r) => r.outcome === 'error'),
    'what waited fails closed',
  );
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.false(pool.laneRunning, 'no lane starts after close');
});
