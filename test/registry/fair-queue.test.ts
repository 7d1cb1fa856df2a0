/**
 * A registry's connection slots (src/registry/fair-queue.ts), driven directly: tasks that
 * finish only when the test says, so who holds a slot is observed, not timed.
 */
import test from 'ava';
import { FairQueue, type Flow } from '../../src/registry/fair-queue.ts';

/** A task that runs until `finish()`; `started` tells whether it got its slot. */
function task(queue: FairQueue, flow: Flow, signal = new AbortController().signal) {
  let finish: () => void = () => undefined;
  const state = { started: false, done: undefined as Promise<void> | undefined };
  state.done = queue.run(flow, signal, () => {
    state.started = true;
    return new Promise<void>((resolve) => {
      finish = resolve;
    });
  });
  return {
    get started() {
      return state.started;
    },
    finish: async () => {
      finish();
      await state.done;
    },
  };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

test("one tenant's flood leaves a quarter of the slots to tenants holding none", async (t) => {
  const queue = new FairQueue(8);
  const ci: Flow = { tenant: 'ci' };
  const flood = Array.from({ length: 100 }, () => task(queue, ci));
  await settle();
  t.is(flood.filter((f) => f.started).length, 6, 'the flood holds 8 - 2 slots');
  t.is(queue.queued, 94);
  // Another tenant's first lookups start at once, with no answer of the flood's awaited.
  const shop = task(queue, { tenant: 'shop' });
  const web = task(queue, { tenant: 'web' });
  await settle();
  t.true(shop.started);
  t.true(web.started);
  t.is(queue.active, 8);
  // A tenant that holds a slot already waits its turn like the flood.
  const shopAgain = task(queue, { tenant: 'shop' });
  await settle();
  t.false(shopAgain.started);
  // When the kept slots free up, the flood does not take them back.
  await shop.finish();
  await settle();
  t.true(shopAgain.started, 'shop was next in turn');
  await web.finish();
  await settle();
  t.is(flood.filter((f) => f.started).length, 6);
  t.is(queue.active, 7);
  // As its own tasks finish, the flood takes all but the kept slots and shop's one.
  for (const f of flood.slice(0, 6)) await f.finish();
  await settle();
  t.is(flood.filter((f) => f.started).length, 6 + 5);
  await shopAgain.finish();
});

test('with fewer than four slots nothing is kept back', async (t) => {
  const queue = new FairQueue(3);
  const flood = Array.from({ length: 5 }, () => task(queue, { tenant: 'ci' }));
  await settle();
  t.is(flood.filter((f) => f.started).length, 3);
  const shop = task(queue, { tenant: 'shop' });
  await settle();
  t.false(shop.started);
  // Turns alternate between the tenants waiting: the flood's first, then shop's.
  await flood[0]?.finish();
  await settle();
  t.false(shop.started);
  await flood[1]?.finish();
  await settle();
  t.true(shop.started);
});

test('a waiting request whose review runs out of time leaves the queue unsent', async (t) => {
  const queue = new FairQueue(4);
  const held = Array.from({ length: 3 }, () => task(queue, { tenant: 'ci' }));
  const controller = new AbortController();
  let ran = false;
  const waiting = queue.run({ tenant: 'ci' }, controller.signal, async () => {
    ran = true;
  });
  await settle();
  t.is(queue.queued, 1);
  controller.abort();
  await t.throwsAsync(waiting, { message: 'out of time for this review' });
  t.is(queue.queued, 0);
  for (const h of held) await h.finish();
  t.false(ran);
});
