/**
 * LeaderElection against an in-memory Lease store that keeps resourceVersions as the API
 * server does (a write with a stale one is a 409), optionally answering slowly. The e2e
 * test runs the same against the real API server.
 */
import test from 'ava';
import type { Kube } from '../../src/audit/kube.ts';
import { LeaderElection } from '../../src/audit/leader.ts';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

class Leases {
  lease: JsonObject | undefined;
  requests = 0;
  delayMs = 0;
  #version = 0;

  async get(): Promise<JsonObject | undefined> {
    this.requests++;
    await sleep(this.delayMs);
    return this.lease === undefined ? undefined : structuredClone(this.lease);
  }

  async request(method: string, _path: string, { body }: { body?: unknown } = {}) {
    this.requests++;
    await sleep(this.delayMs);
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
const election = (leases: Leases, identity: string) =>
  new LeaderElection(leases as unknown as Kube, { ...options, identity });

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
