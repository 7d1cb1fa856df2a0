/**
 * Clean-ups, temp dirs, free ports and polling: what every test helper needs, without ava
 * (so the benchmarks can use the registry helpers from dist/ too).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** What ava's `t` offers for clean-up; `Teardowns` offers the same to per-file gateways. */
export interface Teardown {
  teardown(fn: () => Promise<void> | void): void;
}

/** Clean-ups for resources shared by a test file: run them in `test.after.always`. */
export class Teardowns implements Teardown {
  readonly #fns: (() => Promise<void> | void)[] = [];

  teardown(fn: () => Promise<void> | void): void {
    this.#fns.push(fn);
  }

  async run(): Promise<void> {
    for (const fn of this.#fns.splice(0).reverse()) await fn();
  }
}

/** A loopback port free right now, for a gateway run as a child process. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function tempDir(t: Teardown, prefix = 'imagegate-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Polls `probe` until it returns a value (not undefined), at most `tries` times. */
export async function poll<T>(
  probe: () => Promise<T | undefined>,
  what: string,
  { tries = 200, everyMs = 50 }: { tries?: number; everyMs?: number } = {},
): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  throw new Error(`gave up waiting for ${what} after ${tries} tries`);
}
