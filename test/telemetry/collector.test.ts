/**
 * Decision logs and status to a collector written to OPA's documented APIs: OPA's event
 * format (one event per review, the decision id of the log line), labels naming the
 * gateway, gzip JSON batches, never the object's secrets; status with the active revision
 * and errors; failed uploads retried until delivered once; a bounded buffer whose drops are
 * counted.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import type { CollectorSettings } from '../../src/server/collector.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { CollectorClient } from '../../src/telemetry/collector-client.ts';
import { DecisionLog } from '../../src/telemetry/decision-log.ts';
import { startCollector } from '../helpers/collector.ts';
import { podReview } from '../helpers/fleet.ts';
import {
  admissionAnswer,
  freePort,
  poll,
  record,
  startTestGateway,
  type Teardown,
  tempDir,
} from '../helpers/gateway.ts';

const SECRET = 'hunter2-do-not-ship';

function settings(url: string, extra: Partial<CollectorSettings> = {}): CollectorSettings {
  return {
    url,
    caFiles: [],
    timeoutMs: 2_000,
    labels: { cluster: 'prod-eu-1' },
    decisionLogs: {
      intervalMs: 100,
      maxBackoffMs: 300,
      maxBufferedEvents: 100,
      maxBatchBytes: 4096,
    },
    statusIntervalMs: 200,
    ...extra,
  };
}

/** A pod review carrying a secret where a careless logger would find it. */
function leakyReview(image: string): unknown {
  const review = record(podReview(image), 'review');
  const object = record(record(review.request, 'request').object, 'object');
  record(object.metadata, 'metadata').annotations = { 'example.com/token': SECRET };
  const [container] = (record(object.spec, 'spec').containers as Record<string, unknown>[]) ?? [];
  if (container !== undefined) container.env = [{ name: 'PASSWORD', value: SECRET }];
  record(object.spec, 'spec').imagePullSecrets = [{ name: SECRET }];
  return review;
}

async function tokenFile(t: Teardown, token: string): Promise<string> {
  const path = join(await tempDir(t, 'imagegate-token-'), 'token');
  await writeFile(path, token);
  return path;
}

test('at --log-level warn the collector still gets every decision, whole', async (t) => {
  const collector = await startCollector(t);
  const gateway = await startTestGateway(t, {
    collector: settings(collector.url),
    logLevel: 'warn',
  });
  admissionAnswer(await gateway.post('/v1/validate', leakyReview('quay.io/evil/miner:1')));
  await poll(async () => (collector.events.length >= 1 ? true : undefined), 'one event');
  t.deepEqual(gateway.logs.messages('decision'), [], 'no decision line in the log at warn');
  t.like(collector.events[0], {
    path: 'imagegate/validate/decision',
    input: { kind: 'Pod', namespace: 'shop', images: ['quay.io/evil/miner:1'] },
    result: { allowed: false },
  });
  t.regex(JSON.stringify(collector.events[0]?.result), /quay\.io\/evil\/miner/);
});

test('decision events in OPA format, gzip batches, labels, never a secret', async (t) => {
  const collector = await startCollector(t);
  const gateway = await startTestGateway(t, {
    collector: settings(collector.url, { tokenFile: await tokenFile(t, 'collector-token') }),
  });
  const images = ['registry.example.com/shop/web:1.0', 'quay.io/evil/miner:1', 'nginx'];
  for (const image of images) {
    admissionAnswer(await gateway.post('/v1/validate', leakyReview(image)));
  }
  admissionAnswer(await gateway.post('/v1/mutate', leakyReview(images[0] ?? '')));
  await poll(async () => (collector.events.length >= 4 ? true : undefined), 'four events');
  t.deepEqual(collector.violations, []);
  t.is(collector.events.length, 4, 'one event per review, none twice');

  const lines = gateway.logs.messages('decision');
  for (const [i, event] of collector.events.entries()) {
    t.is(event.decision_id, lines[i]?.decisionId, 'the decision id of the log line');
    t.like(event, {
      labels: { cluster: 'prod-eu-1', app: 'imagegate' },
      bundles: { imagegate: { revision: lines[i]?.revision } },
    });
    t.regex(String(event.timestamp), /^\d{4}-\d\d-\d\dT/);
    t.true(typeof record(event.metrics, 'metrics').timer_server_handler_ns === 'number');
  }
  const [trusted, untrusted] = collector.events;
  t.like(trusted, {
    path: 'imagegate/validate/decision',
    input: { kind: 'Pod', namespace: 'shop', operation: 'CREATE', images: [images[0]] },
    result: { allowed: true },
  });
  t.like(untrusted, { result: { allowed: false } });
  t.regex(JSON.stringify(record(untrusted?.result, 'result').reasons), /quay\.io\/evil\/miner/);
  t.is(collector.events[3]?.path, 'imagegate/mutate/decision');

  for (const body of collector.raw)
    t.false(body.includes(SECRET), 'no secret reaches the collector');
  t.true(collector.authorizations.every((a) => a === 'Bearer collector-token'));
  // Counted when the collector's answer comes back, which may be after its events arrived.
  const sent = async () => (await gateway.gateway.metrics.decisionLogsSent.get()).values[0]?.value;
  await poll(async () => ((await sent()) === 4 ? true : undefined), 'four events counted as sent');
  t.is(await sent(), 4);
});

test('status: the active revision and labels at start, and the error of a failing source', async (t) => {
  const collector = await startCollector(t);
  const gateway = await startTestGateway(t, { collector: settings(collector.url) });
  const revision = gateway.gateway.policy.engine?.revision;
  const report = await poll(
    async () =>
      collector.reports.find(
        (r) =>
          record(record(r.bundles, 'bundles').imagegate, 'bundle').active_revision === revision,
      ),
    'a report of the revision in service',
  );
  t.like(report, {
    labels: { cluster: 'prod-eu-1', app: 'imagegate' },
    bundles: {
      imagegate: { name: 'imagegate', active_revision: gateway.gateway.policy.engine?.revision },
    },
    plugins: { bundle: { state: 'OK' }, status: { state: 'OK' }, decision_logs: { state: 'OK' } },
  });
  t.truthy(
    record(record(report.bundles, 'bundles').imagegate, 'bundle').last_successful_activation,
  );
  const count = collector.reports.length;
  await poll(
    async () => (collector.reports.length >= count + 2 ? true : undefined),
    'periodic reports',
  );

  // A gateway whose bundle service is down says so, and that it has no policy.
  const failing = await startCollector(t);
  await startTestGateway(t, {
    bundle: `https://127.0.0.1:${await freePort()}/bundles/imagegate.tar.gz`,
    remote: {
      timing: { intervalMs: 100, maxBackoffMs: 200 },
      service: { timeoutMs: 500, longPollSeconds: 0, caFiles: [] },
      artifactKeys: [],
    },
    collector: settings(failing.url),
  });
  const down = await poll(
    async () =>
      failing.reports.find((r) => record(record(r.bundles, 'bundles').imagegate, 'b').code),
    'a report of the failing source',
  );
  t.like(down, {
    plugins: { bundle: { state: 'NOT_READY' } },
    bundles: { imagegate: { code: 'bundle_error' } },
  });
  t.regex(String(record(record(down.bundles, 'bundles').imagegate, 'b').message), /unreachable/);
});

test('a collector that fails: batches retried with backoff until each event arrives once', async (t) => {
  const collector = await startCollector(t);
  collector.fault = '500';
  const gateway = await startTestGateway(t, { collector: settings(collector.url) });
  for (let i = 0; i < 5; i++) {
    admissionAnswer(await gateway.post('/v1/validate', podReview(`registry.example.com/app:${i}`)));
  }
  const uploads = gateway.gateway.metrics.collectorUploads;
  await poll(
    async () =>
      ((await uploads.get()).values.find(
        (v) => v.labels.api === 'logs' && v.labels.result === 'error',
      )?.value ?? 0) >= 3 || undefined,
    'three failed uploads',
  );
  collector.fault = 'reset';
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.is(collector.events.length, 0);
  collector.fault = 'none';
  await poll(async () => (collector.events.length >= 5 ? true : undefined), 'the events, at last', {
    tries: 100,
    everyMs: 100,
  });
  await new Promise((resolve) => setTimeout(resolve, 400));
  const ids = collector.events.map((e) => e.decision_id);
  t.is(ids.length, 5);
  t.is(new Set(ids).size, 5, 'none twice');
  t.is((await gateway.gateway.metrics.decisionLogsDropped.get()).values.length, 0, 'none lost');
});

test('the buffer is bounded: the oldest events are dropped and counted', async (t) => {
  const collector = await startCollector(t);
  collector.fault = '500';
  const dropped: Record<string, number> = {};
  const client = new CollectorClient({ url: collector.url, timeoutMs: 1_000 });
  t.teardown(() => client.close());
  const log = new DecisionLog({
    client,
    labels: { cluster: 'test' },
    options: {
      intervalMs: 60_000,
      maxBackoffMs: 60_000,
      maxBufferedEvents: 5,
      maxBatchBytes: 2048,
    },
    logger: createLogger('silent'),
    observe: {
      sent: () => undefined,
      dropped: (reason, n) => {
        dropped[reason] = (dropped[reason] ?? 0) + n;
      },
      buffered: () => undefined,
      upload: () => undefined,
    },
  });
  for (let i = 0; i < 8; i++)
    log.record({ decisionId: `d${i}`, endpoint: 'validate', allowed: true });
  log.record({ decisionId: 'huge', endpoint: 'validate', reasons: ['x'.repeat(4096)] });
  t.deepEqual(dropped, { buffer_full: 3, too_large: 1 });
  await log.flush();
  t.is(collector.events.length, 0);
  collector.fault = 'none';
  await log.close();
  t.deepEqual(
    collector.events.map((e) => e.decision_id),
    ['d3', 'd4', 'd5', 'd6', 'd7'],
  );
  t.true(collector.raw.length >= 2, 'more than one batch within 2 KiB each');
});
