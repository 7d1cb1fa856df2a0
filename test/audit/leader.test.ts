/**
 * LeaderElection against an in-memory Lease store that keeps resourceVersions as the API
 * server does (a write with a stale one is a 409), optionally answering slowly. The e2e
 * test runs the same against the real API server.
 */
import test from 'ava';
import type { Kube } from '../../src/audit/kube.ts';
import { LeaderElection } from '../../src/audit/leader.ts';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { LogCapture } from '../helpers/gateway.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

class Leases {
  lease: JsonObject | undefined;
  requests = 0;
  delayMs = 0;
  /** Set: every call fails as an unreachable API server does. */
  down: Error | undefined;
  /** Set: writes are answered with this status (a 403 from RBAC, say). */
  writeStatus: number | undefined;
  #version = 0;

  async get(): Promise<JsonObject | undefined> {
    this.requests++;
    await sleep(this.delayMs);
    if (this.down !== undefined) throw this.down;
    return this.lease === undefined ? undefined : structuredClone(this.lease);
  }

  async request(method: string, _path: string, { body }: { body?: unknown } = {}) {
    this.requests++;
    await sleep(this.delayMs);
    if (this.down !== undefined) throw this.down;
    if (this.writeStatus !== undefined) {
      return { status: this.writeStatus, json: { message: 'leases is forbidden' } };
    }
    if (!isRecord(body) || !isRecord(body.metadata)) return { status: 400, json: undefined };
    const stored = isRecord(this.lease?.metadata) ? this.lease.metadata.resourceVersion : undefined;
    if (method === 'POST' ? this.lease !== undefined : body.metadata.resourceVersion !== stored) {
      return { status: 409, json: undefined };
    }
    this.#version++;
    this.lease = {
      ...body,
      metadata: { ...body.metadata, resourceVersion: String(this.#version) },
    };
    return { status: method === 'POST' ? 201 : 200, json: this.lease };
  }

  get holder(): unknown {
    return isRecord(this.lease?.spec) ? this.lease.spec.holderIdentity : undefined;
  }
}

const options = { namespace: 'audit', name: 'imagegate-audit', leaseMs: 200, renewMs: 20 };
const election = (leases: Leases, identity: string, logs?: LogCapture) =>
  new LeaderElection(leases as unknown as Kube, {
    ...options,
    identity,
    ...(logs === undefined ? {} : { logger: createLogger('info', logs) }),
  });

test('a stopped leader stops renewing, even when stopped while a renewal is in flight', async (t) => {
  const leases = new Leases();
  const a = election(leases, 'replica-a');
  await a.lead(() => t.fail('a lost the lease'));
  // Slow answers: the renewal that starts at 20 ms is still waiting when stop() comes.
  leases.delayMs = 40;
  await sleep(30);
  a.stop();
  await sleep(150);
  const settled = leases.requests;
  await sleep(150);
  t.is(leases.requests, settled, 'renewals went on after stop()');
});

test('a replica stopped while it waits to lead never leads', async (t) => {
  const leases = new Leases();
  const a = election(leases, 'replica-a');
  const b = election(leases, 'replica-b');
  t.true(await a.lead(() => t.fail('a lost the lease')));
  const waiting = b.lead(() => t.fail('b lost the lease'));
  await sleep(50);
  b.stop();
  t.false(await waiting);
  a.stop();
  await sleep(250);
  t.is(leases.holder, 'replica-a', 'b took the lease after stop()');
});

test('another replica takes the lease once the leader stops renewing', async (t) => {
  const leases = new Leases();
  const a = election(leases, 'replica-a');
  const b = election(leases, 'replica-b');
  await a.lead(() => t.fail('a lost the lease'));
  t.false(await b.tryAcquire(), 'b took a lease a renews');
  leases.delayMs = 5;
  const bLeads = b.lead(() => t.fail('b lost the lease'));
  await sleep(100);
  t.is(leases.holder, 'replica-a');
  a.stop();
  await bLeads;
  b.stop();
  t.is(leases.holder, 'replica-b');
  t.like(leases.lease, { spec: { leaseTransitions: 1 } });
});

test('a replica that cannot reach its Lease says so, and is not counted as answered', async (t) => {
  const leases = new Leases();
  leases.down = new TypeError('fetch failed');
  const logs = new LogCapture();
  const a = election(leases, 'replica-a', logs);
  const leading = a.lead(() => t.fail('a lost the lease'));
  const failed = () => logs.messages('audit lease: cannot take or renew it');
  while (failed().length < 2) await sleep(5);
  const failures = failed();
  t.like(failures[0], { attempt: 1, leading: false, error: 'fetch failed' });
  t.like(a.lastAttempt, { answered: false, leading: false, error: 'fetch failed' });
  leases.down = undefined;
  t.true(await leading);
  t.like(a.lastAttempt, { answered: true, leading: true });
  t.is(logs.messages('audit lease: the API server answers again').length, 1);
  a.stop();
});

test('a write the API server refuses (RBAC) is an error, not a lost race', async (t) => {
  const leases = new Leases();
  leases.writeStatus = 403;
  const logs = new LogCapture();
  const a = election(leases, 'replica-a', logs);
  await t.throwsAsync(() => a.tryAcquire(), { message: /leases is forbidden/ });
  const leading = a.lead(() => undefined);
  while (logs.messages('audit lease: cannot take or renew it').length === 0) await sleep(5);
  t.regex(String(logs.messages('audit lease: cannot take or renew it')[0]?.error), /forbidden/);
  a.stop();
  t.false(await leading);
});

test('a leader that releases the lease hands it over at the next attempt', async (t) => {
  const leases = new Leases();
  // A lease far longer than the test: b can only lead because a gives it back.
  const long = (identity: string) =>
    new LeaderElection(leases as unknown as Kube, { ...options, identity, leaseMs: 60_000 });
  const a = long('replica-a');
  const b = long('replica-b');
  await a.lead(() => t.fail('a lost the lease'));
  const bLeads = b.lead(() => t.fail('b lost the lease'));
  await sleep(50);
  t.is(leases.holder, 'replica-a');
  await a.release();
  t.is(leases.holder, '');
  t.true(await bLeads);
  b.stop();
  t.is(leases.holder, 'replica-b');
});
