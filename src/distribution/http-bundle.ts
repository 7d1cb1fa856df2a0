/**
 * OPA's bundle service protocol, the client side (OPA's download/download.go): GET the
 * bundle's URL with `If-None-Match: <etag>` and take 304 as "unchanged"; when the server
 * answers with `Content-Type: application/vnd.openpolicyagent.bundles` it supports long
 * polling, and later requests say `Prefer: modes=snapshot;wait=<s>`, which the server holds
 * until the bundle changes or the wait ends (then 304). Authentication as OPA's services
 * offer it: a bearer token (read from a file at every request, so a projected token
 * rotates) and a TLS client certificate; extra CAs beside the system's.
 */
import { readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import { Agent, request } from 'undici';
import { readAtMost, readTokenFile } from '../shared/bounded-read.ts';
import { describeThrown } from '../shared/describe-thrown.ts';

export const LONG_POLL_TYPE = 'application/vnd.openpolicyagent.bundles';
const MAX_BUNDLE_BYTES = 32 * 1024 * 1024;

export interface BundleServiceOptions {
  /** A file holding the bearer token (sent as `Authorization: Bearer <token>`). */
  readonly tokenFile?: string | undefined;
  /** PEM client certificate and key for mutual TLS. */
  readonly clientCert?: string | undefined;
  readonly clientKey?: string | undefined;
  /** Extra trusted CAs (PEM text), beside the system's. */
  readonly ca?: readonly string[] | undefined;
  /** One request, at most (connect and headers; a long poll adds its wait). */
  readonly timeoutMs: number;
  /** Ask for long polling of this many seconds once the server says it supports it; 0: never. */
  readonly longPollSeconds: number;
}

export type ServicePoll =
  | { readonly changed: false; readonly etag: string; readonly longPoll: boolean }
  | {
      readonly changed: true;
      readonly etag: string;
      readonly longPoll: boolean;
      readonly archive: Buffer;
    };

export class BundleServiceError extends Error {
  override readonly name = 'BundleServiceError';
}

/** One client per bundle URL: its connection pool, and whether the server long-polls. */
export class BundleServiceClient {
  readonly #url: URL;
  readonly #options: BundleServiceOptions;
  readonly #agent: Agent;
  #longPoll = false;

  private constructor(url: URL, options: BundleServiceOptions, agent: Agent) {
    this.#url = url;
    this.#options = options;
    this.#agent = agent;
  }

  static async create(url: URL, options: BundleServiceOptions): Promise<BundleServiceClient> {
    const pem = async (path: string | undefined, what: string) => {
      if (path === undefined) return undefined;
      try {
        return await readFile(path, 'utf8');
      } catch (error) {
        throw new BundleServiceError(`cannot read ${what} ${path}: ${describeThrown(error)}`);
      }
    };
    const cert = await pem(options.clientCert, '--bundle-client-cert');
    const key = await pem(options.clientKey, '--bundle-client-key');
    if ((cert === undefined) !== (key === undefined)) {
      throw new BundleServiceError('--bundle-client-cert and --bundle-client-key go together');
    }
    const agent = new Agent({
      connect: {
        ca: [...rootCertificates, ...(options.ca ?? []).filter((p) => p.trim() !== '')],
        ...(cert === undefined ? {} : { cert, key }),
        timeout: options.timeoutMs,
      },
      headersTimeout: options.timeoutMs + options.longPollSeconds * 1000,
      bodyTimeout: options.timeoutMs,
      connections: 2,
    });
    return new BundleServiceClient(url, options, agent);
  }

  /** Whether the next request will long-poll. */
  get longPolling(): boolean {
    return this.#longPoll && this.#options.longPollSeconds > 0;
  }

  async poll(etag: string | undefined, signal: AbortSignal): Promise<ServicePoll> {
    const headers: Record<string, string> = { accept: `${LONG_POLL_TYPE}, application/gzip` };
    if (etag !== undefined && etag !== '') headers['if-none-match'] = etag;
    const waiting = this.longPolling;
    if (waiting) headers.prefer = `modes=snapshot;wait=${this.#options.longPollSeconds}`;
    const token = await this.#token();
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    const budget = this.#options.timeoutMs + (waiting ? this.#options.longPollSeconds * 1000 : 0);
    let answer: Awaited<ReturnType<typeof request>>;
    try {
      answer = await request(this.#url, {
        method: 'GET',
        headers,
        dispatcher: this.#agent,
        signal: AbortSignal.any([signal, AbortSignal.timeout(budget)]),
      });
    } catch (error) {
      throw new BundleServiceError(`${this.#url.host} unreachable: ${describeThrown(error)}`, {
        cause: error,
      });
    }
    const contentType = String(answer.headers['content-type'] ?? '')
      .split(';')[0]
      ?.trim();
    const newEtag = String(answer.headers.etag ?? '');
    if (answer.statusCode === 304) {
      await answer.body.dump();
      // A server that long-polled keeps doing so (OPA keeps the mode on a 304).
      return { changed: false, etag: newEtag || etag || '', longPoll: this.longPolling };
    }
    if (answer.statusCode !== 200) {
      await answer.body.dump();
      throw new BundleServiceError(`${this.#url.host} answered ${answer.statusCode}`);
    }
    this.#longPoll = contentType === LONG_POLL_TYPE;
    const archive = await readAtMost(
      answer.body,
      MAX_BUNDLE_BYTES,
      () =>
        new BundleServiceError(
          `${this.#url.host} sent a bundle of more than ${MAX_BUNDLE_BYTES} bytes`,
        ),
    );
    return { changed: true, etag: newEtag, longPoll: this.longPolling, archive };
  }

  #token(): Promise<string | undefined> {
    const file = this.#options.tokenFile;
    return readTokenFile(
      file,
      (why) => new BundleServiceError(`cannot read --bundle-token-file ${file}: ${why}`),
    );
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}
