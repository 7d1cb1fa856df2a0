/**
 * The HTTP side of OPA's collector APIs, shared by decision logs and status: one service
 * URL (OPA's `services.<name>.url`), POSTs of JSON — gzipped for decision logs, as OPA
 * sends them — with a bearer token read at every request (so a projected token rotates), a
 * TLS client certificate and extra CAs. Anything but a 2xx is a failure the caller retries.
 */
import { rootCertificates } from 'node:tls';
import { gzipSync } from 'node:zlib';
import { Agent, request } from 'undici';
import { readTokenFile } from '../shared/bounded-read.ts';
import { describeThrown } from '../shared/describe-thrown.ts';

export interface CollectorOptions {
  /** The service's base URL: decision logs go to `<url>/logs`, status to `<url>/status`. */
  readonly url: string;
  readonly tokenFile?: string | undefined;
  /** PEM text. */
  readonly ca?: readonly string[] | undefined;
  readonly clientCert?: string | undefined;
  readonly clientKey?: string | undefined;
  readonly timeoutMs: number;
}

export class CollectorError extends Error {
  override readonly name = 'CollectorError';
}

export class CollectorClient {
  readonly #base: string;
  readonly #options: CollectorOptions;
  readonly #agent: Agent;

  constructor(options: CollectorOptions) {
    const url = new URL(options.url);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new CollectorError(`${options.url}: a collector is reached over https (or http)`);
    }
    this.#base = url.href.replace(/\/+$/, '');
    this.#options = options;
    this.#agent = new Agent({
      connect: {
        ca: [...rootCertificates, ...(options.ca ?? []).filter((p) => p.trim() !== '')],
        ...(options.clientCert === undefined
          ? {}
          : { cert: options.clientCert, key: options.clientKey }),
        timeout: options.timeoutMs,
      },
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      connections: 2,
    });
  }

  /** POSTs `json` (JSON text) to `<url>/<path>`; gzipped when asked. Throws unless 2xx. */
  async post(path: string, json: string, options: { gzip: boolean }): Promise<void> {
    const text = Buffer.from(json);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (options.gzip) headers['content-encoding'] = 'gzip';
    const token = await this.#token();
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    let status: number;
    try {
      const answer = await request(`${this.#base}/${path}`, {
        method: 'POST',
        headers,
        body: options.gzip ? gzipSync(text) : text,
        dispatcher: this.#agent,
        signal: AbortSignal.timeout(this.#options.timeoutMs),
      });
      status = answer.statusCode;
      await answer.body.dump();
    } catch (error) {
      throw new CollectorError(`collector unreachable: ${describeThrown(error)}`, { cause: error });
    }
    if (status < 200 || status > 299) throw new CollectorError(`collector answered ${status}`);
  }

  #token(): Promise<string | undefined> {
    const file = this.#options.tokenFile;
    return readTokenFile(
      file,
      (why) => new CollectorError(`cannot read --collector-token-file ${file}: ${why}`),
    );
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}
