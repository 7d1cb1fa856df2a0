/**
 * HTTPS to registries on undici, one connection pool per registry: the system's CAs plus
 * --registry-ca, a timeout on every request, bodies read up to a limit, redirects followed
 * by hand (the address policy checks each hop, and credentials never follow to another
 * host), and every name resolved through the policy (no connecting to the metadata
 * service because a trusted name or a redirect points there).
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import { LRUCache } from 'lru-cache';
import { Agent, request } from 'undici';
import { readAtMost } from '../shared/bounded-read.ts';
import type { AddressPolicy } from './addresses.ts';
import { OUT_OF_TIME } from './fair-queue.ts';
import { RegistryError } from './registry-error.ts';

/** Connection pools kept, at most (one per registry the configuration names). */
export const MAX_POOLS = 256;

export interface HttpResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly body: Buffer;
  /** The URL that answered, after redirects. */
  readonly url: URL;
}

export interface HttpOptions {
  readonly method?: 'GET' | 'HEAD';
  readonly headers?: Readonly<Record<string, string>>;
  /** The review's budget: aborts everything of this lookup. */
  readonly signal: AbortSignal;
  /** Largest body read; past it the answer is refused. */
  readonly maxBytes: number;
  /** Follow redirects (blobs and manifests may be served from storage elsewhere). */
  readonly redirects?: number;
  /** The URL is one the registry named (a token realm), not the registry's own. */
  readonly foreign?: boolean;
}

export interface HttpDeps {
  /** The policy in force (it changes with the configuration). */
  readonly policy: () => AddressPolicy;
  /** Extra trusted CAs (PEM), beside the system's. */
  readonly ca: readonly string[];
  readonly requestTimeoutMs: number;
  /** Name resolution (node:dns lookup; tests give names the addresses they need). */
  readonly lookup?: typeof dnsLookup;
  /** Connection pools kept, at most (default MAX_POOLS). */
  readonly maxPools?: number;
}

function header(headers: Record<string, string | string[] | undefined>, name: string) {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

export class RegistryHttp {
  readonly #deps: HttpDeps;
  #ca: readonly string[];
  /** One pool per registry; as many registries as the client keeps state for, at most. */
  readonly #agents: LRUCache<string, Agent>;
  readonly #closing = new Set<Promise<void>>();

  constructor(deps: HttpDeps) {
    this.#deps = deps;
    this.#ca = deps.ca;
    this.#agents = new LRUCache({
      max: deps.maxPools ?? MAX_POOLS,
      // An evicted pool finishes its requests, then closes.
      dispose: (agent) => {
        const closed = agent.close().catch(() => undefined);
        this.#closing.add(closed);
        void closed.then(() => this.#closing.delete(closed));
      },
    });
  }

  /** Connection pools open now. */
  get pools(): number {
    return this.#agents.size;
  }

  /** The address policy in force (it changes with the configuration). */
  policy(): AddressPolicy {
    return this.#deps.policy();
  }

  /** New extra CAs (a rotated --registry-ca): later connections use them, open ones finish. */
  setCa(ca: readonly string[]): void {
    this.#ca = ca;
    this.#agents.clear();
  }

  /**
   * The addresses a name resolves to, when the address policy lets the gateway connect to
   * every one of them for this registry (what its connection pool dials); else why not.
   */
  addressesFor(registry: string, hostname: string): Promise<LookupAddress[]> {
    const resolve = this.#deps.lookup ?? dnsLookup;
    return new Promise((accept, reject) => {
      resolve(hostname, { all: true }, (error, addresses) => {
        if (error) return reject(error);
        const policy = this.#deps.policy();
        const refused = addresses.find((a) => !policy.allowsAddress(registry, a.address));
        if (refused !== undefined) {
          return reject(
            new RegistryError(
              `${hostname} resolves to ${refused.address}, which imagegate does not contact for ${registry}`,
            ),
          );
        }
        accept(addresses);
      });
    });
  }

  #agent(registry: string): Agent {
    let agent = this.#agents.get(registry);
    if (agent === undefined) {
      // Every name this pool resolves is checked for this registry; literal addresses
      // skip resolution, so request() checks those itself.
      const lookup = (
        hostname: string,
        options: object,
        callback: (error: Error | null, address: string | LookupAddress[], family?: number) => void,
      ) => {
        this.addressesFor(registry, hostname).then(
          (addresses) => {
            if ((options as { all?: boolean }).all === true) return callback(null, addresses);
            const [first] = addresses;
            return callback(null, first?.address ?? '', first?.family);
          },
          (error: Error) => callback(error, []),
        );
      };
      agent = new Agent({
        connect: {
          ca: [...rootCertificates, ...this.#ca.filter((pem) => pem.trim() !== '')],
          lookup,
          timeout: this.#deps.requestTimeoutMs,
        },
        headersTimeout: this.#deps.requestTimeoutMs,
        bodyTimeout: this.#deps.requestTimeoutMs,
        connections: 8,
      });
      this.#agents.set(registry, agent);
    }
    return agent;
  }

  async request(registry: string, url: URL, options: HttpOptions): Promise<HttpResponse> {
    let target = url;
    let headers = { ...options.headers };
    for (let hop = 0; ; hop++) {
      const refused = this.#refused(registry, target, options.foreign === true ? undefined : url);
      if (refused !== undefined) throw new RegistryError(refused);
      const timeout = AbortSignal.timeout(this.#deps.requestTimeoutMs);
      let answer: Awaited<ReturnType<typeof request>>;
      try {
        answer = await request(target, {
          method: options.method ?? 'GET',
          headers,
          dispatcher: this.#agent(registry),
          signal: AbortSignal.any([options.signal, timeout]),
        });
      } catch (error) {
        // The address policy refused a name this pool resolved: say that, not "unreachable".
        const refusal =
          error instanceof RegistryError ? error : (error as { cause?: unknown })?.cause;
        if (refusal instanceof RegistryError) throw refusal;
        if (options.signal.aborted) throw new RegistryError(OUT_OF_TIME, { cause: error });
        if (timeout.aborted) {
          throw new RegistryError(
            `unreachable: no answer within ${this.#deps.requestTimeoutMs} ms`,
            {
              cause: error,
            },
          );
        }
        throw new RegistryError(`unreachable: ${describe(error)}`, { cause: error });
      }
      const location = header(answer.headers, 'location');
      if (answer.statusCode >= 300 && answer.statusCode < 400 && location !== undefined) {
        await answer.body.dump();
        if (hop >= (options.redirects ?? 0)) {
          throw new RegistryError(
            `${registry} redirected to ${new URL(location, target).host} beyond the ${options.redirects ?? 0} redirects imagegate follows for ${target.pathname}`,
          );
        }
        const next = new URL(location, target);
        // Credentials are for the registry, never for storage it redirects to.
        if (next.host !== target.host) headers = withoutAuthorization(headers);
        target = next;
        continue;
      }
      const body = await readAtMost(
        answer.body,
        options.maxBytes,
        () =>
          new RegistryError(
            `${target.host} sent more than ${options.maxBytes} bytes for ${target.pathname}`,
          ),
      );
      const flat: Record<string, string | undefined> = {};
      for (const name of Object.keys(answer.headers)) flat[name] = header(answer.headers, name);
      return { status: answer.statusCode, headers: flat, body, url: target };
    }
  }

  /** Why this hop may not be made, if it may not. */
  #refused(registry: string, target: URL, own: URL | undefined): string | undefined {
    const policy = this.#deps.policy();
    if (!policy.allowsRegistry(registry)) {
      return `${registry} is not a registry the configuration names; imagegate does not contact it`;
    }
    if (target === own) {
      const ip = target.hostname.replace(/^\[|\]$/g, '');
      if (isIP(ip) !== 0 && !policy.allowsAddress(registry, ip)) {
        return `${target.hostname} is not an address imagegate contacts for ${registry}`;
      }
      return undefined;
    }
    const why = policy.refusesUrl(registry, target);
    const how = own === undefined ? 'sent imagegate to' : 'redirected to';
    return why === undefined ? undefined : `${registry} ${how} ${target.host}: ${why}`;
  }

  async close(): Promise<void> {
    this.#agents.clear();
    await Promise.all([...this.#closing]);
  }
}

function withoutAuthorization(headers: Record<string, string>): Record<string, string> {
  const { authorization: _a, Authorization: _b, ...rest } = headers;
  return rest;
}

function describe(error: unknown): string {
  if (error instanceof RegistryError) return error.message;
  const cause = (error as { cause?: unknown } | undefined)?.cause;
  if (cause instanceof RegistryError) return cause.message;
  const code = (error as { code?: unknown } | undefined)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message;
}
