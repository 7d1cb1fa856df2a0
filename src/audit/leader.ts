/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it:
 * the holder renews every renewMs; another replica takes the lease only once it has not
 * been renewed for leaseMs; every write carries the resourceVersion it read, so two
 * replicas never both win. A leader that cannot renew within leaseMs stops leading (the
 * audit command then exits, and its pod restarts as a follower).
 */
import { isRecord, type JsonObject } from '../shared/json.ts';
import type { Kube } from './kube.ts';

export interface LeaderOptions {
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly leaseMs?: number;
  readonly renewMs?: number;
  readonly now?: () => number;
}

const microTime = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

export class LeaderElection {
  readonly #kube: Kube;
  readonly #o: Required<LeaderOptions>;
  #timer: NodeJS.Timeout | undefined;
  #lastRenew = 0;
  /** Set by stop(): a renewal already in flight then schedules no other. */
  #stopped = false;

  constructor(kube: Kube, options: LeaderOptions) {
    this.#kube = kube;
    this.#o = { leaseMs: 15_000, renewMs: 5_000, now: Date.now, ...options };
  }

  get #path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.#o.namespace}/leases/${this.#o.name}`;
  }

  /** One attempt to take or renew the lease; true when this replica holds it now. */
  async tryAcquire(): Promise<boolean> {
    const now = this.#o.now();
    const current = await this.#kube.get(this.#path);
    const spec = {
      holderIdentity: this.#o.identity,
      leaseDurationSeconds: Math.ceil(this.#o.leaseMs / 1000),
      renewTime: microTime(now),
    };
    if (current === undefined) {
      const { status } = await this.#kube.request(
        'POST',
        `/apis/coordination.k8s.io/v1/namespaces/${this.#o.namespace}/leases`,
        {
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name: this.#o.name, namespace: this.#o.namespace },
            spec: { ...spec, acquireTime: microTime(now), leaseTransitions: 0 },
          },
        },
      );
      return this.#won(status === 201, now);
    }
    const held = isRecord(current.spec) ? current.spec : {};
    const holder = typeof held.holderIdentity === 'string' ? held.holderIdentity : '';
    const renewed = typeof held.renewTime === 'string' ? Date.parse(held.renewTime) : 0;
    const duration =
      typeof held.leaseDurationSeconds === 'number'
        ? held.leaseDurationSeconds * 1000
        : this.#o.leaseMs;
    const mine = holder === this.#o.identity;
    if (!mine && holder !== '' && renewed + duration > now) return false;
    const transitions = typeof held.leaseTransitions === 'number' ? held.leaseTransitions : 0;
    const next: JsonObject = {
      ...current,
      spec: {
        ...held,
        ...spec,
        ...(mine ? {} : { acquireTime: microTime(now), leaseTransitions: transitions + 1 }),
      },
    };
    // The resourceVersion read: a replica that wrote meanwhile makes this a 409.
    const { status } = await this.#kube.request('PUT', this.#path, { body: next });
    return this.#won(status === 200, now);
  }

  #won(won: boolean, now: number): boolean {
    if (won) this.#lastRenew = now;
    return won;
  }

  /**
   * Resolves true once this replica leads, then renews and calls lost() if it cannot; false
   * when stop() came first (nothing to lead then).
   */
  async lead(lost: () => void): Promise<boolean> {
    this.#stopped = false;
    for (;;) {
      if (this.#stopped) return false;
      if (await this.tryAcquire().catch(() => false)) break;
      await new Promise((resolve) => setTimeout(resolve, this.#o.renewMs));
    }
    const renew = async () => {
      const ok = await this.tryAcquire().catch(() => false);
      if (this.#stopped) return;
      if (!ok && this.#o.now() - this.#lastRenew > this.#o.leaseMs) {
        this.stop();
        lost();
        return;
      }
      this.#timer = setTimeout(() => void renew(), this.#o.renewMs);
    };
    this.#timer = setTimeout(() => void renew(), this.#o.renewMs);
    return true;
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
