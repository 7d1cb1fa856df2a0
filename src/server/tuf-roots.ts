/**
 * Trust roots kept in TUF repositories, in service: the loader asks for one by name and
 * spec (policy/loader.ts), and gets the root verified now — from the cache on disk while its
 * metadata holds, else from the mirror at once. Once started, each mirror is asked again at
 * start and every refresh interval (sooner, with backoff, while it fails), and `changed` is
 * told when a root in force changes: a new target, or one that expired or came back. A
 * failed refresh changes no root; it shows in /readyz (`trustRoots.<name>.tuf`), the logs
 * and imagegate_reloads_total{kind="trust-root"}.
 *
 * Only mirrors the configuration in force names are contacted (`retain`), under the address
 * rules registries have (registries.<host>.network), with --registry-ca.
 */
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AddressPolicy, addressPolicy, type RegistrySettings } from '../registry/addresses.ts';
import { RegistryHttp } from '../registry/http.ts';
import type { LoadedTrustRoot, TufRootSource } from '../registry/trust-roots.ts';
import { pinnedRootProblem, TufMirror } from '../registry/tuf-mirror.ts';
import { nextDelay } from '../shared/backoff.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import { InputError } from '../shared/input-error.ts';
import type { Logger } from '../shared/logger.ts';
import type { Metrics } from '../shared/metrics.ts';
import { type RegistryOptions, readRegistryCa } from './registry-facts.ts';

/** Sigstore's clients refresh daily at most; a few hours keeps well inside its expiries. */
export const DEFAULT_TUF_REFRESH_MS = 4 * 60 * 60_000;
/** The longest wait between attempts while a mirror fails. */
const MAX_BACKOFF_MS = 15 * 60_000;
/** One request to a mirror: a background download, not a review waiting. */
export const TUF_REQUEST_TIMEOUT_MS = 10_000;
/** setTimeout's longest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export function defaultTufCacheDir(): string {
  return join(tmpdir(), 'imagegate-tuf');
}

export interface TufRootsOptions {
  /** Where verified metadata and targets are kept (default defaultTufCacheDir()). */
  readonly cacheDir?: string | undefined;
  readonly refreshIntervalMs?: number | undefined;
  /** The cache alone: no mirror is asked (check --offline). */
  readonly offline?: boolean | undefined;
}

export interface TufRootsDeps {
  /** An HTTP client under this address policy (the registries' CAs and timeouts). */
  readonly http: (policy: () => AddressPolicy) => RegistryHttp;
  readonly logger: Logger;
  readonly metrics?: Metrics | undefined;
}

interface Kept {
  readonly mirror: TufMirror;
  refresh?: NodeJS.Timeout;
  expiry?: NodeJS.Timeout;
}

export class TufRoots {
  readonly #options: TufRootsOptions;
  readonly #deps: TufRootsDeps;
  readonly #http: RegistryHttp;
  /** By name, spec and pinned root: a change to any is another mirror. */
  readonly #kept = new Map<string, Kept>();
  /** Which mirror made each root handed out: what the configuration in force uses. */
  readonly #made = new WeakMap<LoadedTrustRoot, { key: string; mirror: TufMirror }>();
  #policy: AddressPolicy = addressPolicy([]);
  #changed: (() => void) | undefined;
  #closed = false;
  /** Refreshes under way: close() waits for them (they write into the cache). */
  readonly #running = new Set<Promise<unknown>>();

  constructor(options: TufRootsOptions, deps: TufRootsDeps) {
    this.#options = options;
    this.#deps = deps;
    this.#http = deps.http(() => this.#policy);
  }

  /** The loader's source of TUF-kept roots. */
  readonly source: TufRootSource = async (name, spec) => {
    let pinned: Buffer;
    try {
      pinned = await readFile(spec.root);
    } catch (error) {
      throw new InputError(
        `trust root ${name}: cannot read its pinned TUF root ${spec.root}: ${describeThrown(error)}`,
        { cause: error },
      );
    }
    const problem = pinnedRootProblem(pinned);
    if (problem !== undefined) {
      throw new InputError(`trust root ${name}: ${spec.root}: ${problem}`);
    }
    const mirror = new TufMirror(name, spec, pinned, {
      http: this.#http,
      cacheDir: this.#options.cacheDir ?? defaultTufCacheDir(),
    });
    const key = `${mirror.dir}\0${spec.network}`;
    let kept = this.#kept.get(key);
    if (kept === undefined) {
      kept = { mirror };
      this.#kept.set(key, kept);
      this.#allow();
      await mirror.readCache();
      const cached = mirror.current().unavailable === undefined;
      if (!cached && this.#options.offline !== true) await this.#refresh(kept);
      // A root served from the cache is asked about at once; one just fetched, later.
      if (this.#changed !== undefined) this.#schedule(key, kept, cached ? 0 : undefined);
    }
    const root = kept.mirror.current();
    this.#made.set(root, { key, mirror: kept.mirror });
    return root;
  };

  /** Refreshes on their intervals from now on; `changed` reloads the policy. */
  start(changed: () => void): void {
    this.#changed = changed;
    // Asked at start: at once, unless the load that opened it just did.
    for (const [key, kept] of this.#kept) {
      this.#schedule(key, kept, kept.mirror.status().lastAttempt === null ? 0 : undefined);
    }
  }

  /** Keeps refreshing only the mirrors these roots (the configuration in force) came from. */
  retain(roots: Iterable<LoadedTrustRoot>): void {
    const used = new Map<string, TufMirror>();
    for (const root of roots) {
      const made = this.#made.get(root);
      if (made !== undefined) used.set(made.key, made.mirror);
    }
    for (const [key, kept] of this.#kept) {
      if (!used.has(key)) this.#forget(key, kept);
    }
    for (const [key, mirror] of used) {
      if (!this.#kept.has(key)) {
        const kept: Kept = { mirror };
        this.#kept.set(key, kept);
        if (this.#changed !== undefined) this.#schedule(key, kept, undefined);
      }
    }
    this.#allow();
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const [key, kept] of this.#kept) this.#forget(key, kept);
    await Promise.all([...this.#running]);
    await this.#http.close();
  }

  /** The address policy names exactly the mirrors kept. */
  #allow(): void {
    const specs = [...this.#kept.values()].map(({ mirror }) => mirror);
    const settings = new Map<string, RegistrySettings>(
      specs.map((m) => [m.host, { network: m.spec.network }]),
    );
    this.#policy = addressPolicy(
      specs.map((m) => m.host),
      settings,
    );
  }

  #forget(key: string, kept: Kept): void {
    clearTimeout(kept.refresh);
    clearTimeout(kept.expiry);
    this.#kept.delete(key);
  }

  async #refresh(kept: Kept): Promise<boolean> {
    const { mirror } = kept;
    const running = mirror.refresh();
    this.#running.add(running);
    const result = await running.finally(() => this.#running.delete(running));
    this.#deps.metrics?.reloads.inc({ kind: 'trust-root', result: result.ok ? 'ok' : 'refused' });
    const about = { trustRoot: mirror.name, mirror: mirror.spec.mirror };
    if (result.ok) {
      this.#deps.logger.info(
        { ...about, ...mirror.status() },
        'trust root refreshed from its TUF mirror',
      );
    } else {
      const serving = mirror.current().unavailable === undefined;
      this.#deps.logger.error(
        { ...about, error: result.error, failures: mirror.failures },
        serving
          ? 'trust root refresh failed; the last verified root keeps serving'
          : 'trust root refresh failed; no verified root: entries that need it fail closed',
      );
    }
    return result.ok;
  }

  /** The next refresh after `delayMs` (undefined: the interval, or backoff after failures). */
  #schedule(key: string, kept: Kept, delayMs: number | undefined): void {
    if (this.#closed) return;
    const timing = {
      intervalMs: this.#options.refreshIntervalMs ?? DEFAULT_TUF_REFRESH_MS,
      maxBackoffMs: MAX_BACKOFF_MS,
    };
    clearTimeout(kept.refresh);
    kept.refresh = setTimeout(
      () => void this.#tick(key, kept),
      Math.min(delayMs ?? nextDelay(timing, kept.mirror.failures), MAX_TIMER_MS),
    );
    kept.refresh.unref();
    this.#armExpiry(key, kept);
  }

  async #tick(key: string, kept: Kept): Promise<void> {
    const before = kept.mirror.current();
    await this.#refresh(kept);
    if (this.#kept.get(key) !== kept) return;
    if (differs(before, kept.mirror.current())) this.#changed?.();
    this.#schedule(key, kept, undefined);
  }

  /** At the metadata's expiry the root in force becomes unavailable: reload then. */
  #armExpiry(key: string, kept: Kept): void {
    clearTimeout(kept.expiry);
    const until = kept.mirror.current().usableUntil;
    if (until === undefined) return;
    const before = kept.mirror.current();
    kept.expiry = setTimeout(
      () => {
        if (this.#kept.get(key) !== kept) return;
        if (differs(before, kept.mirror.current())) this.#changed?.();
        else this.#armExpiry(key, kept);
      },
      Math.min(Math.max(until - Date.now() + 1, 0), MAX_TIMER_MS),
    );
    kept.expiry.unref();
  }
}

/**
 * A root in force changed: another target, it became (un)available, or its metadata now
 * holds until another time (renewed without a new target, as Sigstore does often: the
 * policy in force must take the new expiry, or it fails the root at the old one).
 */
function differs(a: LoadedTrustRoot, b: LoadedTrustRoot): boolean {
  return (
    a.fingerprint !== b.fingerprint ||
    a.usableUntil !== b.usableUntil ||
    (a.unavailable === undefined) !== (b.unavailable === undefined)
  );
}

/** For a command without a gateway (check, the audit): its own client, with --registry-ca. */
export async function standaloneTufRoots(
  options: TufRootsOptions,
  registry: RegistryOptions,
  logger: Logger,
): Promise<TufRoots> {
  const ca = await readRegistryCa(registry.ca ?? []);
  return new TufRoots(options, {
    http: (policy) => new RegistryHttp({ policy, ca, requestTimeoutMs: TUF_REQUEST_TIMEOUT_MS }),
    logger,
  });
}
