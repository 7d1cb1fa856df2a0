/**
 * Registry facts for one review: for each image the policy asked about, the digest its tag
 * names and, where a `signatures` entry covers it, whether one of its keys signed that
 * digest. Gathered before the (synchronous) evaluation, within the review's budget.
 *
 * Cached as facts allow: a tag briefly (it moves), a verified signature of a digest long
 * (a digest is immutable), "no signature" briefly (one may be pushed next), failures only
 * for a moment and never as a pass. Concurrent reviews of the same tag share one lookup.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { describeThrown } from '../shared/describe-thrown.ts';
import type { AddressPolicy } from './addresses.ts';
import type { RegistryClient } from './client.ts';
import { checkSignatures, type SignatureOutcome } from './cosign.ts';
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

export interface FactDeps {
  readonly client: RegistryClient;
  readonly policy: () => AddressPolicy;
  /** The configured keys, by reference. */
  readonly keys: (refs: readonly string[]) => Promise<readonly PublicKeyRef[]>;
  readonly ttls?: FactTtls;
  readonly maxEntries?: number;
  /** Told of every cache use: for metrics. */
  readonly observeCache?: (kind: 'tag' | 'signature', hit: boolean) => void;
}

type Cached<T> = { readonly value: T } | { readonly error: string };

export class FactSource {
  readonly #deps: FactDeps;
  readonly #ttls: FactTtls;
  readonly #tags: LRUCache<string, Cached<string>>;
  readonly #signatures: LRUCache<string, Cached<SignatureOutcome>>;
  readonly #inflight = new Map<string, Promise<Cached<unknown>>>();

  constructor(deps: FactDeps) {
    this.#deps = deps;
    this.#ttls = deps.ttls ?? DEFAULT_TTLS;
    const max = deps.maxEntries ?? 10_000;
    this.#tags = new LRUCache({ max, ttlAutopurge: false });
    this.#signatures = new LRUCache({ max, ttlAutopurge: false });
  }

  /** Facts for every request, within `budgetMs` for them all. */
  async gather(
    requests: readonly FactRequest[],
    budgetMs: number,
  ): Promise<Map<number, ImageFacts>> {
    const signal = AbortSignal.timeout(budgetMs);
    const entries = await Promise.all(
      requests.map(
        async (r): Promise<[number, ImageFacts]> => [r.index, await this.#one(r, signal, budgetMs)],
      ),
    );
    return new Map(entries);
  }

  async #one(request: FactRequest, signal: AbortSignal, budgetMs: number): Promise<ImageFacts> {
    const { registry, repository } = request;
    if (!this.#deps.policy().allowsRegistry(registry)) {
      return {
        error: `registry ${registry} is not one the configuration names, so imagegate does not contact it`,
      };
    }
    let digest = request.digest;
    // No tag and no digest: the kubelet pulls latest.
    const tag = request.tag === '' ? 'latest' : request.tag;
    if (digest === '') {
      const resolved = await this.#cached(
        this.#tags,
        'tag',
        `${registry}/${repository}:${tag}`,
        async () => (await this.#deps.client.resolve(registry, repository, tag, signal)).digest,
        () => this.#ttls.tagMs,
        signal,
        { registry, budgetMs },
      );
      if ('error' in resolved) return { error: resolved.error };
      digest = resolved.value;
    }
    if (request.keys.length === 0) return { digest };
    let keys: readonly PublicKeyRef[];
    try {
      keys = await this.#deps.keys(request.keys);
    } catch (error) {
      return { digest, error: describeThrown(error) };
    }
    const fingerprint = keys.map((k) => keyFingerprint(k.key)).join(',');
    const checked = await this.#cached(
      this.#signatures,
      'signature',
      `${registry}/${repository}@${digest}|${fingerprint}`,
      () => checkSignatures(this.#deps.client, registry, repository, digest, keys, signal),
      (outcome) => (outcome.verified ? this.#ttls.verifiedMs : this.#ttls.unsignedMs),
      signal,
      { registry, budgetMs },
    );
    if ('error' in checked) return { digest, error: checked.error };
    return { digest, signature: checked.value };
  }

  /** The cached value, else one shared lookup (stored with its own TTL; failures briefly). */
  async #cached<T extends {}>(
    cache: LRUCache<string, Cached<T>>,
    kind: 'tag' | 'signature',
    key: string,
    lookup: () => Promise<T>,
    ttl: (value: T) => number,
    signal: AbortSignal,
    about: Explained,
  ): Promise<Cached<T>> {
    const hit = cache.get(key);
    this.#deps.observeCache?.(kind, hit !== undefined);
    if (hit !== undefined) return hit;
    let pending = this.#inflight.get(key) as Promise<Cached<T>> | undefined;
    if (pending === undefined) {
      pending = (async (): Promise<Cached<T>> => {
        try {
          const value = await lookup();
          cache.set(key, { value }, { ttl: ttl(value) });
          return { value };
        } catch (error) {
          const failed = { error: explain(error, about) };
          const retryAfter = error instanceof RegistryError ? error.retryAfterS : undefined;
          cache.set(key, failed, {
            ttl: retryAfter === undefined ? this.#ttls.failureMs : retryAfter * 1000,
          });
          return failed;
        } finally {
          this.#inflight.delete(key);
        }
      })();
      this.#inflight.set(key, pending);
    }
    // Whoever waits on another review's lookup still keeps to its own budget.
    const outOfTime = (): Cached<T> => ({ error: explain(signal.reason, about) });
    if (signal.aborted) return outOfTime();
    return Promise.race([
      pending,
      new Promise<Cached<T>>((resolve) =>
        signal.addEventListener('abort', () => resolve(outOfTime()), { once: true }),
      ),
    ]);
  }
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
  if (error.message === 'out of time for this review') return outOfTime;
  if (error.message.startsWith('unreachable')) return `registry ${registry} ${error.message}`;
  return error.message.includes(registry)
    ? error.message
    : `registry ${registry}: ${error.message}`;
}
