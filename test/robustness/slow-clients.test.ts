/**
 * Slow clients (slowloris): connections that trickle their headers or body byte by byte,
 * or never start TLS, must not hold up anyone else, and the server must cut them off.
 *
 * The cut-off is tested with short `headersTimeoutMs` / `requestTimeoutMs` (startGateway
 * options; Node checks them every connectionsCheckingInterval, which the gateway ties to
 * them). The defaults (10 s / 30 s) are checked by an opt-in test, IMAGEGATE_SLOW_TESTS=1.
 */
import { readFile } from 'node:fs/promises';
import test, { type ExecutionContext } from 'ava';
import { type ServeOptions, startGateway } from '../../src/server/gateway.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { defaultBundlePath } from '../../src/shared/paths.ts';
import {
  admissionAnswer,
  LogCapture,
  postJson,
  sharedTls,
  Teardowns,
  tempDir,
} from '../helpers/gateway.ts';
import { podReview, TRUSTED, UID } from './hostile-json.ts';
import { head, openTcp, openTls, type RawTarget, Trickle } from './raw-client.ts';

const shared = new Teardowns();
test.after.always(() => shared.run());

const review = JSON.stringify(podReview([{ name: 'web', image: TRUSTED }]));
const request = (path = '/v1/validate') =>
  head(path, { 'Content-Type': 'application/json', 'Content-Length': String(review.length) });

/** The real gateway, with extra options passed through as startGateway would take them. */
async function gateway(extra: Readonly<Record<string, number>> = {}): Promise<RawTarget> {
  const tls = await sharedTls();
  const options: ServeOptions & Readonly<Record<string, unknown>> = {
    port: 0,
    healthPort: 0,
    host: '127.0.0.1',
    bundle: defaultBundlePath(),
    config: undefined,
    tlsCert: tls.cert,
    tlsKey: tls.key,
    clientCa: undefined,
    stateDir: await tempDir(shared, 'imagegate-slow-'),
    watchIntervalMs: 60_000,
    ...extra,
  };
  const gw = await startGateway(options, createLogger('warn', new LogCapture()));
  shared.teardown(() => gw.close(100));
  return { port: gw.port, ca: await readFile(tls.ca, 'utf8') };
}

/** N connections trickling the whole request (headers first) or only the body. */
async function tricklers(target: RawTarget, everyMs: number): Promise<Trickle[]> {
  const headers = await Promise.all(
    Array.from({ length: 5 }, async () => {
      const socket = await openTls(target);
      return new Trickle(socket, Buffer.from(request() + review), everyMs);
    }),
  );
  const bodies = await Promise.all(
    Array.from({ length: 5 }, async () => {
      const socket = await openTls(target);
      socket.write(request());
      return new Trickle(socket, Buffer.from(review), everyMs);
    }),
  );
  return [...headers, ...bodies];
}

async function goodReviewMs(t: ExecutionContext, target: RawTarget): Promise<number> {
  const started = performance.now();
  const result = await postJson({ ...target, path: '/v1/validate' }, JSON.parse(review));
  t.is(admissionAnswer(result).response.uid, UID);
  return performance.now() - started;
}

test('slow and silent clients do not hold up a normal one', async (t) => {
  const target = await gateway();
  const slow = await tricklers(target, 50);
  const silentTcp = await Promise.all([1, 2, 3].map(() => openTcp(target.port)));
  const silentTls = await Promise.all([1, 2].map(() => openTls(target)));
  t.teardown(() => {
    for (const socket of [...silentTcp, ...silentTls]) socket.destroy();
  });
  const latencies: number[] = [];
  for (let i = 0; i < 20; i++) latencies.push(await goodReviewMs(t, target));
  await Promise.all(slow.map((trickle) => trickle.stop()));
  latencies.sort((a, b) => a - b);
  t.log(`median ${Math.round(latencies[10] ?? 0)} ms, max ${Math.round(latencies[19] ?? 0)} ms`);
  // Generous bounds for a loaded CI machine; held up would mean seconds.
  t.true((latencies[10] ?? Infinity) < 250, `median ${latencies[10]} ms`);
  t.true((latencies[19] ?? Infinity) < 1500, `max ${latencies[19]} ms`);
  const sent = slow.map((trickle) => trickle.received.text);
  t.true(
    sent.every((text) => text === ''),
    'no trickler got an answer yet',
  );
});

test('tricklers are cut off by headersTimeoutMs / requestTimeoutMs', async (t) => {
  const target = await gateway({ headersTimeoutMs: 1000, requestTimeoutMs: 2000 });
  const slow = await tricklers(target, 100);
  t.teardown(() => Promise.all(slow.map((trickle) => trickle.stop())).then(() => {}));
  const deadline = performance.now() + 5000;
  while (slow.some((trickle) => trickle.open) && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  for (const [index, trickle] of slow.entries()) {
    const after = trickle.received.closedAfterMs;
    t.not(after, undefined, `trickler ${index} is still open after 5 s`);
    t.true((after ?? Infinity) <= 4500, `trickler ${index} closed after ${after} ms`);
    t.regex(trickle.received.text, /^HTTP\/1\.1 408 /, `trickler ${index} is told why`);
  }
  t.true((await goodReviewMs(t, target)) < 1500);
});

const slowTest = process.env.IMAGEGATE_SLOW_TESTS === '1' ? test : test.skip;

slowTest('with the default settings, a header trickler is cut within 10-14 s', async (t) => {
  t.timeout(30_000);
  const target = await gateway();
  const trickle = new Trickle(await openTls(target), Buffer.from(request()), 500);
  t.teardown(() => trickle.stop());
  const deadline = performance.now() + 20_000;
  while (trickle.open && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const after = trickle.received.closedAfterMs;
  t.log(`closed after ${after} ms: ${JSON.stringify(trickle.received.text.slice(0, 40))}`);
  t.true(after !== undefined && after >= 10_000 && after <= 14_000);
});
