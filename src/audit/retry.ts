/**
 * How the audit lives with an API server that fails: every call is retried after a
 * growing, jittered delay (so replicas and watches do not retry in step), and an
 * operation that keeps failing for `giveUpAfterMs` makes the audit give up — release its
 * Lease and exit non-zero — instead of staying up and auditing nothing. Time and chance
 * are injected, so tests decide them.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describeThrown } from '../shared/describe-thrown.ts';
import type { Logger } from '../shared/logger.ts';

/** The audit could not reach the API server for too long; `cause` is the last error. */
export class AuditGaveUp extends Error {
  readonly operation: string;
  constructor(operation: string, failingForMs: number, cause: unknown) {
    super(
      `${operation}: failing for ${Math.round(failingForMs / 1000)} s, giving up: ${describeThrown(cause)}`,
      { cause },
    );
    this.name = 'AuditGaveUp';
    this.operation = operation;
  }
}

/** Thrown into a retry loop that stop() interrupted: not a failure. */
export class AuditStopped extends Error {
  constructor() {
    super('audit stopped');
    this.name = 'AuditStopped';
  }
}

export interface RetryOptions {
  /** How long one operation may keep failing before the audit gives up (default 300 s). */
  readonly giveUpAfterMs?: number;
  readonly initialDelayMs?: number;
  readonly maxDelayMs?: number;
  readonly now?: () => number;
  /** A number in [0, 1): the jitter. */
  readonly random?: () => number;
}

export const DEFAULT_GIVE_UP_AFTER_MS = 300_000;

/** Exponential backoff with equal jitter: half the step fixed, half random. */
export class Backoff {
  readonly #initial: number;
  readonly #max: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(initialMs: number, maxMs: number, random: () => number) {
    this.#initial = initialMs;
    this.#max = maxMs;
    this.#random = random;
  }

  next(): number {
    const step = Math.min(this.#max, this.#initial * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return Math.round(step / 2 + this.#random() * (step / 2));
  }

  reset(): void {
    this.#attempt = 0;
  }
}

/**
 * The operations failing now and since when, with one backoff each; what retry loops and
 * background tasks report their outcomes to. stop() ends every wait at once.
 */
export class Retrier {
  readonly #o: Required<RetryOptions>;
  readonly #logger: Logger;
  readonly #failing = new Map<string, { since: number; backoff: Backoff; attempts: number }>();
  readonly #stop = new AbortController();

  constructor(logger: Logger, options: RetryOptions = {}) {
    this.#logger = logger;
    this.#o = {
      giveUpAfterMs: DEFAULT_GIVE_UP_AFTER_MS,
      initialDelayMs: 500,
      maxDelayMs: 30_000,
      now: Date.now,
      random: Math.random,
      ...options,
    };
  }

  get now(): number {
    return this.#o.now();
  }

  get stopped(): boolean {
    return this.#stop.signal.aborted;
  }

  /** What fails now, and since when (ISO time): for /healthz and /readyz. */
  failing(): Record<string, string> {
    return Object.fromEntries(
      [...this.#failing].map(([operation, f]) => [operation, new Date(f.since).toISOString()]),
    );
  }

  succeeded(operation: string): void {
    const was = this.#failing.get(operation);
    if (was === undefined) return;
    this.#failing.delete(operation);
    this.#logger.info(
      { operation, attempts: was.attempts, failedForMs: this.now - was.since },
      'audit: the API server answers again',
    );
  }

  /**
   * Records a failure: resolves after the backoff delay for the next attempt, or throws
   * AuditGaveUp once the operation has failed for longer than giveUpAfterMs, AuditStopped
   * when stop() comes first.
   */
  async failed(operation: string, error: unknown): Promise<void> {
    if (this.stopped) throw new AuditStopped();
    let f = this.#failing.get(operation);
    if (f === undefined) {
      f = {
        since: this.now,
        attempts: 0,
        backoff: new Backoff(this.#o.initialDelayMs, this.#o.maxDelayMs, this.#o.random),
      };
      this.#failing.set(operation, f);
    }
    f.attempts++;
    const failingFor = this.now - f.since;
    if (failingFor > this.#o.giveUpAfterMs) throw new AuditGaveUp(operation, failingFor, error);
    const delayMs = f.backoff.next();
    this.#logger.warn(
      { operation, attempt: f.attempts, error: describeThrown(error), retryInMs: delayMs },
      'audit: API call failed; retrying',
    );
    await this.wait(delayMs);
  }

  /** Calls fn until it succeeds (see failed() for how it ends otherwise). */
  async retry<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    for (;;) {
      if (this.stopped) throw new AuditStopped();
      try {
        const result = await fn();
        this.succeeded(operation);
        return result;
      } catch (error) {
        if (error instanceof AuditStopped || error instanceof AuditGaveUp) throw error;
        await this.failed(operation, error);
      }
    }
  }

  /** A pause stop() cuts short (with AuditStopped). */
  async wait(ms: number): Promise<void> {
    try {
      await sleep(ms, undefined, { signal: this.#stop.signal });
    } catch {
      throw new AuditStopped();
    }
  }

  stop(): void {
    this.#stop.abort();
  }
}
