/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it:
 * the holder renews every renewMs; another replica takes the lease only once it has not
 * been renewed for leaseMs; every write carries the resourceVersion it read, so two
 * replicas never both win. A leader that cannot renew within leaseMs stops leading (the
 * audit command then exits, and its pod restarts as a follower); one that stops on its
 * own releases the lease, so a standby takes over at once (client-go's ReleaseOnCancel).
 *
 * Every attempt that does not reach an answer is logged, and the last attempt is kept for
 * /readyz: a replica that cannot read its Lease is not ready, leader or not.
 */
import { describeThrown } from '../shared/describe-thrown.ts';
import { isRecord, type JsonObject } from '../shared/json.ts';
import type { Logger } from '../shared/logger.ts';
import { type Kube, KubeError } from './kube.ts';

export interface LeaderOptions {
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly leaseMs?: number;
  readonly renewMs?: number;
  readonly now?: () => number;
  readonly logger?: Logger | undefined;
}

/** The last attempt to take or renew the lease: answered (won or not), or why not. */
export interface LeaseAttempt {
  readonly at: string;
  readonly answered: boolean;
  readonly leading: boolean;
  readonly error?: string;
}

const microTime = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

export class LeaderElection {
  readonly #kube: Kube;
  readonly #o: Required<Omit<LeaderOptions, 'logger'>>;
  readonly #logger: Logger | undefined;
  #timer: NodeJS.Timeout | undefined;
  #lastRenew = 0;
  #leading = false;
  #failures = 0;
  #last: LeaseAttempt | undefined;
  /** Set by stop(): a renewal already in flight then schedules no other. */
  #stopped = false;
  /** The renewal in flight, which release() lets finish before it writes. */
  #renewing: Promise<boolean> | undefined;

  constructor(kube: Kube, options: LeaderOptions) {
    this.#kube = kube;
    const { logger, ...rest } = options;
    this.#logger = logger;
    this.#o = { leaseMs: 15_000, renewMs: 5_000, now: Date.now, ...rest };
  }

  get #path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.#o.namespace}/leases/${this.#o.name}`;
  }

  get lastAttempt(): LeaseAttempt | undefined {
    return this.#last;
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
      const { status, json } = await this.#kube.request(
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
      return this.#won(status, 201, json, now);
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
    const { status, json } = await this.#kube.request('PUT', this.#path, { body: next });
    return this.#won(status, 200, json, now);
  }

  /** Won with the status expected; lost a race with a 409; anything else is an error. */
  #won(status: number, expected: number, json: unknown, now: number): boolean {
    if (status === expected) {
      this.#lastRenew = now;
      return true;
    }
    if (status === 409) return false;
    const message =
      isRecord(json) && typeof json.message === 'string' ? json.message : `HTTP ${status}`;
    throw new KubeError(`lease ${this.#o.namespace}/${this.#o.name}: ${message}`, status);
  }

  /** tryAcquire, recorded and logged; false when it could not reach an answer. */
  async #attempt(): Promise<boolean> {
    try {
      const won = await this.tryAcquire();
      if (this.#failures > 0) {
        this.#logger?.info(
          { lease: this.#o.name, failures: this.#failures },
          'audit lease: the API server answers again',
        );
      }
      this.#failures = 0;
      this.#last = { at: new Date().toISOString(), answered: true, leading: won };
      return won;
    } catch (error) {
      this.#failures++;
      this.#last = {
        at: new Date().toISOString(),
        answered: false,
        leading: this.#leading,
        error: describeThrown(error),
      };
      this.#logger?.warn(
        {
          lease: `${this.#o.namespace}/${this.#o.name}`,
          attempt: this.#failures,
          leading: this.#leading,
          error: describeThrown(error),
        },
        'audit lease: cannot take or renew it',
      );
      return false;
    }
  }

  /**
   * Resolves true once this replica leads, then renews and calls lost() if it cannot; false
   * when stop() came first (nothing to lead then).
   */
  async lead(lost: () => void): Promise<boolean> {
    this.#stopped = false;
    for (;;) {
      if (this.#stopped) return false;
      if (await this.#attempt()) break;
      await new Promise((resolve) => setTimeout(resolve, this.#o.renewMs));
    }
    this.#leading = true;
    const renew = async () => {
      const attempt = this.#attempt();
      this.#renewing = attempt;
      const ok = await attempt;
      if (this.#stopped) return;
      if (!ok && this.#o.now() - this.#lastRenew > this.#o.leaseMs) {
        this.stop();
        this.#leading = false;
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

  /**
   * Stops, and when this replica leads hands the lease back (no holder), so a standby
   * takes it at its next attempt rather than after leaseMs. Best effort: with the API
   * server unreachable the lease simply expires.
   */
  async release(): Promise<void> {
    const leading = this.#leading;
    this.stop();
    this.#leading = false;
    if (!leading) return;
    try {
      await this.#renewing;
      // A write that raced ours (409) is read again.
      for (let attempt = 0; attempt < 3; attempt++) {
        const current = await this.#kube.get(this.#path);
        const held = isRecord(current?.spec) ? current.spec : {};
        if (current === undefined || held.holderIdentity !== this.#o.identity) return;
        const { status, json } = await this.#kube.request('PUT', this.#path, {
          body: {
            ...current,
            spec: {
              ...held,
              holderIdentity: '',
              leaseDurationSeconds: 1,
              renewTime: microTime(this.#o.now()),
            },
          },
        });
        if (status === 409) continue;
        if (status !== 200) throw new KubeError(`HTTP ${status}: ${JSON.stringify(json)}`, status);
        this.#logger?.info({ lease: this.#o.name }, 'audit lease released');
        return;
      }
      throw new KubeError('another write kept racing the release', 409);
    } catch (error) {
      this.#logger?.warn(
        { lease: this.#o.name, error: describeThrown(error) },
        'audit lease not released; it expires on its own',
      );
    }
  }
}
