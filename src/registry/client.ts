/**
 * The OCI distribution API, the little of it facts need: resolve a tag, fetch a manifest
 * or blob by digest (the digest checked against the bytes, always), list referrers. Auth
 * (Basic, Bearer tokens per repository, cached until they expire), a bound on requests in
 * flight per registry, and 429 honoured: while a registry says wait, it is not asked again.
 */
import { createHash } from 'node:crypto';
import { basic, parseChallenge, parseToken, type Token } from './auth.ts';
import type { Credentials } from './credentials.ts';
import type { HttpResponse, RegistryHttp } from './http.ts';
import { RegistryError } from './registry-error.ts';

export const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
] as const;

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_RETRY_AFTER_S = 300;
const DEFAULT_RETRY_AFTER_S = 10;

export interface ClientDeps {
  readonly http: RegistryHttp;
  /** The credentials in force (the file is watched and may change between calls). */
  readonly credentials: () => Credentials;
  readonly now?: () => number;
  /** Requests in flight per registry, at most. */
  readonly perRegistry?: number;
  /** Told of every request: for metrics. */
  readonly observe?: (registry: string, kind: string, outcome: string, seconds: number) => void;
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
          reject(new RegistryError('out of time for this review'));
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

/** Where a registry named in an image reference answers the API. */
export function endpoint(registry: string): string {
  return registry === 'docker.io' ? 'registry-1.docker.io' : registry;
}

/** sha256:<hex> (or sha512) of the bytes; undefined for another algorithm. */
export function digestOf(bytes: Buffer, algorithm: string): string | undefined {
  if (algorithm !== 'sha256' && algorithm !== 'sha512') return undefined;
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

function checkDigest(bytes: Buffer, digest: string, what: string): void {
  const [algorithm = ''] = digest.split(':');
  const actual = digestOf(bytes, algorithm);
  if (actual === undefined)
    throw new RegistryError(`${what}: unsupported digest algorithm ${algorithm}`);
  if (actual !== digest)
    throw new RegistryError(`${what}: the content does not match its digest ${digest}`);
}

class Limiter {
  #active = 0;
  readonly #waiting: (() => void)[] = [];
  constructor(readonly size: number) {}
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#active >= this.size)
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#active++;
    try {
      return await task();
    } finally {
      this.#active--;
      this.#waiting.shift()?.();
    }
  }
}

export class RegistryClient {
  readonly #deps: ClientDeps;
  readonly #now: () => number;
  readonly #tokens = new Map<string, Token>();
  readonly #pendingTokens = new Map<string, Promise<Token>>();
  readonly #schemes = new Map<string, 'basic' | 'bearer'>();
  readonly #cooldown = new Map<string, number>();
  readonly #limiters = new Map<string, Limiter>();
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(deps: ClientDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
  }

  /** The digest a tag names now (the index for a multi-arch image), by HEAD, else GET. */
  async resolve(
    registry: string,
    repository: string,
    tag: string,
    signal: AbortSignal,
  ): Promise<Manifest | { digest: string; mediaType: string }> {
    const path = `/v2/${repository}/manifests/${encodeURIComponent(tag)}`;
    const head = await this.#send(registry, repository, path, 'resolve', {
      method: 'HEAD',
      headers: { accept: MANIFEST_TYPES.join(', ') },
      signal,
    });
    const digest = head.headers['docker-content-digest'];
    if (head.status === 200 && digest !== undefined && /^sha(256|512):[0-9a-f]+$/.test(digest)) {
      return { digest, mediaType: head.headers['content-type'] ?? '' };
    }
    if (head.status === 404)
      throw new RegistryError(`${registry}/${repository}:${tag} does not exist`);
    if (head.status !== 200 && head.status !== 405)
      throw statusError(registry, head, `${repository}:${tag}`);
    // No digest on HEAD (or no HEAD): fetch it, and digest it ourselves.
    const got = await this.#send(registry, repository, path, 'resolve', {
      headers: { accept: MANIFEST_TYPES.join(', ') },
      signal,
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
    return { digest: computed, mediaType: got.headers['content-type'] ?? '', body: got.body };
  }

  /** The manifest with this digest, its bytes checked against it. */
  async manifest(
    registry: string,
    repository: string,
    digest: string,
    signal: AbortSignal,
  ): Promise<Manifest> {
    const got = await this.#send(
      registry,
      repository,
      `/v2/${repository}/manifests/${digest}`,
      'manifest',
      {
        headers: { accept: MANIFEST_TYPES.join(', ') },
        signal,
        redirects: 3,
      },
    );
    if (got.status === 404)
      throw new RegistryError(`${registry}/${repository}@${digest} does not exist`);
    if (got.status !== 200) throw statusError(registry, got, `${repository}@${digest}`);
    checkDigest(got.body, digest, `${registry}/${repository}@${digest}`);
    return { digest, mediaType: got.headers['content-type'] ?? '', body: got.body };
  }

  /** A manifest by tag, if the tag exists (the cosign signature and fallback tags). */
  async tagged(
    registry: string,
    repository: string,
    tag: string,
    signal: AbortSignal,
  ): Promise<Manifest | undefined> {
    const got = await this.#send(
      registry,
      repository,
      `/v2/${repository}/manifests/${tag}`,
      'manifest',
      {
        headers: { accept: MANIFEST_TYPES.join(', ') },
        signal,
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
    return { digest, mediaType: got.headers['content-type'] ?? '', body: got.body };
  }

  /** The OCI 1.1 referrers index for a digest; undefined where the registry has no such API. */
  async referrers(
    registry: string,
    repository: string,
    digest: string,
    artifactType: string,
    signal: AbortSignal,
  ): Promise<Buffer | undefined> {
    const path = `/v2/${repository}/referrers/${digest}?artifactType=${encodeURIComponent(artifactType)}`;
    const got = await this.#send(registry, repository, path, 'referrers', {
      headers: { accept: 'application/vnd.oci.image.index.v1+json' },
      signal,
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
    signal: AbortSignal,
  ): Promise<Buffer> {
    const got = await this.#send(
      registry,
      repository,
      `/v2/${repository}/blobs/${digest}`,
      'blob',
      {
        signal,
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
      signal: AbortSignal;
      maxBytes?: number;
      redirects?: number;
    },
  ): Promise<HttpResponse> {
    const until = this.#cooldown.get(registry) ?? 0;
    if (until > this.#now()) {
      const seconds = Math.ceil((until - this.#now()) / 1000);
      throw new RegistryError(`${registry} is rate limiting: not asked again for ${seconds} s`, {
        retryAfterS: seconds,
      });
    }
    const url = new URL(`https://${endpoint(registry)}${path}`);
    await this.#bucket(registry)?.take(options.signal);
    const started = performance.now();
    let outcome = 'error';
    try {
      const response = await this.#limiter(registry).run(async () => {
        const send = (authorization?: string) =>
          this.#deps.http.request(registry, url, {
            method: options.method ?? 'GET',
            headers: { ...options.headers, ...(authorization ? { authorization } : {}) },
            signal: options.signal,
            maxBytes: options.maxBytes ?? MAX_MANIFEST_BYTES,
            redirects: options.redirects ?? 0,
          });
        let answer = await send(this.#cachedAuthorization(registry, repository));
        if (answer.status === 401) {
          const authorization = await this.#authorize(registry, repository, answer, options.signal);
          answer = await send(authorization);
          if (answer.status === 401) {
            throw new RegistryError(`${registry} refused the credentials for ${repository}`);
          }
        }
        return answer;
      });
      if (response.status === 429) {
        const header = Number(response.headers['retry-after']);
        const seconds = Math.min(
          MAX_RETRY_AFTER_S,
          Number.isFinite(header) && header > 0 ? header : DEFAULT_RETRY_AFTER_S,
        );
        this.#cooldown.set(registry, this.#now() + seconds * 1000);
        outcome = 'rate_limited';
        throw new RegistryError(
          `${registry} is rate limiting (429): not asked again for ${seconds} s`,
          { retryAfterS: seconds },
        );
      }
      outcome = response.status < 400 || response.status === 404 ? 'ok' : `http_${response.status}`;
      return response;
    } finally {
      this.#deps.observe?.(registry, kind, outcome, (performance.now() - started) / 1000);
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

  #limiter(registry: string): Limiter {
    let limiter = this.#limiters.get(registry);
    if (limiter === undefined) {
      limiter = new Limiter(this.#deps.perRegistry ?? 8);
      this.#limiters.set(registry, limiter);
    }
    return limiter;
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
    this.#tokens.set(key, token);
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
