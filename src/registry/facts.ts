/**
 * Registry facts for one review: for each image the policy asked about, the digest its tag
 * names and, where a `signatures` entry covers it, whether one of its keys signed that
 * digest. Gathered before the (synchronous) evaluation, within the review's budget.
 *
 * Cached as facts allow: a tag briefly (it moves), a verified signature of a digest long
 * (a digest is immutable), "no signature" briefly (one may be pushed next), a registry's
 * failure only for a moment and never as a pass. Running out of the review's own time is
 * not the registry failing, and is never cached. Concurrent reviews of the same tag share
 * one lookup, which stops (queued requests dropped, requests in flight aborted) only when
 * every review waiting for it has run out of time. One review sees one digest per tag.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { describeThrown } from '../shared/describe-thrown.ts';
import type { AddressPolicy } from './addresses.ts';
import type { RegistryClient, RequestScope } from './client.ts';
import { checkSignatures, type LogTrust, type SignatureOutcome } from './cosign.ts';
import type { Flow } from './fair-queue.ts';
import { OUT_OF_TIME } from './fair-queue.ts';
import type { PublicKeyRef } from './keys.ts';
import { RegistryError } from './registry-error.ts';

/** What the policy asked for one image (the facts entrypoint's answer, narrowed). */
export interface FactRequest {
  readonly index: number;
  readonly registry: string;
  readonly repository: string;
  readonly tag: string;
  /** The reference's own digest; "" when the tag is to be resolved. */
  readonly digest: string;
  /** Key references whose signature is required; none: no signature check. */
  readonly keys: readonly string[];
  /** The trust root (by name) whose transparency logs judge a bundle's log entry. */
  readonly trustRoot?: string;
}

export interface ImageFacts {
  readonly digest?: string;
  readonly signature?: SignatureOutcome;
  /** Why a fact could not be had: the policy denies with it. */
  readonly error?: string;
}

export interface FactTtls {
  readonly tagMs: number;
  readonly verifiedMs: number;
  readonly unsignedMs: number;
  readonly failureMs: number;
}

export const DEFAULT_TTLS: FactTtls = {
  tagMs: 30_000,
  verifiedMs: 60 * 60_000,
  unsignedMs: 30_000,
  failureMs: 5_000,
};

/** Trust material named by a request: the root's logs, and a fingerprint for cache keys. */
export interface NamedLogTrust extends LogTrust {
  readonly fingerprint: string;
}

export interface FactDeps {
  readonly client: RegistryClient;
  readonly policy: () => AddressPolicy;
  /** The configured keys, by reference. */
  readonly keys: (refs: readonly string[]) => Promise<readonly PublicKeyRef[]>;
  /** A configured trust root's transparency logs, by name. */
  readonly trustRoot?: (name: string) => NamedLogTrust;
  readonly ttls?: FactTtls;
  readonly maxEntries?: number;
  /** Told of every cache use: for metrics. */
  readonly observeCache?: (kind: 'tag' | 'signature', hit: boolean) => void;
}

/** How many entries each bounded table holds now (for metrics and tests). */
export interface FactTables {
  readonly tags: number;
  readonly signatures: number;
  readonly inflight: number;
}

type Cached<T> = { readonly value: T } | { readonly error: string };

interface Shared<T> {
  result: Promise<Cached<T>>;
  readonly controller: AbortController;
  waiters: number;
}

export class FactSource {
  readonly #deps: FactDeps;
  readonly #ttls: FactTtls;
  readonly #tags: LRUCache<string, Cached<string>>;
  readonly #signatures: LRUCache<string, Cached<SignatureOutcome>>;
  readonly #inflight = new Map<string, Shared<unknown>>();

  constructor(deps: FactDeps) {
    this.#deps = deps;
    this.#ttls = deps.ttls ?? DEFAULT_TTLS;
    const max = deps.maxEntries ?? 10_000;
    this.#tags = new LRUCache({ max, ttlAutopurge: false });
    this.#signatures = new LRUCache({ max, ttlAutopurge: false });
  }

  tables(): FactTables {
    return {
      tags: this.#tags.size,
      signatures: this.#signatures.size,
      inflight: this.#inflight.size,
    };
  }

  /**
   * Facts for every request, within `budgetMs` for them all. `tenant` (the namespace) is
   * whose turn the review's requests take in the registries' fair queues.
   */
  async gather(
    requests: readonly FactRequest[],
    budgetMs: number,
    tenant = '',
  ): Promise<Map<number, ImageFacts>> {
    const signal = AbortSignal.timeout(budgetMs);
    const review: Review = { signal, flow: { tenant }, budgetMs, tags: new Map() };
    const entries = await Promise.all(
      requests.map(
        async (r): Promise<[number, ImageFacts]> => [r.index, await this.#one(r, review)],
      ),
    );
    return new Map(entries);
  }

  async #one(request: FactRequest, review: Review): Promise<ImageFacts> {
    const { registry, repository } = request;
    if (!this.#deps.policy().allowsRegistry(registry)) {
      return {
        error: `registry ${registry} is not one the configuration names, so imagegate does not contact it`,
      };
    }
    let digest = request.digest;
    const about = { registry, budgetMs: review.budgetMs };
    if (digest === '') {
      // No tag and no digest: the kubelet pulls latest.
      const tag = request.tag === '' ? 'latest' : request.tag;
      const key = `${registry}/${repository}:${tag}`;
      // One digest per tag for the whole review, whatever the cache does meanwhile.
      let resolved = review.tags.get(key);
      if (resolved === undefined) {
        resolved = this.#cached(
          this.#tags,
          'tag',
          key,
          async (scope) =>
            (await this.#deps.client.resolve(registry, repository, tag, scope)).digest,
          () => this.#ttls.tagMs,
          review,
          about,
        );
        review.tags.set(key, resolved);
      }
      const answer = await resolved;
      if ('error' in answer) return { error: answer.error };
      digest = answer.value;
    }
    if (request.keys.length === 0) return { digest };
    let keys: readonly PublicKeyRef[];
    let log: NamedLogTrust | undefined;
    try {
      keys = await this.#deps.keys(request.keys);
      if (request.trustRoot !== undefined) {
        if (this.#deps.trustRoot === undefined) {
          throw new RegistryError(`trust root ${request.trustRoot} is not loaded`);
        }
        log = this.#deps.trustRoot(request.trustRoot);
      }
    } catch (error) {
      return { digest, error: describeThrown(error) };
    }
    const fingerprint = [...keys.map((k) => keyFingerprint(k.key)), log?.fingerprint ?? ''].join(
      ',',
    );
    const checked = await this.#cached(
      this.#signatures,
      'signature',
      `${registry}/${repository}@${digest}|${fingerprint}`,
      (scope) => checkSignatures(this.#deps.client, registry, repository, digest, keys, scope, log),
      (outcome) => (outcome.verified ? this.#ttls.verifiedMs : this.#ttls.unsignedMs),
      review,
      about,
    );
    if ('error' in checked) return { digest, error: checked.error };
    return { digest, signature: checked.value };
  }

  /**
   * The cached value, else one lookup shared by every review that asks meanwhile (stored
   * with its own TTL; a registry's failure briefly; running out of time not at all).
   */
  async #cached<T extends {}>(
    cache: LRUCache<string, Cached<T>>,
    kind: 'tag' | 'signature',
    key: string,
    lookup: (scope: RequestScope) => Promise<T>,
    ttl: (value: T) => number,
    review: Review,
    about: Explained,
  ): Promise<Cached<T>> {
    const hit = cache.get(key);
    this.#deps.observeCache?.(kind, hit !== undefined);
    if (hit !== undefined) return hit;
    const outOfTime = (): Cached<T> => ({ error: explain(review.signal.reason, about) });
    if (review.signal.aborted) return outOfTime();
    let shared = this.#inflight.get(key) as Shared<T> | undefined;
    if (shared === undefined || shared.controller.signal.aborted) {
      shared = this.#start(cache, key, lookup, ttl, review.flow, about);
    }
    const own = shared;
    own.waiters++;
    // Whoever waits on a shared lookup keeps to its own budget; the last to leave stops it.
    return new Promise<Cached<T>>((resolve) => {
      let waiting = true;
      const done = (answer: Cached<T>) => {
        if (!waiting) return;
        waiting = false;
        own.waiters--;
        resolve(answer);
      };
      const leave = () => {
        done(outOfTime());
        if (own.waiters > 0) return;
        // Nobody waits for it any more: stop it, and let the next review start afresh.
        own.controller.abort(review.signal.reason);
        if (this.#inflight.get(key) === own) this.#inflight.delete(key);
      };
      review.signal.addEventListener('abort', leave, { once: true });
      void own.result.then((answer) => {
        review.signal.removeEventListener('abort', leave);
        done(answer);
      });
    });
  }

  /** Starts a lookup others may share: cached as it ends, unless nobody waited to the end. */
  #start<T extends {}>(
    cache: LRUCache<string, Cached<T>>,
    key: string,
    lookup: (scope: RequestScope) => Promise<T>,
    ttl: (value: T) => number,
    flow: Flow,
    about: Explained,
  ): Shared<T> {
    const controller = new AbortController();
    const entry: Shared<T> = { result: Promise.resolve({ error: '' }), controller, waiters: 0 };
    this.#inflight.set(key, entry as Shared<unknown>);
    entry.result = (async (): Promise<Cached<T>> => {
      try {
        const value = await lookup({ signal: controller.signal, flow });
        cache.set(key, { value }, { ttl: ttl(value) });
        return { value };
      } catch (error) {
        const failed = { error: explain(error, about) };
        // Every review that wanted it ran out of time: nothing is known of the registry.
        if (controller.signal.aborted) return failed;
        const retryAfter = error instanceof RegistryError ? error.retryAfterS : undefined;
        cache.set(key, failed, {
          ttl: retryAfter === undefined ? this.#ttls.failureMs : retryAfter * 1000,
        });
        return failed;
      } finally {
        if (this.#inflight.get(key) === entry) this.#inflight.delete(key);
      }
    })();
    return entry;
  }
}

/** One review's gathering: its time, its place in the queues, the digests its tags named. */
interface Review {
  readonly signal: AbortSignal;
  readonly flow: Flow;
  readonly budgetMs: number;
  readonly tags: Map<string, Promise<Cached<string>>>;
}

/** SHA-256 of a key's SPKI, once per key object (exporting one costs tens of µs). */
const fingerprints = new WeakMap<KeyObject, string>();
function keyFingerprint(key: KeyObject): string {
  let found = fingerprints.get(key);
  if (found === undefined) {
    found = createHash('sha256')
      .update(key.export({ type: 'spki', format: 'der' }))
      .digest('hex')
      .slice(0, 16);
    fingerprints.set(key, found);
  }
  return found;
}

interface Explained {
  readonly registry: string;
  readonly budgetMs: number;
}

/** What the policy shows for a failed lookup: always naming the registry. */
function explain(error: unknown, { registry, budgetMs }: Explained): string {
  const outOfTime = `registry ${registry} did not answer within the review's ${budgetMs} ms budget`;
  if (error instanceof DOMException && error.name === 'TimeoutError') return outOfTime;
  if (!(error instanceof RegistryError))
    return `registry ${registry} unreachable: ${describeThrown(error)}`;
  if (error.message === OUT_OF_TIME) return outOfTime;
  if (error.message.startsWith('unreachable')) return `registry ${registry} ${error.message}`;
  return error.message.includes(registry)
    ? error.message
    : `registry ${registry}: ${error.message}`;
}
