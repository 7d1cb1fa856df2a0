/**
 * One trust root kept in a TUF repository (`trustRoots.<name>: {mirror, root, target}`), as
 * Sigstore publishes its trusted_root.json. tuf-js's client does the TUF work — root
 * rotation from the pinned root.json on (never trust on first use), timestamp, snapshot and
 * targets with their signatures, versions (rollback) and expiry (freeze), the target's
 * length and hashes — over the gateway's HTTP client (tuf-fetcher.ts).
 *
 * What it verified is kept on disk, one complete generation per directory and a `current`
 * symlink swapped to the newest, so a process restarted while the mirror is down serves the
 * last verified root until its metadata expires, and a refresh that fails (unreachable,
 * tampered, wrongly signed, expired) leaves the last generation as it was. The cache is per
 * mirror, target and pinned root: another pinned root starts afresh from that root.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  cp,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { Metadata, MetadataKind, type Root } from '@tufjs/models';
import { Updater } from 'tuf-js';
import { describeThrown } from '../shared/describe-thrown.ts';
import { isRecord } from '../shared/json.ts';
import { serial } from '../shared/serial.ts';
import type { RegistryHttp } from './http.ts';
import { RegistryError } from './registry-error.ts';
import {
  type LoadedTrustRoot,
  parseTrustRoot,
  type TufRootSpec,
  type TufStatus,
  unavailableTrustRoot,
} from './trust-roots.ts';
import { OFFLINE, TufFetcher } from './tuf-fetcher.ts';

/** One refresh (root rotations, the three roles, the target), at most. */
export const DEFAULT_REFRESH_BUDGET_MS = 60_000;

/** An older generation is removed after this long (another process may still read it). */
const GENERATION_GRACE_MS = 10 * 60_000;

const ROLES = ['root', 'timestamp', 'snapshot', 'targets'] as const;

type RoleInfo = Record<(typeof ROLES)[number], { version: number; expires: string }>;

export interface TufMirrorDeps {
  /** Its address policy must name the mirror's host. */
  readonly http: RegistryHttp;
  /** Where every mirror's cache lives (a writable directory). */
  readonly cacheDir: string;
  readonly refreshBudgetMs?: number;
}

interface Verified {
  readonly root: LoadedTrustRoot;
  readonly metadata: RoleInfo;
  readonly usableUntil: number;
  readonly refreshedAt: string;
}

/** Why a pinned root.json is not one, or undefined: a TUF root signed by its own keys. */
export function pinnedRootProblem(bytes: Buffer): string | undefined {
  try {
    const json: unknown = JSON.parse(bytes.toString('utf8'));
    if (!isRecord(json)) return 'it is not a JSON object';
    // JSON.parse made it: plain JSON values all the way down.
    const root = Metadata.fromJSON(MetadataKind.Root, json as Parameters<typeof Root.fromJSON>[0]);
    root.verifyDelegate(MetadataKind.Root, root);
    return undefined;
  } catch (error) {
    return `it is not a TUF root.json signed by its own keys: ${describeThrown(error)}`;
  }
}

export class TufMirror {
  readonly name: string;
  readonly spec: TufRootSpec;
  /** This mirror's cache directory. */
  readonly dir: string;
  readonly #pinned: Buffer;
  readonly #deps: TufMirrorDeps;
  #verified: Verified | undefined;
  #lastAttempt: string | undefined;
  #lastError: string | undefined;
  /** Why the copy on disk was not used, when it was not. */
  #cacheError: string | undefined;
  #failures = 0;
  /** Refreshes and cache reads, one at a time. */
  readonly #serially = serial();

  /** `pinned`: the content of `spec.root`, checked by pinnedRootProblem. */
  constructor(name: string, spec: TufRootSpec, pinned: Buffer, deps: TufMirrorDeps) {
    this.name = name;
    this.spec = spec;
    this.#pinned = pinned;
    this.#deps = deps;
    const key = createHash('sha256')
      .update(`${spec.mirror}\0${spec.target}\0`)
      .update(createHash('sha256').update(pinned).digest())
      .digest('hex')
      .slice(0, 16);
    this.dir = join(deps.cacheDir, `${name}-${key}`);
  }

  /** Failed refreshes since the last one that verified. */
  get failures(): number {
    return this.#failures;
  }

  /** The host[:port] the address policy must allow. */
  get host(): string {
    return new URL(this.spec.mirror).host.toLowerCase();
  }

  /** Verifies the copy on disk without asking the mirror; an expired one is not used. */
  readCache(): Promise<void> {
    return this.#serially(async () => {
      try {
        await privateDir(this.#deps.cacheDir);
      } catch (error) {
        this.#cacheError = describeThrown(error);
        return;
      }
      const from = await this.#currentGeneration();
      if (from === undefined) return;
      try {
        const updater = new Updater({
          metadataDir: join(from, 'metadata'),
          metadataBaseUrl: this.spec.mirror,
          targetDir: join(from, 'targets'),
          fetcher: OFFLINE,
          forceCache: true,
        });
        this.#verified = await this.#verify(updater, from, await refreshedAt(from));
      } catch (error) {
        this.#cacheError = `the copy kept in ${from} cannot be used: ${await this.#why(from, error)}`;
      }
    });
  }

  /**
   * Asks the mirror, in a new generation that replaces the current one only once everything
   * verified. Never throws: `ok` false and the failure kept for status() when it fails.
   */
  refresh(): Promise<{ readonly ok: boolean; readonly error?: string }> {
    return this.#serially(async () => {
      const attempt = new Date().toISOString();
      this.#lastAttempt = attempt;
      const generation = join(
        this.dir,
        `gen-${Date.now()}-${process.pid}-${randomBytes(4).toString('hex')}`,
      );
      try {
        await privateDir(this.#deps.cacheDir);
        await mkdir(this.dir, { recursive: true, mode: 0o700 });
        const from = await this.#currentGeneration();
        if (from === undefined) {
          await mkdir(join(generation, 'metadata'), { recursive: true });
          await mkdir(join(generation, 'targets'), { recursive: true });
          await writeFile(join(generation, 'metadata', 'root.json'), this.#pinned);
        } else {
          await cp(from, generation, { recursive: true });
        }
        const signal = AbortSignal.timeout(this.#deps.refreshBudgetMs ?? DEFAULT_REFRESH_BUDGET_MS);
        const updater = new Updater({
          metadataDir: join(generation, 'metadata'),
          metadataBaseUrl: this.spec.mirror,
          targetDir: join(generation, 'targets'),
          targetBaseUrl: `${this.spec.mirror.replace(/\/$/, '')}/targets/`,
          fetcher: new TufFetcher(this.#deps.http, this.host, signal, this.dir),
        });
        const verified = await this.#verify(updater, generation, attempt);
        await writeFile(
          join(generation, 'refreshed.json'),
          `${JSON.stringify({ refreshedAt: verified.refreshedAt })}\n`,
        );
        await this.#swap(generation);
        this.#verified = verified;
        this.#failures = 0;
        this.#lastError = undefined;
        return { ok: true };
      } catch (error) {
        await rm(generation, { recursive: true, force: true });
        this.#failures++;
        this.#lastError = `refresh from ${this.spec.mirror} failed: ${describeThrown(error)}`;
        return { ok: false, error: this.#lastError };
      }
    });
  }

  /** The root in force: the last verified one while its metadata holds, else unavailable. */
  current(now = Date.now()): LoadedTrustRoot {
    const verified = this.#verified;
    let root: LoadedTrustRoot;
    if (verified === undefined) {
      const known = [this.#cacheError, this.#lastError].filter((w) => w !== undefined);
      const why = known.length > 0 ? known.join('; ') : 'it was never fetched';
      root = unavailableTrustRoot(
        this.name,
        this.spec.root,
        `no verified copy of ${this.spec.target} from ${this.spec.mirror}: ${why}`,
        this.spec,
      );
    } else if (now >= verified.usableUntil) {
      const after = this.#lastError === undefined ? '' : `; ${this.#lastError}`;
      root = unavailableTrustRoot(
        this.name,
        this.spec.root,
        `its TUF metadata expired at ${new Date(verified.usableUntil).toISOString()} and no refresh since verified${after}`,
        this.spec,
      );
    } else {
      root = verified.root;
    }
    // The summary reads the mirror's status when shown: a failed refresh changes no root.
    const summary = Object.defineProperty({ ...root.summary }, 'tuf', {
      enumerable: true,
      get: () => this.status(),
    });
    return { ...root, summary };
  }

  status(): TufStatus {
    const verified = this.#verified;
    return {
      mirror: this.spec.mirror,
      root: this.spec.root,
      target: this.spec.target,
      cache: this.dir,
      refreshedAt: verified?.refreshedAt ?? null,
      lastAttempt: this.#lastAttempt ?? null,
      lastError: this.#lastError ?? null,
      consecutiveFailures: this.#failures,
      metadata: verified?.metadata ?? null,
      usableUntil: verified === undefined ? null : new Date(verified.usableUntil).toISOString(),
    };
  }

  /** tuf-js's refresh over `generation`, then the target: found there (verified) or fetched. */
  async #verify(updater: Updater, generation: string, refreshedAt: string): Promise<Verified> {
    await updater.refresh();
    const info = await updater.getTargetInfo(this.spec.target);
    if (info === undefined) {
      throw new RegistryError(`the repository's targets name no ${this.spec.target}`);
    }
    const file = (await updater.findCachedTarget(info)) ?? (await updater.downloadTarget(info));
    const text = await readFile(file, 'utf8');
    const kept = join(this.dir, 'current', 'targets', encodeURIComponent(this.spec.target));
    const parsed = parseTrustRoot(
      this.name,
      this.spec.root,
      text,
      `${this.spec.target} from ${this.spec.mirror}`,
    );
    const metadata = await readRoles(join(generation, 'metadata'));
    const usableUntil = Math.min(...ROLES.map((role) => Date.parse(metadata[role].expires)));
    return {
      root: {
        ...parsed,
        summary: { ...parsed.summary, file: kept },
        tuf: this.spec,
        usableUntil,
      },
      metadata,
      usableUntil,
      refreshedAt,
    };
  }

  /** Why the copy in `generation` was refused: its expiry, when that is why. */
  async #why(generation: string, error: unknown): Promise<string> {
    try {
      const metadata = await readRoles(join(generation, 'metadata'));
      const now = Date.now();
      const expired = ROLES.find((role) => Date.parse(metadata[role].expires) <= now);
      if (expired !== undefined) {
        return `its ${expired}.json expired at ${metadata[expired].expires}`;
      }
    } catch {
      // Unreadable metadata: tuf-js's own message says more.
    }
    return describeThrown(error);
  }

  /**
   * The generation `current` names, if it still holds metadata; a link left dangling (a tmp
   * cleaner, a crash) is no copy at all, and the next refresh starts from the pinned root.
   */
  async #currentGeneration(): Promise<string | undefined> {
    try {
      const generation = join(this.dir, await readlink(join(this.dir, 'current')));
      await stat(join(generation, 'metadata', 'root.json'));
      return generation;
    } catch {
      return undefined;
    }
  }

  /** Points `current` at `generation` in one rename, then removes generations long replaced. */
  async #swap(generation: string): Promise<void> {
    const name = generation.slice(this.dir.length + 1);
    const link = join(this.dir, `.current-${process.pid}-${randomBytes(4).toString('hex')}`);
    await symlink(name, link);
    await rename(link, join(this.dir, 'current'));
    // Tidying is not the refresh: a failure here must not undo the swap just made.
    try {
      const now = Date.now();
      for (const entry of await readdir(this.dir)) {
        if (!entry.startsWith('gen-') || entry === name) continue;
        const path = join(this.dir, entry);
        const { mtimeMs } = await stat(path).catch(() => ({ mtimeMs: now }));
        if (now - mtimeMs > GENERATION_GRACE_MS) await rm(path, { recursive: true, force: true });
      }
    } catch {
      // Left for the next refresh to tidy.
    }
  }
}

/**
 * The cache directory, made if missing; refused unless this process's user owns it and no
 * one else may write to it (whoever can write there chooses the root, like the pinned one).
 */
async function privateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // lstat: a symbolic link planted at the path (shared /tmp) would lead elsewhere.
  const info = await lstat(dir);
  const { uid, mode } = info;
  if (info.isSymbolicLink()) {
    throw new RegistryError(`the TUF cache ${dir} is a symbolic link; name the directory itself`);
  }
  if (uid !== process.getuid?.() || (mode & 0o022) !== 0) {
    throw new RegistryError(
      `the TUF cache ${dir} must belong to this user and be writable by no one else (mode ${(mode & 0o777).toString(8)})`,
    );
  }
}

/** When the refresh that wrote `generation` verified it ("unknown" if it did not say). */
async function refreshedAt(generation: string): Promise<string> {
  try {
    const saved: unknown = JSON.parse(await readFile(join(generation, 'refreshed.json'), 'utf8'));
    if (isRecord(saved) && typeof saved.refreshedAt === 'string') return saved.refreshedAt;
  } catch {
    // Written by every refresh; a generation without it says nothing of its time.
  }
  return 'unknown';
}

/** Versions and expiry of the four roles' metadata (verified by tuf-js before this reads it). */
async function readRoles(dir: string): Promise<RoleInfo> {
  const info: Partial<RoleInfo> = {};
  for (const role of ROLES) {
    const json: unknown = JSON.parse(await readFile(join(dir, `${role}.json`), 'utf8'));
    const signed = isRecord(json) && isRecord(json.signed) ? json.signed : {};
    const { version, expires } = signed;
    if (
      typeof version !== 'number' ||
      typeof expires !== 'string' ||
      Number.isNaN(Date.parse(expires))
    ) {
      throw new RegistryError(`${role}.json has no version or expiry`);
    }
    info[role] = { version, expires };
  }
  return info as RoleInfo;
}
