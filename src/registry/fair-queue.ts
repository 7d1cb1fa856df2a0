/**
 * A registry's connection slots, shared fairly. A pod spec chooses how many lookups its
 * review asks for, so first-come-first-served would let one review with thousands of
 * tags hold every slot while another tenant's pod waits out its budget. Waiting requests
 * are served round-robin, first across tenants (namespaces), then across the reviews of a
 * tenant: while others wait, nobody gets more than its turn. A quarter of the slots is
 * kept for tenants holding none: a review with thousands of tags cannot fill them all, so
 * another tenant's first lookup starts at once instead of waiting out one of its answers.
 * A waiting request whose review is out of time leaves the queue at once and is never sent.
 */
import { RegistryError } from './registry-error.ts';

/** One review's requests: its identity is the object; `tenant` is its namespace. */
export interface Flow {
  readonly tenant: string;
}

interface Waiter {
  readonly start: () => void;
  readonly enqueuedAt: number;
  cancelled: boolean;
}

/** A FIFO with O(1) push and shift, for a flow's waiters. */
class Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;
  push(item: T): void {
    this.#items.push(item);
  }
  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }
}

interface FlowQueue {
  readonly waiters: Fifo<Waiter>;
  /** Waiters not cancelled. */
  live: number;
}

export interface QueueObserver {
  /** Requests waiting now changed by `delta`. */
  readonly queued?: (delta: number) => void;
  /** A request waited this long for its slot. */
  readonly waited?: (seconds: number) => void;
}

export const OUT_OF_TIME = 'out of time for this review';

export class FairQueue {
  #active = 0;
  #queued = 0;
  /** Slots in use, per tenant holding any. */
  readonly #holding = new Map<string, number>();
  /** Free slots only a tenant holding none may take (a quarter, rounded down). */
  readonly #reserve: number;
  /** Tenants with waiters, in turn order; each holds its flows with waiters, in turn order. */
  readonly #tenants = new Map<string, Map<Flow, FlowQueue>>();

  constructor(
    readonly slots: number,
    readonly observer: QueueObserver = {},
  ) {
    this.#reserve = Math.floor(slots / 4);
  }

  /** Requests waiting for a slot now. */
  get queued(): number {
    return this.#queued;
  }

  get active(): number {
    return this.#active;
  }

  /** Runs `task` in one of the slots, when this flow's turn comes; never once `signal` ended. */
  async run<T>(flow: Flow, signal: AbortSignal, task: () => Promise<T>): Promise<T> {
    if (signal.aborted) throw new RegistryError(OUT_OF_TIME);
    const { tenant } = flow;
    // At once when nobody waits, or when this tenant holds nothing and a slot kept for
    // such tenants is free (those waiting hold slots already).
    const first = !this.#holding.has(tenant) && !this.#tenants.has(tenant);
    if ((this.#queued === 0 || first) && this.#mayStart(tenant)) this.#take(tenant);
    else await this.#wait(flow, signal);
    try {
      return await task();
    } finally {
      this.#active--;
      const held = (this.#holding.get(tenant) ?? 1) - 1;
      if (held > 0) this.#holding.set(tenant, held);
      else this.#holding.delete(tenant);
      this.#next();
    }
  }

  /** Whether `tenant` may take a free slot now: the kept ones only while it holds none. */
  #mayStart(tenant: string): boolean {
    const free = this.slots - this.#active;
    return free > this.#reserve || (free > 0 && !this.#holding.has(tenant));
  }

  #take(tenant: string): void {
    this.#active++;
    this.#holding.set(tenant, (this.#holding.get(tenant) ?? 0) + 1);
  }

  #wait(flow: Flow, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let flows = this.#tenants.get(flow.tenant);
      if (flows === undefined) {
        flows = new Map();
        this.#tenants.set(flow.tenant, flows);
      }
      let queue = flows.get(flow);
      if (queue === undefined) {
        queue = { waiters: new Fifo(), live: 0 };
        flows.set(flow, queue);
      }
      const own = queue;
      const onAbort = () => {
        waiter.cancelled = true;
        this.#dequeued(flow, own);
        reject(new RegistryError(OUT_OF_TIME));
      };
      const waiter: Waiter = {
        enqueuedAt: performance.now(),
        cancelled: false,
        start: () => {
          signal.removeEventListener('abort', onAbort);
          this.observer.waited?.((performance.now() - waiter.enqueuedAt) / 1000);
          resolve();
        },
      };
      queue.waiters.push(waiter);
      queue.live++;
      this.#queued++;
      this.observer.queued?.(1);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** A waiter left its flow's queue (started or cancelled): forget empty flows and tenants. */
  #dequeued(flow: Flow, queue: FlowQueue): void {
    queue.live--;
    this.#queued--;
    this.observer.queued?.(-1);
    if (queue.live > 0) return;
    const flows = this.#tenants.get(flow.tenant);
    if (flows?.get(flow) !== queue) return;
    flows.delete(flow);
    if (flows.size === 0) this.#tenants.delete(flow.tenant);
  }

  /** The first tenant in turn that may take a free slot, with its waiting flows. */
  #nextTenant(): [string, Map<Flow, FlowQueue>] | undefined {
    for (const turn of this.#tenants) if (this.#mayStart(turn[0])) return turn;
    return undefined;
  }

  /** A slot is free: the next tenant's next flow's next waiter gets it. */
  #next(): void {
    while (this.#active < this.slots) {
      const turn = this.#nextTenant();
      if (turn === undefined) return;
      const [tenant, flows] = turn;
      const first = flows.entries().next();
      if (first.done === true) {
        this.#tenants.delete(tenant);
        continue;
      }
      const [flow, queue] = first.value;
      let waiter = queue.waiters.shift();
      while (waiter?.cancelled === true) waiter = queue.waiters.shift();
      if (waiter === undefined) {
        flows.delete(flow);
        continue;
      }
      this.#dequeued(flow, queue);
      // Their turn is used: to the back of the line, if they still wait.
      if (flows.get(flow) === queue) {
        flows.delete(flow);
        flows.set(flow, queue);
      }
      if (this.#tenants.get(tenant) === flows) {
        this.#tenants.delete(tenant);
        this.#tenants.set(tenant, flows);
      }
      this.#take(tenant);
      waiter.start();
    }
  }
}
