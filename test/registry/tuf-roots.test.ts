/**
 * Trust roots kept in a TUF repository, against a real repository served on 127.0.0.1
 * (test/helpers/tuf-repository.ts) through the gateway's own HTTP client: the first fetch
 * verifies from the pinned root; a new target is picked up; a tampered target, a wrongly
 * signed timestamp and an oversized answer are refused while the last verified root keeps
 * serving; a restart with the mirror down serves the cache; expired metadata fails closed.
 * The targets are the committed trusted_root.json files real cosign wrote.
 */
import { chmod, readdir, readFile, readlink, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { AddressPolicy } from '../../src/registry/addresses.ts';
import { RegistryHttp } from '../../src/registry/http.ts';
import {
  type LoadedTrustRoot,
  loadTrustRoot,
  type TufRootSpec,
  unusable,
} from '../../src/registry/trust-roots.ts';
import { TufRoots } from '../../src/server/tuf-roots.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { ca } from '../helpers/fake-registry.ts';
import { LogCapture, poll, tempDir } from '../helpers/gateway.ts';
import { FIXTURES } from '../helpers/sigstore-fixtures.ts';
import { type Mirror, serve, signer, TufRepository } from '../helpers/tuf-repository.ts';

const BED = join(FIXTURES, 'roots', 'bed.json');
const OTHER = join(FIXTURES, 'roots', 'other.json');

interface Bed {
  readonly repo: TufRepository;
  readonly mirror: Mirror;
  readonly spec: TufRootSpec;
  readonly cacheDir: string;
  /** A new TufRoots over the same cache (a restarted process). */
  roots(options?: { refreshIntervalMs?: number; cacheDir?: string }): {
    roots: TufRoots;
    logs: LogCapture;
  };
}

async function bed(t: ExecutionContext, expires?: { timestamp?: number }): Promise<Bed> {
  const repo = await TufRepository.create(t);
  await repo.publish('trusted_root.json', await readFile(BED), expires ? { expires } : {});
  const mirror = await serve(t, repo);
  const cacheDir = await tempDir(t, 'imagegate-tuf-cache-');
  const spec: TufRootSpec = {
    mirror: mirror.url,
    root: repo.pinned,
    target: 'trusted_root.json',
    network: 'public',
  };
  return {
    repo,
    mirror,
    spec,
    cacheDir,
    roots(options = {}) {
      const logs = new LogCapture();
      const roots = new TufRoots(
        { cacheDir, ...options },
        {
          http: (policy: () => AddressPolicy) =>
            new RegistryHttp({ policy, ca: [ca.cert], requestTimeoutMs: 2_000 }),
          logger: createLogger('info', logs),
        },
      );
      t.teardown(() => roots.close());
      return { roots, logs };
    },
  };
}

const tufStatus = (root: LoadedTrustRoot) => {
  const status = root.summary.tuf;
  if (status === undefined) throw new Error(`${root.name} has no TUF status`);
  return status;
};

test('the first fetch verifies from the pinned root, and the root serves as the file would', async (t) => {
  const b = await bed(t);
  const { roots } = b.roots();
  const root = await roots.source('bed', b.spec);
  const file = await loadTrustRoot('bed', BED);
  t.is(unusable(root), undefined);
  t.is(root.fingerprint, file.fingerprint, 'fingerprinted by content, like the file');
  t.is(root.file, b.repo.pinned, 'the pinned root.json is what is watched');
  t.deepEqual(root.material.tlogs.length, file.material.tlogs.length);
  const status = tufStatus(root);
  t.like(status, { mirror: b.mirror.url, target: 'trusted_root.json', lastError: null });
  t.like(status.metadata, {
    root: { version: 1 },
    timestamp: { version: 1 },
    targets: { version: 1 },
  });
  t.true(String(root.summary.file).startsWith(b.cacheDir));
  t.deepEqual(
    b.mirror.asked,
    ['/2.root.json', '/timestamp.json', '/1.snapshot.json', '/1.targets.json'].concat(
      b.mirror.asked.slice(4),
    ),
  );
  t.regex(b.mirror.asked.at(-1) ?? '', /^\/targets\/[0-9a-f]{64}\.trusted_root\.json$/);
});

test('a new target (new targets, snapshot and timestamp) is picked up on refresh', async (t) => {
  const b = await bed(t);
  const { roots } = b.roots({ refreshIntervalMs: 100 });
  const first = await roots.source('bed', b.spec);
  await b.repo.rotateRoot();
  await b.repo.publish('trusted_root.json', await readFile(OTHER));
  let changes = 0;
  roots.start(() => changes++);
  await poll(async () => (changes > 0 ? true : undefined), 'a change');
  const next = await roots.source('bed', b.spec);
  t.is(next.fingerprint, (await loadTrustRoot('other', OTHER)).fingerprint);
  t.not(next.fingerprint, first.fingerprint);
  t.like(tufStatus(next).metadata, { root: { version: 2 }, timestamp: { version: 2 } });
});

for (const [title, spoil, reason] of [
  [
    'a tampered target (its hash does not match the targets metadata)',
    async (repo: TufRepository) => {
      await repo.publish('trusted_root.json', await readFile(OTHER));
      await repo.tamper('trusted_root.json', await readFile(BED));
    },
    /refresh from .* failed: .*(hash|length)/i,
  ],
  [
    'a timestamp signed by a key the root does not name',
    async (repo: TufRepository) => {
      await repo.publish('trusted_root.json', await readFile(OTHER), {
        by: { timestamp: signer() },
      });
    },
    /refresh from .* failed: .*timestamp/i,
  ],
  [
    'targets signed by the snapshot key',
    async (repo: TufRepository) => {
      await repo.publish('trusted_root.json', await readFile(OTHER), {
        by: { targets: repo.signers.snapshot },
      });
    },
    /refresh from .* failed: .*targets/i,
  ],
] as const) {
  test(`${title} is refused; the last verified root keeps serving, the failure shows`, async (t) => {
    const b = await bed(t);
    const { roots, logs } = b.roots({ refreshIntervalMs: 100 });
    const first = await roots.source('bed', b.spec);
    await spoil(b.repo);
    let changes = 0;
    roots.start(() => changes++);
    const failed = await poll(async () => {
      const status = tufStatus(await roots.source('bed', b.spec));
      return status.consecutiveFailures > 0 ? status : undefined;
    }, 'a failed refresh');
    t.regex(String(failed.lastError), reason);
    const now = await roots.source('bed', b.spec);
    t.is(now.fingerprint, first.fingerprint);
    t.is(unusable(now), undefined);
    t.is(changes, 0, 'no reload for a refused refresh');
    t.true(
      logs.messages('trust root refresh failed; the last verified root keeps serving').length > 0,
    );
    // A restart reads the last verified copy, not the refused one.
    const again = await b.roots().roots.source('bed', { ...b.spec });
    t.is(again.fingerprint, first.fingerprint);
  });
}

test('a restart with the mirror down serves the cached root', async (t) => {
  const b = await bed(t);
  const first = await b.roots().roots.source('bed', b.spec);
  b.mirror.down = true;
  const asked = b.mirror.asked.length;
  const { roots } = b.roots();
  const root = await roots.source('bed', b.spec);
  t.is(unusable(root), undefined);
  t.is(root.fingerprint, first.fingerprint);
  t.is(b.mirror.asked.length, asked, 'a valid cache is read without asking');
  t.like(tufStatus(root), { lastError: null });
  // Started, it asks at once; the failure shows and the cached root keeps serving.
  roots.start(() => undefined);
  const failed = await poll(async () => {
    const status = tufStatus(await roots.source('bed', b.spec));
    return status.lastError === null ? undefined : status;
  }, 'the startup refresh to fail');
  t.regex(String(failed.lastError), /503/);
  t.is(unusable(await roots.source('bed', b.spec)), undefined);
});

test('expired metadata fails closed with its reason, also after a restart', async (t) => {
  const b = await bed(t, { timestamp: 3 });
  const { roots } = b.roots({ refreshIntervalMs: 60_000 });
  const root = await roots.source('bed', b.spec);
  t.is(unusable(root), undefined);
  t.truthy(root.usableUntil);
  b.mirror.down = true;
  let changes = 0;
  roots.start(() => changes++);
  await poll(async () => (changes > 0 ? true : undefined), 'the expiry to reload', {
    tries: 100,
    everyMs: 100,
  });
  t.regex(String(unusable(root)), /trust root bed is unavailable: its TUF metadata expired at /);
  const now = await roots.source('bed', b.spec);
  t.regex(String(now.unavailable), /its TUF metadata expired at .* and no refresh since verified/);
  t.is(now.material.tlogs.length, 0);
  const restarted = await b.roots().roots.source('bed', b.spec);
  t.regex(String(restarted.unavailable), /its timestamp\.json expired at /);
  t.regex(
    String(restarted.unavailable),
    /503/,
    'the mirror was asked too, and why it failed shows',
  );
});

test('metadata already expired at the mirror is refused from the start', async (t) => {
  const b = await bed(t, { timestamp: -60 });
  const root = await b.roots().roots.source('bed', b.spec);
  t.regex(String(root.unavailable), /no verified copy of trusted_root\.json from .*expired/i);
});

test('an oversized answer is cut off at what TUF expects of the file', async (t) => {
  const b = await bed(t);
  b.mirror.oversize = { path: '/timestamp.json', bytes: 1024 * 1024 };
  const root = await b.roots().roots.source('bed', b.spec);
  t.regex(String(root.unavailable), /sent more than 16384 bytes for \/timestamp\.json/);
});

test('a pinned root.json that is not one is a configuration error', async (t) => {
  const b = await bed(t);
  const { roots } = b.roots();
  await t.throwsAsync(roots.source('bed', { ...b.spec, root: BED }), {
    message: /not a TUF root\.json signed by its own keys/,
  });
  await t.throwsAsync(roots.source('bed', { ...b.spec, root: join(b.cacheDir, 'gone.json') }), {
    message: /cannot read its pinned TUF root/,
  });
  t.deepEqual(b.mirror.asked, []);
});

test('a cache directory others may write to is not used', async (t) => {
  const b = await bed(t);
  await chmod(b.cacheDir, 0o777);
  const root = await b.roots().roots.source('bed', b.spec);
  t.regex(
    String(root.unavailable),
    /the TUF cache .* must belong to this user and be writable by no one else \(mode 777\)/,
  );
});

test('a cache directory that is a symbolic link is not used', async (t) => {
  const b = await bed(t);
  // What another user of a shared /tmp could plant: a link to a directory of its choosing.
  const planted = join(await tempDir(t, 'imagegate-tuf-planted-'), 'cache');
  await symlink(b.cacheDir, planted);
  const root = await b.roots({ cacheDir: planted }).roots.source('bed', b.spec);
  t.regex(String(root.unavailable), /the TUF cache .* is a symbolic link/);
});

test('a verified copy gone from under its link: the mirror is asked again from the pinned root', async (t) => {
  const b = await bed(t);
  const first = await b.roots().roots.source('bed', b.spec);
  const [mirrorDir] = await readdir(b.cacheDir);
  const dir = join(b.cacheDir, String(mirrorDir));
  // A tmp cleaner removed the generation `current` names.
  await rm(join(dir, await readlink(join(dir, 'current'))), { recursive: true });
  const { roots } = b.roots();
  const again = await roots.source('bed', b.spec);
  t.is(unusable(again), undefined);
  t.is(again.fingerprint, first.fingerprint);
  t.like(tufStatus(again), { lastError: null });
});
