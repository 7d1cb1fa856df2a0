/**
 * A remote bundle source kept in service: asked at start (and, when it cannot answer, the
 * last good bundle kept on disk is served instead), then polled — on an interval with
 * jitter, at once after a long poll, with backoff after failures. Every bundle it fetches
 * is handed to `activate` (verify, build, smoke-evaluate, swap: server/policy-reload.ts);
 * one that activated is kept on disk. A bundle that was refused is not fetched again
 * until the source changes; the previous policy keeps serving meanwhile.
 */

import { nextDelay, type PollTiming } from '../shared/backoff.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import type { Logger } from '../shared/logger.ts';
import type { RemoteLocation } from './bundle-location.ts';
import { loadPersisted, saveBundle } from './bundle-store.ts';
import type { Origin, SourceStatus } from './source-status.ts';

/** One poll's answer: unchanged (same version), or a new archive. */
export type Fetched =
  | { readonly changed: false; readonly version: string; readonly longPoll?: boolean }
  | {
      readonly changed: true;
      readonly version: string;
      readonly archive: Buffer;
      readonly longPoll?: boolean;
      /** What verified the artifact's own signature, when one is required. */
      readonly artifactSignature?: string;
    };

export type Fetcher = (current: string | undefined, signal: AbortSignal) => Promise<Fetched>;

export type Activation = { readonly ok: true; readonly revision: string } | { readonly ok: false };

/** Builds and swaps in the policy of an archive; never throws (a refusal is recorded there). */
export type Activate = (
  archive: Buffer,
  about: { readonly origin: Origin; readonly version: string },
) => Promise<Activation>;

export interface RemoteBundleDeps {
  readonly location: RemoteLocation;
  readonly fetch: Fetcher;
  readonly timing: PollTiming;
  /** One poll (every request it makes, the download included), at most. */
  readonly pollBudgetMs: number;
  /** Where the last good bundle is kept; none: not kept. */
  readonly persistDir?: string | undefined;
  readonly logger: Logger;
  /** Told of every poll: for metrics. */
  readonly observe?: (result: 'downloaded' | 'unchanged' | 'error') => void;
  /** Told whenever the status changes. */
  readonly changed?: () => void;
  readonly random?: () => number;
}

export class RemoteBundle {
  readonly #deps: RemoteBundleDeps;
  /** The version last fetched (served or refused): what the next poll compares to. */
  #seen: string | undefined;
  /** The archive serving now: reloads for a new configuration rebuild from it. */
  #serving: Buffer | undefined;
  #status: SourceStatus;
  #timer: NodeJS.Timeout | undefined;
  /** The last poll answered "unchanged" within a second: no long poll was held. */
  #answeredAtOnce = false;
  #stopped = false;
  readonly #abort = new AbortController();

  constructor(deps: RemoteBundleDeps) {
    this.#deps = deps;
    this.#status = {
      kind: deps.location.kind,
      location: deps.location.display,
      origin: undefined,
      version: undefined,
      activatedAt: undefined,
      lastRequest: undefined,
      lastSuccessfulRequest: undefined,
      lastSuccessfulDownload: undefined,
      consecutiveFailures: 0,
      lastError: undefined,
      longPolling: false,
      artifactSignature: undefined,
    };
  }

  get status(): SourceStatus {
    return this.#status;
  }

  /** The archive serving now, if any. */
  get serving(): Buffer | undefined {
    return this.#serving;
  }

  /**
   * Asks the source once; when that fails or its bundle is refused, activates the last good
   * bundle kept on disk. Resolves whether a policy serves (false: not ready, fail closed).
   */
  async start(activate: Activate): Promise<boolean> {
    const fetched = await this.#poll(activate);
    if (fetched !== 'activated' && this.#serving === undefined) await this.#fromDisk(activate);
    this.#schedule(activate);
    return this.#serving !== undefined;
  }

  stop(): void {
    this.#stopped = true;
    this.#abort.abort();
    clearTimeout(this.#timer);
  }

  #update(change: Partial<SourceStatus>): void {
    this.#status = { ...this.#status, ...change };
    this.#deps.changed?.();
  }

  #schedule(activate: Activate): void {
    if (this.#stopped) return;
    const failures = this.#status.consecutiveFailures;
    // A long poll returns when the bundle changes or its wait ends: ask again at once —
    // unless the server answered "unchanged" without holding the request, which asked
    // again at once would be a busy loop.
    const delay =
      failures === 0 && this.#status.longPolling && !this.#answeredAtOnce
        ? 0
        : nextDelay(this.#deps.timing, failures, this.#deps.random);
    this.#timer = setTimeout(() => {
      void this.#poll(activate).finally(() => this.#schedule(activate));
    }, delay);
    this.#timer.unref();
  }

  async #poll(activate: Activate): Promise<'unchanged' | 'activated' | 'refused' | 'failed'> {
    const now = new Date().toISOString();
    const started = performance.now();
    this.#answeredAtOnce = false;
    this.#update({ lastRequest: now });
    let fetched: Fetched;
    try {
      const budget = AbortSignal.timeout(this.#deps.pollBudgetMs);
      fetched = await this.#deps.fetch(this.#seen, AbortSignal.any([this.#abort.signal, budget]));
    } catch (error) {
      if (this.#stopped) return 'failed';
      const failures = this.#status.consecutiveFailures + 1;
      this.#deps.observe?.('error');
      this.#update({ consecutiveFailures: failures, lastError: describeThrown(error) });
      // Every failure is logged at debug; the first of a run, and every tenth, at warn.
      const level = failures === 1 || failures % 10 === 0 ? 'warn' : 'debug';
      this.#deps.logger[level](
        { source: this.#deps.location.display, failures, error: describeThrown(error) },
        'bundle source unreachable; the policy in service keeps serving',
      );
      return 'failed';
    }
    this.#update({
      lastSuccessfulRequest: now,
      consecutiveFailures: 0,
      lastError: undefined,
      longPolling: fetched.longPoll === true,
    });
    // A server without ETags sends the same bundle again: same content, nothing to do.
    if (!fetched.changed || fetched.version === this.#seen) {
      this.#answeredAtOnce = performance.now() - started < 1_000;
      this.#deps.observe?.('unchanged');
      // The bundle kept on disk is the one the source has: it is the source's now.
      if (this.#status.origin === 'persisted' && fetched.version === this.#status.version) {
        this.#update({ origin: 'remote' });
      }
      return 'unchanged';
    }
    this.#deps.observe?.('downloaded');
    this.#seen = fetched.version;
    this.#update({ lastSuccessfulDownload: now });
    const result = await activate(fetched.archive, { origin: 'remote', version: fetched.version });
    if (!result.ok) return 'refused';
    const activatedAt = new Date().toISOString();
    this.#serving = fetched.archive;
    this.#update({
      origin: 'remote',
      version: fetched.version,
      activatedAt,
      artifactSignature: fetched.artifactSignature,
    });
    await this.#keep(fetched.archive, result.revision, fetched.version, now, activatedAt);
    return 'activated';
  }

  async #fromDisk(activate: Activate): Promise<void> {
    const root = this.#deps.persistDir;
    if (root === undefined) return;
    const source = this.#deps.location.display;
    const kept = await loadPersisted(root, source);
    if ('missing' in kept) {
      this.#deps.logger.warn({ source, why: kept.missing }, 'no last good bundle to serve');
      return;
    }
    const result = await activate(kept.archive, {
      origin: 'persisted',
      version: kept.meta.version,
    });
    if (!result.ok) return;
    this.#serving = kept.archive;
    // The source is asked whether it still has this version: unchanged costs no download.
    this.#seen = kept.meta.version;
    this.#update({
      origin: 'persisted',
      version: kept.meta.version,
      activatedAt: new Date().toISOString(),
    });
    this.#deps.logger.warn(
      { source, revision: result.revision, fetchedAt: kept.meta.fetchedAt },
      'serving the last good bundle kept on disk until the source answers',
    );
  }

  async #keep(
    archive: Buffer,
    revision: string,
    version: string,
    fetchedAt: string,
    activatedAt: string,
  ): Promise<void> {
    const root = this.#deps.persistDir;
    if (root === undefined) return;
    try {
      await saveBundle(root, archive, {
        source: this.#deps.location.display,
        revision,
        version,
        fetchedAt,
        activatedAt,
      });
    } catch (error) {
      // Serving goes on; only a restart during an outage would miss it.
      this.#deps.logger.error(
        { dir: root, error: describeThrown(error) },
        'cannot keep the bundle on disk; a restart during an outage would not find it',
      );
    }
  }
}
