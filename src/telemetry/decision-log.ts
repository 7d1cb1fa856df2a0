/**
 * Decision logs to a collector, as OPA's decision-log plugin sends them: events kept in a
 * bounded buffer (the oldest dropped when it is full, and counted), uploaded every interval
 * as gzipped JSON arrays POSTed to `<collector>/logs`, each batch at most `maxBatchBytes` of
 * JSON; a failed upload is kept and retried with exponential backoff and jitter. A review
 * never waits for this: `record` only queues.
 */
import { nextDelay } from '../shared/backoff.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import type { Logger } from '../shared/logger.ts';
import type { CollectorClient } from './collector-client.ts';
import { type DecisionLine, decisionEvent } from './decision-events.ts';

export interface DecisionLogOptions {
  readonly intervalMs: number;
  readonly maxBackoffMs: number;
  /** Events kept while the collector is slow or down; past it the oldest go. */
  readonly maxBufferedEvents: number;
  /** JSON bytes in one upload, at most (before gzip); a larger event is dropped. */
  readonly maxBatchBytes: number;
}

export const DEFAULT_DECISION_LOG_OPTIONS: DecisionLogOptions = {
  intervalMs: 10_000,
  maxBackoffMs: 120_000,
  maxBufferedEvents: 10_000,
  maxBatchBytes: 1024 * 1024,
};

export type DropReason = 'buffer_full' | 'too_large';

export interface DecisionLogObserver {
  sent(events: number): void;
  dropped(reason: DropReason, events: number): void;
  buffered(events: number): void;
  upload(ok: boolean): void;
}

export class DecisionLog {
  readonly #client: CollectorClient;
  readonly #labels: Readonly<Record<string, string>>;
  readonly #options: DecisionLogOptions;
  readonly #observe: DecisionLogObserver;
  readonly #logger: Logger;
  /** Serialised events, oldest first. */
  #buffer: string[] = [];
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #closed = false;

  constructor(deps: {
    client: CollectorClient;
    labels: Readonly<Record<string, string>>;
    options: DecisionLogOptions;
    observe: DecisionLogObserver;
    logger: Logger;
  }) {
    this.#client = deps.client;
    this.#labels = deps.labels;
    this.#options = deps.options;
    this.#observe = deps.observe;
    this.#logger = deps.logger;
    this.#schedule();
  }

  /** Queues one decision (the line app.ts logs). Never throws, never waits. */
  record(line: DecisionLine): void {
    if (this.#closed) return;
    const event = JSON.stringify(decisionEvent(line, this.#labels));
    if (Buffer.byteLength(event) + 2 > this.#options.maxBatchBytes) {
      this.#observe.dropped('too_large', 1);
      return;
    }
    this.#buffer.push(event);
    this.#trim();
    this.#observe.buffered(this.#buffer.length);
  }

  /** Uploads what is buffered now, batch by batch; stops at the first failure. */
  flush(): Promise<void> {
    this.#flushing ??= this.#upload().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  /** Stops the timer and makes one last attempt at what is buffered. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.flush();
  }

  #trim(): void {
    const over = this.#buffer.length - this.#options.maxBufferedEvents;
    if (over > 0) {
      this.#buffer.splice(0, over);
      this.#observe.dropped('buffer_full', over);
    }
  }

  #schedule(): void {
    if (this.#closed) return;
    const delay = nextDelay(
      { intervalMs: this.#options.intervalMs, maxBackoffMs: this.#options.maxBackoffMs },
      this.#failures,
    );
    this.#timer = setTimeout(() => {
      void this.flush().finally(() => this.#schedule());
    }, delay);
    this.#timer.unref();
  }

  async #upload(): Promise<void> {
    while (this.#buffer.length > 0) {
      const batch = this.#takeBatch();
      try {
        await this.#client.post('logs', `[${batch.join(',')}]`, { gzip: true });
      } catch (error) {
        // Kept, oldest first, ahead of what arrived meanwhile; the bound still holds.
        this.#buffer = [...batch, ...this.#buffer];
        this.#trim();
        this.#observe.buffered(this.#buffer.length);
        this.#observe.upload(false);
        this.#failures += 1;
        const level = this.#failures === 1 || this.#failures % 10 === 0 ? 'warn' : 'debug';
        this.#logger[level](
          { failures: this.#failures, buffered: this.#buffer.length, error: describeThrown(error) },
          'decision logs not delivered; kept and retried',
        );
        return;
      }
      this.#failures = 0;
      this.#observe.upload(true);
      this.#observe.sent(batch.length);
      this.#observe.buffered(this.#buffer.length);
    }
  }

  /** The oldest events whose JSON array fits in maxBatchBytes (at least one). */
  #takeBatch(): string[] {
    let bytes = 2;
    let count = 0;
    for (const event of this.#buffer) {
      const size = Buffer.byteLength(event) + 1;
      if (count > 0 && bytes + size > this.#options.maxBatchBytes) break;
      bytes += size;
      count += 1;
    }
    return this.#buffer.splice(0, count);
  }
}
