/**
 * The audit loop against an API server that fails: a fake Kube whose lists, watches and
 * writes fail as scripted, a clock the test moves, the committed bundle judging. The e2e
 * tests (test/e2e/audit-resilience.e2e.ts) do the same against the real kube-apiserver.
 */
import test from 'ava';
import { Auditor } from '../../src/audit/auditor.ts';
import type { AuditedKind } from '../../src/audit/evaluate.ts';
import { type Kube, KubeError, type ListPage, type WatchEvent } from '../../src/audit/kube.ts';
import { AuditGaveUp, Backoff } from '../../src/audit/retry.ts';
import { PolicyEngine } from '../../src/policy/engine.ts';
import { PolicyHolder } from '../../src/policy/holder.ts';
import type { JsonObject } from '../../src/shared/json.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { committedBundle } from '../helpers/bundles.ts';
import { LogCapture } from '../helpers/gateway.ts';

const PODS: readonly AuditedKind[] = [{ apiVersion: 'v1', kind: 'Pod', path: '/api/v1/pods' }];

const pod = (name: string, image: string): JsonObject => ({
  metadata: { name, namespace: 'shop', uid: `uid-${name}`, resourceVersion: '7' },
  spec: { containers: [{ name: 'c', image, imagePullPolicy: 'Always' }] },
  status: { phase: 'Running' },
});

type Fault = () => Error | undefined;
const http = (status: number) => () => new KubeError(`HTTP ${status}`, status);

/** The little of Kube the auditor uses; each call takes the next scripted fault, if any. */
class FakeKube {
  pods: JsonObject[] = [pod('api', 'quay.io/evil/miner:1')];
  listFaults: Fault[] = [];
  applyFaults: Fault[] = [];
  watchFaults: Fault[] = [];
  lists = 0;
  watches = 0;
  applied = new Map<string, JsonObject>();
  watchers: { onEvent: (e: WatchEvent) => void; done: (error: unknown) => void }[] = [];

  async list(): Promise<ListPage> {
    this.lists++;
    const fault = this.listFaults.shift()?.();
    if (fault !== undefined) throw fault;
    return { items: structuredClone(this.pods), resourceVersion: '7', continue: '' };
  }

  async watch(
    _path: string,
    _rv: string,
    onEvent: (e: WatchEvent) => void,
    done: (error: unknown) => void,
  ): Promise<() => void> {
    this.watches++;
    const fault = this.watchFaults.shift()?.();
    if (fault !== undefined) {
      done(fault);
      return () => undefined;
    }
    const watcher = { onEvent, done };
    this.watchers.push(watcher);
    return () => {
      this.watchers = this.watchers.filter((w) => w !== watcher);
      done(null);
    };
  }

  async apply(path: string, object: JsonObject): Promise<void> {
    const fault = this.applyFaults.shift()?.();
    if (fault !== undefined) throw fault;
    this.applied.set(path, object);
  }

  async delete(path: string): Promise<void> {
    this.applied.delete(path);
  }

  async request(): Promise<{ status: number; json: unknown }> {
    return { status: 200, json: { items: [] } };
  }
}

class Clock {
  ms = 1_800_000_000_000;
  now = () => this.ms;
}

async function auditorWith(kube: FakeKube, clock = new Clock(), giveUpAfterMs = 60_000) {
  const policy = new PolicyHolder();
  policy.swap(
    await PolicyEngine.create(await committedBundle(), {
      trustedRegistries: ['registry.example.com'],
    }),
    'test',
  );
  const logs = new LogCapture();
  const failures: unknown[] = [];
  const auditor = new Auditor({
    kube: kube as unknown as Kube,
    policy,
    logger: createLogger('info', logs),
    kinds: PODS,
    publishIntervalMs: 1,
    retry: { giveUpAfterMs, initialDelayMs: 1, maxDelayMs: 4, now: clock.now },
    stuckAfterMs: 600_000,
    fail: (error) => failures.push(error),
  });
  return { auditor, logs, failures, clock };
}

const until = async (what: string, condition: () => boolean) => {
  for (let i = 0; i < 2000 && !condition(); i++) await new Promise((r) => setTimeout(r, 2));
  if (!condition()) throw new Error(`never: ${what}`);
};

test('a 500 on the first list is retried, then the audit completes', async (t) => {
  const kube = new FakeKube();
  kube.listFaults = [http(500), http(500)];
  const { auditor, logs, failures } = await auditorWith(kube);
  t.teardown(() => auditor.stop());
  await auditor.run({ publish: true });
  t.is(kube.lists, 3);
  t.is(auditor.store.summary().fail, 1);
  const retries = logs.messages('audit: API call failed; retrying');
  t.deepEqual(
    retries.map((l) => [l.operation, l.attempt]),
    [
      ['list Pod', 1],
      ['list Pod', 2],
    ],
  );
  t.is(logs.messages('audit: the API server answers again').length, 1);
  t.deepEqual(failures, []);
  t.true(auditor.health().alive);
  await until('the report', () =>
    kube.applied.has('/apis/wgpolicyk8s.io/v1alpha2/namespaces/shop/policyreports/imagegate'),
  );
});

test('a list that keeps failing past the give-up time ends the audit (AuditGaveUp)', async (t) => {
  const kube = new FakeKube();
  const clock = new Clock();
  // Each failure moves the clock a minute: the seventh is past five minutes after the first.
  kube.listFaults = Array.from({ length: 100 }, () => () => {
    clock.ms += 60_000;
    return new TypeError('fetch failed');
  });
  const { auditor } = await auditorWith(kube, clock, 300_000);
  const error = await t.throwsAsync(() => auditor.run({ publish: true }), {
    instanceOf: AuditGaveUp,
  });
  t.regex(error?.message ?? '', /^list Pod: failing for \d+ s, giving up: fetch failed/);
  t.is(kube.lists, 7);
});

test('a re-audit that cannot list ends the audit through fail(), no unhandled rejection', async (t) => {
  const kube = new FakeKube();
  const clock = new Clock();
  const { auditor, failures } = await auditorWith(kube, clock, 1000);
  t.teardown(() => auditor.stop());
  await auditor.run({ publish: false });
  kube.listFaults = Array.from({ length: 100 }, () => () => {
    clock.ms += 600;
    return http(503)();
  });
  auditor.reaudit();
  await until('fail()', () => failures.length > 0);
  t.true(failures[0] instanceof AuditGaveUp);
  t.false(auditor.health().alive, 'a stopped audit is not alive');
});

test('a watch that errors is resumed with backoff; a 410 re-lists the kind', async (t) => {
  const kube = new FakeKube();
  const { auditor, logs } = await auditorWith(kube);
  t.teardown(() => auditor.stop());
  kube.watchFaults = [() => new TypeError('fetch failed'), http(500)];
  await auditor.run({ publish: false });
  await until('a watch', () => kube.watchers.length === 1);
  t.is(kube.watches, 3);
  t.deepEqual(
    logs.messages('audit: API call failed; retrying').map((l) => l.operation),
    ['watch Pod', 'watch Pod'],
  );
  // The server says the resourceVersion is too old: the kind is listed again.
  kube.pods.push(pod('late', 'quay.io/evil/miner:2'));
  const lists = kube.lists;
  kube.watchers[0]?.onEvent({ type: 'ERROR', object: { code: 410 } });
  await until('a re-list', () => kube.lists === lists + 1 && kube.watchers.length === 1);
  t.is(auditor.store.size, 2);
});

test('a watch the client ends for silence resumes at once, without a warning', async (t) => {
  const kube = new FakeKube();
  const { auditor, logs } = await auditorWith(kube);
  t.teardown(() => auditor.stop());
  await auditor.run({ publish: false });
  await until('a watch', () => kube.watchers.length === 1);
  const timeout = new DOMException('The operation was aborted due to timeout', 'TimeoutError');
  kube.watchers.pop()?.done(timeout);
  await until('the next watch', () => kube.watchers.length === 1);
  t.is(logs.messages('audit: API call failed; retrying').length, 0);
});

test('a report the API server refuses is written again until it is taken', async (t) => {
  const kube = new FakeKube();
  kube.applyFaults = [http(500), http(429)];
  const { auditor, logs, failures } = await auditorWith(kube);
  t.teardown(() => auditor.stop());
  await auditor.run({ publish: true });
  await until('the report', () =>
    kube.applied.has('/apis/wgpolicyk8s.io/v1alpha2/namespaces/shop/policyreports/imagegate'),
  );
  t.is(logs.messages('PolicyReport not published').length, 1);
  t.true(logs.messages('audit: API call failed; retrying').length >= 1);
  t.deepEqual(failures, []);
});

test('no progress for longer than stuckAfterMs: health() says the loop is stuck', async (t) => {
  const kube = new FakeKube();
  const clock = new Clock();
  const { auditor } = await auditorWith(kube, clock);
  t.teardown(() => auditor.stop());
  await auditor.run({ publish: false });
  t.true(auditor.health().alive);
  clock.ms += 600_001;
  t.false(auditor.health().alive);
  // An event is progress again.
  await until('a watch', () => kube.watchers.length === 1);
  kube.watchers[0]?.onEvent({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '9' } } });
  t.true(auditor.health().alive);
});

test('backoff grows to its ceiling, jittered within each step', (t) => {
  const low = new Backoff(100, 1000, () => 0);
  const high = new Backoff(100, 1000, () => 0.999);
  const lows = Array.from({ length: 6 }, () => low.next());
  const highs = Array.from({ length: 6 }, () => high.next());
  t.deepEqual(lows, [50, 100, 200, 400, 500, 500]);
  t.deepEqual(highs, [100, 200, 400, 800, 1000, 1000]);
  low.reset();
  t.is(low.next(), 50);
});
