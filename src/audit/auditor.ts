/**
 * The audit loop: list every audited kind page by page, evaluate each object, keep only
 * its results; then watch each kind from the list's resourceVersion (bookmarks keep it
 * fresh), so a change costs one evaluation and not a re-list. A watch the server ends is
 * resumed from the last resourceVersion; a resourceVersion too old (410 Gone) re-lists
 * that kind. A new policy (bundle or configuration) re-audits everything: objects are
 * listed again, since the audit keeps no copy of them.
 *
 * The API server may fail at any step: every list page, watch and report write is retried
 * with backoff and jitter (retry.ts), and an operation failing for longer than the
 * retrier allows ends the audit through `fail` — never a live process that stopped
 * auditing. Every background task ends in `fail` or a log line, none in a rejection
 * nobody handles. health() says whether the loop still makes progress.
 */
import type { PolicyHolder } from '../policy/holder.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import type { JsonObject } from '../shared/json.ts';
import type { Logger } from '../shared/logger.ts';
import { AUDITED_KINDS, type AuditedKind, type AuditFacts, auditOrError } from './evaluate.ts';
import { type Kube, KubeError, type WatchEvent } from './kube.ts';
import { Publisher } from './publisher.ts';
import { AuditStopped, Retrier, type RetryOptions } from './retry.ts';
import { AuditStore } from './store.ts';

export interface AuditObserver {
  /** A full audit finished: how long it took and how many objects it evaluated. */
  audited(seconds: number, objects: number): void;
  /** The store changed (for gauges by namespace and rule). */
  changed(store: AuditStore): void;
  published(result: 'ok' | 'error'): void;
}

export interface AuditorDeps {
  readonly kube: Kube;
  readonly policy: PolicyHolder;
  readonly logger: Logger;
  readonly facts?: AuditFacts | undefined;
  readonly observer?: AuditObserver | undefined;
  /** Objects per list page (the audit holds at most one page of objects at a time). */
  readonly pageSize?: number;
  readonly publishIntervalMs?: number;
  readonly kinds?: readonly AuditedKind[];
  /** Backoff, jitter and when to give up (retry.ts). */
  readonly retry?: RetryOptions;
  /** No progress for this long: health() says the loop is stuck (default 10 minutes). */
  readonly stuckAfterMs?: number;
  /** The audit cannot go on (it gave up, or a bug): the caller stops everything. */
  readonly fail?: (error: unknown) => void;
}

export interface AuditHealth {
  readonly alive: boolean;
  readonly lastProgress: string;
  /** Operations failing now, and since when. */
  readonly failing: Record<string, string>;
}

/** A watch that ended: the error it ended with (null: the server closed it), and whether it had opened. */
type WatchEnd = { readonly error: unknown; readonly opened: boolean };

export class Auditor {
  readonly store = new AuditStore();
  readonly #deps: AuditorDeps;
  readonly #kinds: readonly AuditedKind[];
  readonly #versions = new Map<string, string>();
  readonly #stops = new Map<string, () => void>();
  readonly #retrier: Retrier;
  readonly #publisher: Publisher;
  #stopped = false;
  #auditing: Promise<void> | undefined;
  #again = false;
  #lastProgress: number;
  /** Events are handled one after the other: a DELETED never overtaken by an earlier MODIFIED. */
  #events: Promise<void> = Promise.resolve();
  readonly #relist = new Set<string>();

  constructor(deps: AuditorDeps) {
    this.#deps = deps;
    this.#kinds = deps.kinds ?? AUDITED_KINDS;
    this.#retrier = new Retrier(deps.logger, deps.retry);
    this.#lastProgress = this.#retrier.now;
    this.#publisher = new Publisher({
      kube: deps.kube,
      store: this.store,
      logger: deps.logger,
      retrier: this.#retrier,
      revision: () => this.#deps.policy.engine?.revision ?? '',
      published: (result) => deps.observer?.published(result),
      ...(deps.publishIntervalMs === undefined ? {} : { intervalMs: deps.publishIntervalMs }),
      fail: (error) => this.#fail(error),
    });
  }

  #progress(): void {
    this.#lastProgress = this.#retrier.now;
  }

  health(): AuditHealth {
    const stuckAfter = this.#deps.stuckAfterMs ?? 600_000;
    return {
      alive: !this.#stopped && this.#retrier.now - this.#lastProgress <= stuckAfter,
      lastProgress: new Date(this.#lastProgress).toISOString(),
      failing: this.#retrier.failing(),
    };
  }

  #fail(error: unknown): void {
    if (error instanceof AuditStopped || this.#stopped) return;
    this.stop();
    this.#deps.logger.error({ error: describeThrown(error) }, 'audit cannot go on');
    this.#deps.fail?.(error);
  }

  async #record(kind: AuditedKind, object: JsonObject): Promise<string> {
    const metadata = (object.metadata ?? {}) as JsonObject;
    const uid = String(metadata.uid ?? '');
    const namespace = String(metadata.namespace ?? '');
    this.store.set(
      uid,
      namespace,
      await auditOrError(this.#deps.policy.engine, object, kind, this.#deps.facts),
    );
    this.#progress();
    return uid;
  }

  /**
   * Lists one kind page by page, evaluating as it goes, each page retried; a continue
   * token that expired (410) starts the kind over. Returns the list's resourceVersion.
   */
  async #listKind(kind: AuditedKind): Promise<{ resourceVersion: string; objects: number }> {
    for (;;) {
      const seen = new Set<string>();
      let cont = '';
      let resourceVersion = '';
      let expired = false;
      do {
        const from = cont;
        const page = await this.#retrier.retry(`list ${kind.kind}`, async () => {
          try {
            return await this.#deps.kube.list(
              kind.path,
              kind.apiVersion,
              kind.kind,
              this.#deps.pageSize ?? 500,
              from,
            );
          } catch (error) {
            if (from !== '' && error instanceof KubeError && error.status === 410) return null;
            throw error;
          }
        });
        if (page === null) {
          expired = true;
          break;
        }
        this.#progress();
        for (const item of page.items) seen.add(await this.#record(kind, item));
        resourceVersion = page.resourceVersion;
        cont = page.continue;
      } while (cont !== '' && !this.#stopped);
      if (this.#stopped) throw new AuditStopped();
      if (expired) continue;
      this.store.retainOnly(kind.kind, seen);
      return { resourceVersion, objects: seen.size };
    }
  }

  /** Lists and evaluates everything once (a full audit); concurrent calls share one run. */
  audit(): Promise<void> {
    if (this.#auditing !== undefined) {
      // A policy change during an audit: once more after it, with the new policy.
      this.#again = true;
      return this.#auditing;
    }
    this.#auditing = (async () => {
      do {
        this.#again = false;
        const started = performance.now();
        let objects = 0;
        for (const kind of this.#kinds) {
          const listed = await this.#listKind(kind);
          objects += listed.objects;
          this.#versions.set(kind.kind, listed.resourceVersion);
        }
        this.#publisher.clusterChanged();
        this.#deps.observer?.audited((performance.now() - started) / 1000, objects);
        this.#deps.observer?.changed(this.store);
        this.#deps.logger.info(
          { objects, namespaces: this.store.namespaces().length, summary: this.store.summary() },
          'audit complete',
        );
      } while (this.#again && !this.#stopped);
    })().finally(() => {
      this.#auditing = undefined;
    });
    return this.#auditing;
  }

  /**
   * The first full audit, then watches and publishing until stop(); resolves once they
   * run, rejects when the first audit cannot be made (AuditGaveUp).
   */
  async run(options: { publish: boolean }): Promise<void> {
    await this.audit();
    for (const kind of this.#kinds) {
      this.#watchLoop(kind).catch((error: unknown) => this.#fail(error));
    }
    if (options.publish) {
      await this.#publisher.adoptExisting();
      this.#publisher.schedule(0);
    }
  }

  /** One watch, as a promise of how it ended. */
  async #watchOnce(kind: AuditedKind): Promise<WatchEnd> {
    let ended = false;
    let opened = false;
    let resolve: (error: unknown) => void = () => undefined;
    const promise = new Promise<WatchEnd>((r) => {
      resolve = (error) => {
        ended = true;
        r({ error, opened });
      };
    });
    const onEvent = (event: WatchEvent) => {
      this.#progress();
      this.#retrier.succeeded(`watch ${kind.kind}`);
      this.#events = this.#events
        .then(() => this.#onEvent(kind, event))
        .catch((error: unknown) => {
          this.#deps.logger.error(
            { kind: kind.kind, error: describeThrown(error) },
            'audit event not handled',
          );
        });
    };
    try {
      const stop = await this.#deps.kube.watch(
        kind.path,
        this.#versions.get(kind.kind) ?? '',
        onEvent,
        (error) => resolve(error),
      );
      this.#stops.set(kind.kind, stop);
      if (this.#stopped) stop();
      // The API server answered 200 and streams: whatever failed before works again.
      if (!ended) {
        opened = true;
        this.#progress();
        this.#retrier.succeeded(`watch ${kind.kind}`);
      }
    } catch (error) {
      resolve(error);
    }
    const end = await promise;
    this.#stops.delete(kind.kind);
    return end;
  }

  /** Watches a kind until stop(): resumes, re-lists after a 410, backs off after errors. */
  async #watchLoop(kind: AuditedKind): Promise<void> {
    let relist = false;
    while (!this.#stopped) {
      if (relist) {
        const listed = await this.#listKind(kind);
        this.#versions.set(kind.kind, listed.resourceVersion);
        this.#publisher.schedule();
        relist = false;
      }
      const { error, opened } = await this.#watchOnce(kind);
      if (this.#stopped) return;
      const status = (error as { statusCode?: number } | null)?.statusCode;
      if (status === 410 || this.#relist.delete(kind.kind)) {
        relist = true;
        continue;
      }
      // The server's timeout, or the client's after 30 s of silence on an open watch:
      // resume at once. (No answer within 30 s is a failure like any other.)
      const quiet = opened && error instanceof Error && error.name === 'TimeoutError';
      if (error === null || quiet) continue;
      await this.#retrier.failed(`watch ${kind.kind}`, error);
    }
  }

  async #onEvent(kind: AuditedKind, { type, object }: WatchEvent): Promise<void> {
    const metadata = (object.metadata ?? {}) as JsonObject;
    if (typeof metadata.resourceVersion === 'string')
      this.#versions.set(kind.kind, metadata.resourceVersion);
    if (type === 'BOOKMARK') return;
    if (type === 'ERROR') {
      // 410 Gone as an event: the resourceVersion is too old; re-list this kind.
      if (object.code === 410) this.#relist.add(kind.kind);
      this.#stops.get(kind.kind)?.();
      return;
    }
    object.apiVersion = kind.apiVersion;
    object.kind = kind.kind;
    if (type === 'DELETED') this.store.delete(String(metadata.uid ?? ''));
    else await this.#record(kind, object);
    this.#publisher.schedule();
  }

  /** A new policy: every object is judged again. Failures end the audit (through `fail`). */
  reaudit(): void {
    this.audit().then(
      () => this.#publisher.schedule(0),
      (error: unknown) => this.#fail(error),
    );
  }

  /** Waits for what is being published. */
  flush(): Promise<void> {
    return this.#publisher.flush();
  }

  stop(): void {
    this.#stopped = true;
    this.#retrier.stop();
    this.#publisher.stop();
    for (const stop of this.#stops.values()) stop();
    this.#stops.clear();
  }
}
