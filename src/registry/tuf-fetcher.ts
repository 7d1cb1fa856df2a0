/**
 * tuf-js's fetcher over the gateway's own HTTP client (http.ts) instead of its default
 * (global fetch to whatever a name resolves to): the mirror's host is judged like a
 * registry the configuration names — global addresses, a private network only where the
 * configuration says so, every name resolved through that policy, redirects https only —
 * with the system's CAs plus --registry-ca, a timeout on every request, and each body read
 * only up to the length TUF expects of that file (the timestamp's 16 KiB, a target's
 * length as its targets metadata says).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Fetcher } from 'tuf-js';
// tuf-js tells "no newer root" (403 or 404 ends the root rotation) from a failure by this
// class, which its index does not export; tuf-js is pinned, so the path holds.
import { DownloadHTTPError } from 'tuf-js/dist/error.js';
import type { RegistryHttp } from './http.ts';
import { RegistryError } from './registry-error.ts';

/** No TUF file is read past this, whatever length the metadata claims. */
export const MAX_TUF_FILE_BYTES = 8 * 1024 * 1024;

/** Redirects followed (a CDN in front of a bucket). */
const REDIRECTS = 3;

export class TufFetcher implements Fetcher {
  readonly #http: RegistryHttp;
  readonly #host: string;
  readonly #signal: AbortSignal;
  readonly #scratch: string;

  /**
   * `host`: the mirror's host[:port], what the address policy of `http` names it by;
   * `signal`: the refresh's budget; `scratch`: a writable directory for downloads.
   */
  constructor(http: RegistryHttp, host: string, signal: AbortSignal, scratch: string) {
    this.#http = http;
    this.#host = host;
    this.#signal = signal;
    this.#scratch = scratch;
  }

  async downloadBytes(url: string, maxLength: number): Promise<Buffer> {
    const answer = await this.#http.request(this.#host, new URL(url), {
      signal: this.#signal,
      maxBytes: Math.min(maxLength, MAX_TUF_FILE_BYTES),
      redirects: REDIRECTS,
    });
    if (answer.status !== 200) {
      throw new DownloadHTTPError(`${url}: HTTP ${answer.status}`, answer.status);
    }
    return answer.body;
  }

  async downloadFile<T>(
    url: string,
    maxLength: number,
    handler: (file: string) => Promise<T>,
  ): Promise<T> {
    const bytes = await this.downloadBytes(url, maxLength);
    const dir = await mkdtemp(join(this.#scratch, '.download-'));
    try {
      const file = join(dir, 'download');
      await writeFile(file, bytes, { mode: 0o600 });
      return await handler(file);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

/** For reading the cache alone: every request fails, so tuf-js uses what it verified before. */
export const OFFLINE: Fetcher = {
  downloadBytes: () => Promise.reject(new RegistryError('the mirror is not asked')),
  downloadFile: () => Promise.reject(new RegistryError('the mirror is not asked')),
};
