/**
 * A decision line is built only for a reader (server/review-core.ts `decisionLines`): with
 * the log above `info` and no collector, an allowed or denied review's fields are not built
 * nor copied from its thread; the answer is the same, and a failure keeps its fields.
 */
import test from 'ava';
import { PolicyEngine } from '../../src/policy/engine.ts';
import { reviewBytes } from '../../src/server/review-core.ts';
import { committedBundle } from '../helpers/bundles.ts';
import { podWithImages } from '../helpers/fixtures.ts';

const CONFIG = { trustedRegistries: ['registry.example.com'] };
const bytes = (images: readonly string[]) =>
  new TextEncoder().encode(JSON.stringify(podWithImages(images)));

test('without a reader a decision has no fields, and the same answer', async (t) => {
  const engine = await PolicyEngine.create(await committedBundle(), CONFIG);
  for (const images of [['registry.example.com/shop/app:1.0'], ['quay.io/evil/miner:1']]) {
    const read = await reviewBytes(engine, 'validate', bytes(images), undefined);
    const unread = await reviewBytes(engine, 'validate', bytes(images), undefined, {
      decisionLines: false,
    });
    t.is(unread.body, read.body);
    t.is(unread.outcome, read.outcome);
    t.like(read.log.fields, { images, namespace: 'shop' }, 'read: the line names the images');
    t.deepEqual(unread.log, { level: 'info', message: 'decision', fields: {} });
  }
});

test('a failure keeps its fields without a reader: it is logged at error', async (t) => {
  const result = await reviewBytes(
    undefined,
    'validate',
    bytes(['registry.example.com/shop/app:1.0']),
    undefined,
    { decisionLines: false },
  );
  t.is(result.outcome, 'error');
  t.is(result.log.level, 'error');
  t.like(result.log.fields, { allowed: false, error: 'no policy is loaded' });
});
