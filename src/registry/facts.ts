/**
 * Registry facts for one review: for each image the policy asked about, the digest its tag
 * names and, where a `signatures` entry covers it, whether the entry's signers (keys,
 * keyless identities) signed that digest, and the attestations it reads. Gathered before the
 * (synchronous) evaluation, within the review's budget.
 *
 * Verified once, whatever the pod says: a review reads each distinct digest's signatures
 * once, however many containers and entries name it, and judges them locally against each
 * entry; a judgement is cached by (repository, digest, entry and the content of its keys and
 * trust roots) — never by tag, so the digest verified is the digest pinned. Cached as facts
 * allow: a tag briefly (it moves), a verified digest long (a digest is immutable, and so is a
 * signature over it), anything short of that briefly (a signature may be pushed next), a
 * registry's failure only for a moment and never as a pass. Running out of the review's own
 * time is not the registry failing, and is never cached. Concurrent reviews of the same tag
 * share one lookup, which stops (queued requests dropped, requests in flight aborted) only
 * when every review waiting for it has run out of time. One review sees one digest per tag.
 */
import { LRUCache } from 'lru-cache';
import { describeThrown } from '../shared/describe-thrown.ts';
import type { AddressPolicy } from './addresses.ts';
import type { RegistryClient, RequestScope } from './client.ts';
import { type Found, findArtifacts, type Judgement, judgeFound, satisfied } from './cosign.ts';
import type { Flow } from './fair-queue.ts';
import { OUT_OF_TIME } from './fair-queue.ts';
import { descriptors } from './oci.ts';
import { RegistryError } from './registry-error.ts';
import type { VerifiedAttestation } from './sigstore/attestations.ts';
import type { SignatureOutcome } from './sigstore/judge.ts';
import type { Failure } from './sigstore/reasons.ts';
import { unusableRoot, type Verification } from './sigstore/verification.ts';

/** What the policy asked for one image (the facts entrypoint's answer, narrowed). */
export interface FactRequest {
  readonly index: number;
  readonly registry: string;
  readonly repository: string;
  readonly tag: string;
  /** The reference's own digest; "" when the tag is to be resolved. */
  readonly digest: string;
  /** The `signatures` entry (its id) the digest is verified against; "": none. */
  readonly verification: string;
}

export interface ImageFacts {
  readonly digest?: string;
  readonly signature?: SignatureOutcome;
  /** Verified attestations of the types the entry reads. */
  readonly attestations?: readonly VerifiedAttestation[];
  /** Types the entry reads that no verified attestation has, with why. */
  readonly attestationFailures?: Readonly<Record<string, Failure>>;
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
  /** The configured `signatures` entry with this id (throws when it is not loaded). */
  readonly verification: (id: string) => Verification;
  readonly ttls?: FactTtls;
  readonly maxEntries?: number;
  /** Bytes of attestation statements the judgement cache holds, at most. */
  readonly maxStatementBytes?: number;
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
  readonly #signatures: LRUCache<string, Cached<Judgement>>;
  readonly #inflight = new Map<string, Shared<unknown>>();

  constructor(deps: FactDeps) {
    this.#deps = deps;
    this.#ttls = deps.ttls ?? DEFAULT_TTLS;
    const max = deps.maxEntries ?? 10_000;
    this.#tags = new LRUCache({ max, ttlAutopurge: false });
    // Attestation statements make some judgements large: bounded by their bytes too.
    this.#signatures = new LRUCache({
      max,
      maxSize: deps.maxStatementBytes ?? 64 * 1024 * 1024,
      sizeCalculation: judgementSize,
      ttlAutopurge: false,
    });
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
    const gathered = await this.#gather(requests, budgetMs, tenant, undefined);
    if (gathered === undefined) throw new Error('a gather that may look up missed its cache');
    return gathered;
  }

  /**
   * The facts for these requests if every one is cached, else undefined: no registry
   * request is made (for a guess at what a review needs, docs/registries.md).
   */
  async cached(
    requests: readonly FactRequest[],
    tenant = '',
  ): Promise<{ facts: Map<number, ImageFacts>; until: number } | undefined> {
    const until = { at: Number.POSITIVE_INFINITY };
    const facts = await this.#gather(requests, 1000, tenant, until);
    return facts === undefined ? undefined : { facts, until: until.at };
  }

  async #gather(
    requests: readonly FactRequest[],
    budgetMs: number,
    tenant: string,
    /** For a cache-only read: lowered to when the first fact read leaves its cache. */
    cachedUntil: { at: number } | undefined,
  ): Promise<Map<number, ImageFacts> | undefined> {
    // A cache-only read never waits: no timer to arm.
    const signal = cachedUntil === undefined ? AbortSignal.timeout(budgetMs) : NEVER;
    const review: Review = {
      signal,
      flow: { tenant },
      budgetMs,
      ...(cachedUntil === undefined ? {} : { cachedUntil }),
      tags: new Map(),
      found: new Map(),
    };
    try {
      const entries = await Promise.all(
        requests.map(
          async (r): Promise<[number, ImageFacts]> => [r.index, await this.#one(r, review)],
        ),
      );
      return new Map(entries);
    } catch (error) {
      if (error instanceof NotCached) return undefined;
      throw error;
    }
  }

  async #one(request: FactRequest, review: Review): Promise<ImageFacts> {
    const { registry, repository } = request;
    if (!this.#deps.policy().allowsRegistry(registry)) {
      return {
        error: `registry ${registry} is not one the configuration names, so imagegate does not contact it`,
      };
    }
    let digest = request.digest;
    if (digest === '') {
      const answer = await this.#resolve(registry, repository, request.tag, review);
      if ('error' in answer) return { error: answer.error };
      digest = answer.value;
    }
    if (request.verification === '') return { digest };
    let entry: Verification;
    try {
      entry = this.#deps.verification(request.verification);
    } catch (error) {
      return { digest, error: describeThrown(error) };
    }
    // Before any cache: a judgement made with a root that has since expired is not reused.
    const blocked = unusableRoot(entry);
    if (blocked !== undefined) return { digest, error: blocked };
    const checked = await this.#judged(registry, repository, digest, entry, review);
    if ('error' in checked) return { digest, error: checked.error };
    let judgement = checked.value;
    if (!judgement.signature.verified && entry.acceptIndexSignature && request.digest !== '') {
      judgement = (await this.#byIndex(request, entry, review)) ?? judgement;
    }
    return {
      digest,
      signature: judgement.signature,
      ...(entry.attestations.length === 0
        ? {}
        : {
            attestations: judgement.attestations,
            attestationFailures: judgement.attestationFailures,
          }),
    };
  }

  /** The digest a tag names, once per review whatever the cache does meanwhile. */
  #resolve(
    registry: string,
    repository: string,
    written: string,
    review: Review,
  ): Promise<Cached<string>> {
    // No tag and no digest: the kubelet pulls latest.
    const tag = written === '' ? 'latest' : written;
    const key = `${registry}/${repository}:${tag}`;
    let resolved = review.tags.get(key);
    if (resolved === undefined) {
      resolved = this.#cached(
        this.#tags,
        'tag',
        key,
        async (scope) => (await this.#deps.client.resolve(registry, repository, tag, scope)).digest,
        () => this.#ttls.tagMs,
        review,
        { registry, budgetMs: review.budgetMs },
      );
      review.tags.set(key, resolved);
    }
    return resolved;
  }

  /**
   * A digest judged against an entry: cached by repository, digest and the entry with the
   * content of its keys and roots. What was found for the digest is read once per review,
   * however many entries judge it.
   */
  #judged(
    registry: string,
    repository: string,
    digest: string,
    entry: Verification,
    review: Review,
  ): Promise<Cached<Judgement>> {
    const where = `${registry}/${repository}@${digest}`;
    const attestations = entry.attestations.length > 0;
    const find = (scope: RequestScope): Promise<Found> => {
      const key = `${where}|${attestations}`;
      let found = review.found.get(key);
      if (found === undefined) {
        found = findArtifacts(this.#deps.client, registry, repository, digest, scope, {
          attestations,
        });
        review.found.set(key, found);
      }
      return found;
    };
    return this.#cached(
      this.#signatures,
      'signature',
      `${where}|${entry.fingerprint}`,
      async (scope) => judgeFound(await find(scope), digest, entry),
      (judgement) => (satisfied(judgement, entry) ? this.#ttls.verifiedMs : this.#ttls.unsignedMs),
      review,
      { registry, budgetMs: review.budgetMs },
    );
  }

  /**
   * acceptIndexSignature: a platform manifest pinned by digest (`repo:tag@sha256:…`) whose
   * own signature does not verify is verified by the index its tag names now, if that index
   * lists it and verifies. Undefined when it does not.
   */
  async #byIndex(
    request: FactRequest,
    entry: Verification,
    review: Review,
  ): Promise<Judgement | undefined> {
    const { registry, repository, tag, digest } = request;
    if (tag === '') return undefined;
    const resolved = await this.#resolve(registry, repository, tag, review);
    if ('error' in resolved || resolved.value === digest) return undefined;
    const index = resolved.value;
    // The index is read from the registry, never from a cache: not in a cache-only read.
    if (review.cachedUntil !== undefined) throw new NotCached();
    let lists = false;
    try {
      const manifest = await this.#deps.client.manifest(registry, repository, index, {
        signal: review.signal,
        flow: review.flow,
      });
      const body = JSON.parse(manifest.body.toString('utf8')) as unknown;
      const children =
        typeof body === 'object' && body !== null && 'manifests' in body
          ? body.manifests
          : undefined;
      lists = descriptors(children, 1024).some((d) => d.digest === digest);
    } catch {
      return undefined;
    }
    if (!lists) return undefined;
    const checked = await this.#judged(registry, repository, index, entry, review);
    if ('error' in checked || !checked.value.signature.verified) return undefined;
    return {
      ...checked.value,
      signature: { ...checked.value.signature, via: `index ${index}` },
    };
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
    // A cache-only read's miss is not counted: the lookup that follows it counts.
    if (hit !== undefined || review.cachedUntil === undefined)
      this.#deps.observeCache?.(kind, hit !== undefined);
    if (hit !== undefined) {
      if (review.cachedUntil !== undefined) {
        review.cachedUntil.at = Math.min(
          review.cachedUntil.at,
          Date.now() + cache.getRemainingTTL(key),
        );
      }
      return hit;
    }
    if (review.cachedUntil !== undefined) throw new NotCached();
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

/**
 * One review's gathering: its time, its place in the queues, the digests its tags named,
 * what it found for each digest (read once, judged against each entry).
 */
interface Review {
  readonly signal: AbortSignal;
  readonly flow: Flow;
  readonly budgetMs: number;
  /**
   * Set for a cache-only read (answer from the caches or not at all, NotCached: no
   * registry request): lowered to when the first fact it read leaves its cache.
   */
  readonly cachedUntil?: { at: number };
  readonly tags: Map<string, Promise<Cached<string>>>;
  readonly found: Map<string, Promise<Found>>;
}

/** The signal of a cache-only read, which never waits for anything. */
const NEVER = new AbortController().signal;

/** What a cache-only read throws at its first miss. */
class NotCached extends Error {}

/** A cached judgement's weight: its attestation statements' bytes (1 for the rest). */
function judgementSize(cached: Cached<Judgement>): number {
  if (!('value' in cached)) return 1;
  let bytes = 1;
  for (const attestation of cached.value.attestations) {
    bytes += attestation.statement === null ? 0 : JSON.stringify(attestation.statement).length;
  }
  return bytes;
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
