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
import { Agent, request } from 'undici';
import type { AddressPolicy } from './addresses.ts';
import { RegistryError } from './registry-error.ts';

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
}

function header(headers: Record<string, string | string[] | undefined>, name: string) {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

export class RegistryHttp {
  readonly #deps: HttpDeps;
  #ca: readonly string[];
  readonly #agents = new Map<string, Agent>();

  constructor(deps: HttpDeps) {
    this.#deps = deps;
    this.#ca = deps.ca;
  }

  /** New extra CAs (a rotated --registry-ca): later connections use them, open ones finish. */
  setCa(ca: readonly string[]): void {
    this.#ca = ca;
    const old = [...this.#agents.values()];
    this.#agents.clear();
    for (const agent of old) void agent.close();
  }

  #agent(registry: string): Agent {
    let agent = this.#agents.get(registry);
    if (agent === undefined) {
      const policyOf = this.#deps.policy;
      // Every name this pool resolves is checked for this registry; literal addresses
      // skip resolution, so request() checks those itself.
      const lookup = (
        hostname: string,
        options: object,
        callback: (error: Error | null, address: string | LookupAddress[], family?: number) => void,
      ) => {
        const resolve = this.#deps.lookup ?? dnsLookup;
        resolve(hostname, { ...options, all: true }, (error, addresses) => {
          if (error) return callback(error, []);
          const policy = policyOf();
          const refused = addresses.find((a) => !policy.allowsAddress(registry, a.address));
          if (refused !== undefined) {
            return callback(
              new RegistryError(
                `${hostname} resolves to ${refused.address}, which imagegate does not contact for ${registry}`,
              ),
              [],
            );
          }
          const all = (options as { all?: boolean }).all === true;
          const [first] = addresses;
          if (all) return callback(null, addresses);
          return callback(null, first?.address ?? '', first?.family);
        });
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
        if (options.signal.aborted)
          throw new RegistryError('out of time for this review', { cause: error });
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
          throw new RegistryError(`too many redirects (last to ${new URL(location, target).host})`);
        }
        const next = new URL(location, target);
        // Credentials are for the registry, never for storage it redirects to.
        if (next.host !== target.host) headers = withoutAuthorization(headers);
        target = next;
        continue;
      }
      const body = await readAtMost(answer.body, options.maxBytes, target);
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
    await Promise.all([...this.#agents.values()].map((agent) => agent.close()));
    this.#agents.clear();
  }
}

function withoutAuthorization(headers: Record<string, string>): Record<string, string> {
  const { authorization: _a, Authorization: _b, ...rest } = headers;
  return rest;
}

async function readAtMost(
  body: AsyncIterable<Buffer> & { destroy(error?: Error): unknown },
  maxBytes: number,
  url: URL,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > maxBytes) {
      body.destroy();
      throw new RegistryError(`${url.host} sent more than ${maxBytes} bytes for ${url.pathname}`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

function describe(error: unknown): string {
  if (error instanceof RegistryError) return error.message;
  const cause = (error as { cause?: unknown } | undefined)?.cause;
  if (cause instanceof RegistryError) return cause.message;
  const code = (error as { code?: unknown } | undefined)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message;
}
