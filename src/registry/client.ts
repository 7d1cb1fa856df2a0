/**
 * The OCI distribution API, the little of it facts need: resolve a tag, fetch a manifest
 * or blob by digest (the digest checked against the bytes, always), list referrers. Auth
 * (Basic, Bearer tokens per repository, cached until they expire), the registry's
 * connection slots shared fairly between reviews (fair-queue.ts), and 429 honoured: while
 * a registry says wait, it is not asked again.
 *
 * Credentials go only where they belong: a 401 is a challenge only when the registry's
 * own host sent it (never storage it redirected to), and Basic credentials go only to the
 * registry's host or an auth host the configuration names for it. Every table here is
 * bounded (a pod author chooses repository names, so would choose its size).
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { endpoint } from './addresses.ts';
import { basic, parseChallenge, parseToken, type Token } from './auth.ts';
import type { Credentials } from './credentials.ts';
import { FairQueue, type Flow, OUT_OF_TIME } from './fair-queue.ts';
import type { HttpResponse, RegistryHttp } from './http.ts';
import { headerMediaType, isDigest } from './oci.ts';
import { RegistryError } from './registry-error.ts';

export { endpoint } from './addresses.ts';

export const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
] as const;

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_RETRY_AFTER_S = 300;
const DEFAULT_RETRY_AFTER_S = 10;
/** Bearer tokens kept (one per registry and repository), at most. */
export const MAX_TOKENS = 1_000;
/** Per-registry state (queues, cooldowns, schemes, rate buckets), at most this many registries. */
export const MAX_REGISTRIES = 256;
/** A tag as the distribution spec allows it. */
const TAG = /^[\w][\w.-]{0,127}$/;

/** What a request is for: the review's time, and its place in the fair queue. */
export interface RequestScope {
  readonly signal: AbortSignal;
  /** The review (and tenant) it is made for; a call of its own when absent. */
  readonly flow?: Flow;
}

const scopeOf = (scope: RequestScope | AbortSignal): RequestScope =>
  scope instanceof AbortSignal ? { signal: scope } : scope;

/** How many entries each bounded table holds now (for metrics and tests). */
export interface ClientTables {
  readonly tokens: number;
  readonly cooldowns: number;
  readonly queues: number;
  readonly queued: number;
  readonly pools: number;
}

export interface ClientDeps {
  readonly http: RegistryHttp;
  /** The credentials in force (the file is watched and may change between calls). */
  readonly credentials: () => Credentials;
  readonly now?: () => number;
  /** Requests in flight per registry, at most. */
  readonly perRegistry?: number;
  /** Told of every request: for metrics. */
  readonly observe?: (registry: string, kind: string, outcome: string, seconds: number) => void;
  /** Told of the fair queues: requests waiting (by delta) and how long one waited. */
  readonly observeQueue?: {
    readonly queued?: (registry: string, delta: number) => void;
    readonly waited?: (registry: string, seconds: number) => void;
  };
  /** Bounds of the tables (defaults MAX_TOKENS, MAX_REGISTRIES): tests flood small ones. */
  readonly maxTokens?: number;
  readonly maxRegistries?: number;
  /**
   * Requests per second per registry, at most (a token bucket with a burst of as many):
   * the audit's own budget, so a large cluster never hammers a registry. None: unlimited.
   */
  readonly ratePerSecond?: number;
}

/** Tokens reserved ahead: a waiter is given its slot and sleeps until it comes. */
class TokenBucket {
  #tokens: number;
  #at: number;
  constructor(
    readonly rate: number,
    readonly now: () => number,
  ) {
    this.#tokens = rate;
    this.#at = now();
  }
  async take(signal: AbortSignal): Promise<void> {
    const now = this.now();
    this.#tokens = Math.min(this.rate, this.#tokens + ((now - this.#at) / 1000) * this.rate);
    this.#at = now;
    this.#tokens -= 1;
    if (this.#tokens >= 0) return;
    const waitMs = (-this.#tokens / this.rate) * 1000;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, waitMs);
      signal.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          this.#tokens += 1;
          reject(new RegistryError(OUT_OF_TIME));
        },
        { once: true },
      );
    });
  }
}

export interface Manifest {
  readonly digest: string;
  readonly mediaType: string;
  readonly body: Buffer;
}

/** sha256:<hex> (or sha512) of the bytes; undefined for another algorithm. */
export function digestOf(bytes: Buffer, algorithm: string): string | undefined {
  if (algorithm !== 'sha256' && algorithm !== 'sha512') return undefined;
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

/** A digest from the policy or a registry, refused before it becomes part of a URL. */
function wellFormed(digest: string, what: string): void {
  if (!isDigest(digest as unknown)) {
    throw new RegistryError(
      `${what}: ${JSON.stringify(digest.slice(0, 80))} is not a valid digest`,
    );
  }
}

function checkDigest(bytes: Buffer, digest: string, what: string): void {
  const [algorithm = ''] = digest.split(':');
  const actual = digestOf(bytes, algorithm);
  if (actual === undefined)
    throw new RegistryError(`${what}: unsupported digest algorithm ${algorithm}`);
  if (actual !== digest)
    throw new RegistryError(`${what}: the content does not match its digest ${digest}`);
}

export class RegistryClient {
  readonly #deps: ClientDeps;
  readonly #now: () => number;
  /** Tokens by registry|repository, each until it expires; the least used go first. */
  readonly #tokens: LRUCache<string, Token>;
  /** Token requests under way (as many as requests in flight, at most). */
  readonly #pendingTokens = new Map<string, Promise<Token>>();
  readonly #schemes: LRUCache<string, 'basic' | 'bearer'>;
  /** Until when a registry that answered 429 is left alone (epoch ms). */
  readonly #cooldown: LRUCache<string, number>;
  readonly #queues: LRUCache<string, FairQueue>;
  readonly #buckets: LRUCache<string, TokenBucket>;

  constructor(deps: ClientDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    const registries = deps.maxRegistries ?? MAX_REGISTRIES;
    this.#tokens = new LRUCache({ max: deps.maxTokens ?? MAX_TOKENS });
    this.#schemes = new LRUCache({ max: registries });
    this.#cooldown = new LRUCache({ max: registries });
    this.#queues = new LRUCache({ max: registries });
    this.#buckets = new LRUCache({ max: registries });
  }

  /** The size of every table this client keeps. */
  tables(): ClientTables {
    let queued = 0;
    for (const queue of this.#queues.values()) queued += queue.queued;
    return {
      tokens: this.#tokens.size,
      cooldowns: this.#cooldown.size,
      queues: this.#queues.size,
      queued,
      pools: this.#deps.http.pools,
    };
  }

  /** The digest a tag names now (the index for a multi-arch image), by HEAD, else GET. */
  async resolve(
    registry: string,
    repository: string,
    tag: string,
    scope: RequestScope | AbortSignal,
  ): Promise<Manifest | { digest: string; mediaType: string }> {
    if (!TAG.test(tag)) throw new RegistryError(`${JSON.stringify(tag)} is not a tag`);
    const path = `/v2/${repository}/manifests/${encodeURIComponent(tag)}`;
    const head = await this.#send(registry, repository, path, 'resolve', {
      method: 'HEAD',
      headers: { accept: MANIFEST_TYPES.join(', ') },
      scope,
    });
    const digest = head.headers['docker-content-digest'];
    if (head.status === 200 && isDigest(digest)) {
      return { digest, mediaType: headerMediaType(head.headers['content-type']) };
    }
    if (head.status === 404)
      throw new RegistryError(`${registry}/${repository}:${tag} does not exist`);
    if (head.status !== 200 && head.status !== 405)
      throw statusError(registry, head, `${repository}:${tag}`);
    // No digest on HEAD (or no HEAD): fetch it, and digest it ourselves.
    const got = await this.#send(registry, repository, path, 'resolve', {
      headers: { accept: MANIFEST_TYPES.join(', ') },
      scope,
    });
    if (got.status === 404)
      throw new RegistryError(`${registry}/${repository}:${tag} does not exist`);
    if (got.status !== 200) throw statusError(registry, got, `${repository}:${tag}`);
    const computed = digestOf(got.body, 'sha256') ?? '';
    const claimed = got.headers['docker-content-digest'];
    if (claimed !== undefined && claimed !== computed && claimed.startsWith('sha256:')) {
      throw new RegistryError(
        `${registry}/${repository}:${tag}: the manifest does not match its digest ${claimed}`,
      );
    }
    return {
      digest: computed,
      mediaType: headerMediaType(got.headers['content-type']),
      body: got.body,
    };
  }

  /** The manifest with this digest, its bytes checked against it. */
  async manifest(
    registry: string,
    repository: string,
    digest: string,
    scope: RequestScope | AbortSignal,
  ): Promise<Manifest> {
    wellFormed(digest, `${registry}/${repository}`);
    const got = await this.#send(
      registry,
      repository,
      `/v2/${repository}/manifests/${digest}`,
      'manifest',
      {
        headers: { accept: MANIFEST_TYPES.join(', ') },
        scope,
        redirects: 3,
      },
    );
    if (got.status === 404)
      throw new RegistryError(`${registry}/${repository}@${digest} does not exist`);
    if (got.status !== 200) throw statusError(registry, got, `${repository}@${digest}`);
    checkDigest(got.body, digest, `${registry}/${repository}@${digest}`);
    return { digest, mediaType: headerMediaType(got.headers['content-type']), body: got.body };
  }

  /** A manifest by tag, if the tag exists (the cosign signature and fallback tags). */
  async tagged(
    registry: string,
    repository: string,
    tag: string,
    scope: RequestScope | AbortSignal,
  ): Promise<Manifest | undefined> {
    if (!TAG.test(tag)) throw new RegistryError(`${JSON.stringify(tag)} is not a tag`);
    const got = await this.#send(
      registry,
      repository,
      `/v2/${repository}/manifests/${tag}`,
      'manifest',
      {
        headers: { accept: MANIFEST_TYPES.join(', ') },
        scope,
        redirects: 3,
      },
    );
    if (got.status === 404) return undefined;
    if (got.status !== 200) throw statusError(registry, got, `${repository}:${tag}`);
    const digest = digestOf(got.body, 'sha256') ?? '';
    const claimed = got.headers['docker-content-digest'];
    if (claimed?.startsWith('sha256:') && claimed !== digest) {
      throw new RegistryError(
        `${registry}/${repository}:${tag}: the manifest does not match its digest ${claimed}`,
      );
    }
    return { digest, mediaType: headerMediaType(got.headers['content-type']), body: got.body };
  }

  /**
   * The OCI 1.1 referrers index for a digest; undefined where the registry has no such API.
   * Unfiltered: signatures come as bundles and as cosign 2's legacy referrers, and some
   * registries ignore the filter anyway (the caller chooses among the descriptors).
   */
  async referrers(
    registry: string,
    repository: string,
    digest: string,
    scope: RequestScope | AbortSignal,
  ): Promise<Buffer | undefined> {
    wellFormed(digest, `${registry}/${repository}`);
    const path = `/v2/${repository}/referrers/${digest}`;
    const got = await this.#send(registry, repository, path, 'referrers', {
      headers: { accept: 'application/vnd.oci.image.index.v1+json' },
      scope,
    });
    if (got.status === 404 || got.status === 400 || got.status === 405) return undefined;
    if (got.status !== 200) throw statusError(registry, got, `${repository} referrers`);
    return got.body;
  }

  /** A blob by digest, at most maxBytes, checked against its digest. */
  async blob(
    registry: string,
    repository: string,
    digest: string,
    maxBytes: number,
    scope: RequestScope | AbortSignal,
  ): Promise<Buffer> {
    wellFormed(digest, `${registry}/${repository}`);
    const got = await this.#send(
      registry,
      repository,
      `/v2/${repository}/blobs/${digest}`,
      'blob',
      {
        scope,
        maxBytes,
        redirects: 3,
      },
    );
    if (got.status !== 200) throw statusError(registry, got, `${repository} blob ${digest}`);
    checkDigest(got.body, digest, `${registry}/${repository} blob ${digest}`);
    return got.body;
  }

  async #send(
    registry: string,
    repository: string,
    path: string,
    kind: string,
    options: {
      method?: 'GET' | 'HEAD';
      headers?: Record<string, string>;
      scope: RequestScope | AbortSignal;
      maxBytes?: number;
      redirects?: number;
    },
  ): Promise<HttpResponse> {
    const { signal, flow = { tenant: '' } } = scopeOf(options.scope);
    this.#coolingDown(registry);
    const url = new URL(`https://${endpoint(registry)}${path}`);
    await this.#bucket(registry)?.take(signal);
    return this.#queue(registry).run(flow, signal, async () => {
      // Another request may have been told to wait while this one queued.
      this.#coolingDown(registry);
      const started = performance.now();
      let outcome = 'error';
      try {
        const send = (authorization?: string) =>
          this.#deps.http.request(registry, url, {
            method: options.method ?? 'GET',
            headers: { ...options.headers, ...(authorization ? { authorization } : {}) },
            signal,
            maxBytes: options.maxBytes ?? MAX_MANIFEST_BYTES,
            redirects: options.redirects ?? 0,
          });
        let answer = await send(this.#cachedAuthorization(registry, repository));
        if (answer.status === 401) {
          const authorization = await this.#authorize(registry, repository, answer, signal);
          answer = await send(authorization);
          if (answer.status === 401) {
            throw new RegistryError(`${registry} refused the credentials for ${repository}`);
          }
        }
        if (answer.status === 429) {
          const header = Number(answer.headers['retry-after']);
          const seconds = Math.min(
            MAX_RETRY_AFTER_S,
            Number.isFinite(header) && header > 0 ? header : DEFAULT_RETRY_AFTER_S,
          );
          this.#cooldown.set(registry, this.#now() + seconds * 1000, { ttl: seconds * 1000 });
          outcome = 'rate_limited';
          throw new RegistryError(
            `${registry} is rate limiting (429): not asked again for ${seconds} s`,
            { retryAfterS: seconds },
          );
        }
        outcome = answer.status < 400 || answer.status === 404 ? 'ok' : `http_${answer.status}`;
        return answer;
      } finally {
        this.#deps.observe?.(registry, kind, outcome, (performance.now() - started) / 1000);
      }
    });
  }

  /** Throws while the registry asked to be left alone (429 Retry-After). */
  #coolingDown(registry: string): void {
    const until = this.#cooldown.get(registry) ?? 0;
    if (until > this.#now()) {
      const seconds = Math.ceil((until - this.#now()) / 1000);
      throw new RegistryError(`${registry} is rate limiting: not asked again for ${seconds} s`, {
        retryAfterS: seconds,
      });
    }
  }

  #bucket(registry: string): TokenBucket | undefined {
    const rate = this.#deps.ratePerSecond;
    if (rate === undefined) return undefined;
    let bucket = this.#buckets.get(registry);
    if (bucket === undefined) {
      bucket = new TokenBucket(rate, this.#now);
      this.#buckets.set(registry, bucket);
    }
    return bucket;
  }

  #queue(registry: string): FairQueue {
    let queue = this.#queues.get(registry);
    if (queue === undefined) {
      const observe = this.#deps.observeQueue;
      queue = new FairQueue(this.#deps.perRegistry ?? 8, {
        queued: (delta) => observe?.queued?.(registry, delta),
        waited: (seconds) => observe?.waited?.(registry, seconds),
      });
      this.#queues.set(registry, queue);
    }
    return queue;
  }

  #cachedAuthorization(registry: string, repository: string): string | undefined {
    const scheme = this.#schemes.get(registry);
    if (scheme === 'basic') {
      const credential = this.#deps.credentials().get(registry);
      return credential === undefined ? undefined : basic(credential);
    }
    const token = this.#tokens.get(`${registry}|${repository}`);
    return token !== undefined && token.expiresAt > this.#now()
      ? `Bearer ${token.value}`
      : undefined;
  }

  async #authorize(
    registry: string,
    repository: string,
    answer: HttpResponse,
    signal: AbortSignal,
  ): Promise<string> {
    // Only the registry itself may ask for its credentials: a 401 from storage it redirected
    // to (another host) is that host asking, and it gets nothing.
    const policy = this.#deps.http.policy();
    if (answer.url.hostname.toLowerCase() !== policy.hostnameOf(registry)) {
      throw new RegistryError(
        `${registry} redirected to ${answer.url.host}, which asked for credentials; imagegate sends them only to the registry`,
      );
    }
    const challenge = parseChallenge(answer.headers['www-authenticate']);
    const credential = this.#deps.credentials().get(registry);
    if (challenge?.scheme === 'basic') {
      this.#schemes.set(registry, 'basic');
      if (credential === undefined) {
        throw new RegistryError(
          `${registry} requires credentials, and --registry-credentials has none for it`,
        );
      }
      return basic(credential);
    }
    const realm = challenge?.params.realm;
    if (challenge === undefined || realm === undefined) {
      throw new RegistryError(`${registry} answered 401 without a challenge imagegate understands`);
    }
    this.#schemes.set(registry, 'bearer');
    const key = `${registry}|${repository}`;
    let pending = this.#pendingTokens.get(key);
    if (pending === undefined) {
      pending = this.#token(
        registry,
        repository,
        realm,
        challenge.params.service,
        credential,
        signal,
      ).finally(() => this.#pendingTokens.delete(key));
      this.#pendingTokens.set(key, pending);
    }
    const token = await pending;
    const ttl = token.expiresAt - this.#now();
    if (ttl >= 1) this.#tokens.set(key, token, { ttl });
    return `Bearer ${token.value}`;
  }

  async #token(
    registry: string,
    repository: string,
    realm: string,
    service: string | undefined,
    credential: { username: string; password: string } | undefined,
    signal: AbortSignal,
  ): Promise<Token> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryError(`${registry} named a token realm that is not a URL`);
    }
    if (service !== undefined) url.searchParams.set('service', service);
    url.searchParams.set('scope', `repository:${repository}:pull`);
    // The realm is the registry's choice: its credentials go there only if it is the
    // registry's own host or one the configuration names for it (registries.X.authHosts).
    if (
      credential !== undefined &&
      !this.#deps.http.policy().mayReceiveCredentials(registry, url)
    ) {
      throw new RegistryError(
        `${registry} named the token realm ${url.host}, which is not the registry's host nor an auth host the configuration names for it (registries.${registry}.authHosts); its credentials are not sent there`,
      );
    }
    const got = await this.#deps.http.request(registry, url, {
      headers: credential === undefined ? {} : { authorization: basic(credential) },
      signal,
      maxBytes: 64 * 1024,
      foreign: true,
    });
    if (got.status === 401 || got.status === 403) {
      throw new RegistryError(
        `the token service of ${registry} refused ${credential === undefined ? 'an anonymous request' : 'the credentials'} (${got.status})`,
      );
    }
    if (got.status !== 200)
      throw new RegistryError(`the token service of ${registry} answered ${got.status}`);
    return parseToken(got.body, this.#now());
  }
}

function statusError(registry: string, response: HttpResponse, what: string): RegistryError {
  return new RegistryError(`${registry} answered ${response.status} for ${what}`);
}
