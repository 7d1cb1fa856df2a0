/**
 * Fault injection on the policy bundle of a running gateway: written half-way, truncated,
 * emptied, garbage, deleted, unreadable, and the mounted ConfigMap's `..data` link or key
 * removed. Each time the last good bundle must keep deciding, /readyz must stay ready and
 * say why the reload was refused, the refusal must be counted and logged once, and a good
 * bundle afterwards must restore normal service. Light traffic runs throughout: no request
 * may fail.
 *
 * "Unreadable" is chmod 000 where that stops a read; as root (CAP_DAC_OVERRIDE, as in CI
 * and containers) it does not, so there it is a directory in the file's place (EISDIR).
 * The test log says which was used.
 */
import { createHash } from 'node:crypto';
import {
  access,
  chmod,
  constants,
  mkdir,
  open,
  rename,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import type { JsonObject } from '../../src/shared/json.ts';
import { committedBundle, committedBundleBytes, packBundle } from '../helpers/bundles.ts';
import { kubeletSwap, mountConfigMap } from '../helpers/configmap.ts';
import {
  admissionAnswer,
  poll,
  record,
  startTestGateway,
  type Teardown,
  type TestGateway,
  tempDir,
} from '../helpers/gateway.ts';
import { nginxPodReview, reloads, sleep, ValidateTraffic } from '../helpers/reload-traffic.ts';

const INTERVAL_MS = 50;
const REFUSED_MSG = 'policy reload refused; the previous policy keeps serving';
const KEY = 'imagegate.tar.gz';

/** The committed bundle with Docker Hub's library trusted and its own revision. */
let permissiveBytes: Promise<Buffer> | undefined;
function permissive(): Promise<Buffer> {
  permissiveBytes ??= (async () => {
    const files = new Map((await committedBundle()).files);
    const data = record(JSON.parse(files.get('data.json')?.toString('utf8') ?? '{}'), 'data');
    const config = record(record(data.imagegate, 'data.imagegate').config, 'config');
    const trusted = config.trustedRegistries;
    config.trustedRegistries = [...(Array.isArray(trusted) ? trusted : []), 'docker.io/library'];
    files.set('data.json', Buffer.from(JSON.stringify(data)));
    const manifest = record(JSON.parse(files.get('.manifest')?.toString('utf8') ?? '{}'), 'm');
    files.set('.manifest', Buffer.from(JSON.stringify({ ...manifest, revision: 'permissive' })));
    return packBundle(files);
  })();
  return permissiveBytes;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

async function allowed(gw: TestGateway, uid: string): Promise<boolean> {
  const { response } = admissionAnswer(await gw.post('/v1/validate', nginxPodReview(uid)));
  if (typeof response.allowed !== 'boolean') throw new TypeError('no boolean allowed');
  return response.allowed;
}

interface Readiness {
  readonly status: number;
  readonly body: JsonObject;
  readonly lastLoad: JsonObject;
}

async function readyz(gw: TestGateway): Promise<Readiness> {
  const result = await gw.health('/readyz');
  const body = record(result.body, '/readyz');
  return { status: result.status, body, lastLoad: record(body.lastLoad, 'lastLoad') };
}

/** Replaces `path` in one step (write beside, rename over), as a careful writer would. */
/**
 * Atomic: renamed over the old file, so a poll never sees the path missing (on a busy
 * machine a removal first could be seen, loaded and refused, an extra refusal). Only a
 * directory in its place (see makeUnreadable) is removed first.
 */
async function replaceFile(path: string, bytes: Buffer): Promise<void> {
  await writeFile(`${path}.tmp`, bytes);
  try {
    await rename(`${path}.tmp`, path);
  } catch {
    await rm(path, { recursive: true, force: true });
    await rename(`${path}.tmp`, path);
  }
}

/**
 * Makes `path` unreadable: chmod 000 where that denies reads, else (root) a directory in
 * its place. Returns how, for the test log.
 */
async function makeUnreadable(path: string): Promise<'chmod 000' | 'directory'> {
  await chmod(path, 0o000);
  try {
    await access(path, constants.R_OK);
  } catch {
    return 'chmod 000';
  }
  await rm(path, { force: true });
  await mkdir(path);
  return 'directory';
}

/** The bundle as a mounted ConfigMap again, whatever a fault did to the mount. */
async function remount(mount: string, bytes: Buffer): Promise<void> {
  await rm(join(mount, 'other.tar.gz'), { force: true });
  await kubeletSwap(mount, bytes);
  await rm(join(mount, KEY), { force: true });
  await symlink(`..data/${KEY}`, join(mount, KEY));
}

interface Setup {
  readonly gw: TestGateway;
  /** The file (`file` layout) or mounted directory (`mount` layout) the gateway watches. */
  readonly target: string;
  readonly traffic: ValidateTraffic;
  /** Puts `bytes` in place as an operator would: atomic rename or kubelet swap. */
  install(bytes: Buffer): Promise<void>;
}

/** A gateway on the committed bundle, then switched to the permissive one (the last good). */
async function setUp(t: Teardown, layout: 'file' | 'mount'): Promise<Setup> {
  const committed = await committedBundleBytes();
  let target: string;
  let install: (bytes: Buffer) => Promise<void>;
  if (layout === 'file') {
    target = join(await tempDir(t, 'imagegate-fault-bundle-'), KEY);
    await writeFile(target, committed);
    install = (bytes) => replaceFile(target, bytes);
  } else {
    const mount = await mountConfigMap(committed);
    t.teardown(() => rm(mount, { recursive: true, force: true }));
    target = mount;
    install = (bytes) => remount(mount, bytes);
  }
  const gw = await startTestGateway(t, { bundle: target, watchIntervalMs: INTERVAL_MS });
  const traffic = new ValidateTraffic(gw);
  t.teardown(() => traffic.stop());
  await install(await permissive());
  await poll(
    async () => ((await allowed(gw, 'switch')) ? true : undefined),
    'the permissive bundle',
  );
  return { gw, target, traffic, install };
}

interface Fault {
  readonly layout: 'file' | 'mount';
  inject(target: string): Promise<string | undefined>;
  readonly error: RegExp;
}

const refusedAndRestored = test.macro({
  async exec(t, fault: Fault) {
    const { gw, target, traffic, install } = await setUp(t, fault.layout);
    const good = await permissive();
    const serving = gw.gateway.policy.engine;
    t.is(serving?.revision, 'permissive');
    t.is(serving?.bundleDigest, sha256(good));

    const how = await fault.inject(target);
    if (how !== undefined) t.log(`made unreadable by ${how}`);
    const refused = await poll(async () => {
      const ready = await readyz(gw);
      return ready.lastLoad.ok === false ? ready : undefined;
    }, 'the faulty bundle to be refused');
    t.is(refused.status, 200, 'still ready');
    t.true(refused.body.ready);
    t.is(refused.body.revision, 'permissive');
    t.is(refused.body.bundleDigest, sha256(good));
    t.regex(String(refused.lastLoad.error), fault.error);
    t.is(gw.gateway.policy.engine, serving, 'the same engine keeps serving');
    t.true(await allowed(gw, 'during-fault'), 'the last good policy decides');
    t.is(await reloads(gw, 'policy', 'refused'), 1);

    const logged = gw.logs.messages(REFUSED_MSG);
    t.is(logged.length, 1);
    t.is(logged[0]?.level, 50);
    t.is(logged[0]?.serving, 'permissive');
    t.regex(String(logged[0]?.error), fault.error);

    // Refused once: a broken file that stays broken is not retried (or logged) every poll.
    await sleep(INTERVAL_MS * 6);
    t.is(await reloads(gw, 'policy', 'refused'), 1);

    await install(await committedBundleBytes());
    await poll(
      async () => ((await allowed(gw, 'restore')) ? undefined : true),
      'the committed bundle to be restored',
    );
    const restored = await readyz(gw);
    t.true(restored.lastLoad.ok);
    t.is(restored.body.bundleDigest, sha256(await committedBundleBytes()));
    t.is(await reloads(gw, 'policy', 'ok'), 2);

    await traffic.stop();
    t.deepEqual(traffic.failures, []);
    t.true(traffic.answered > 0);
  },
  title: (title = '') => `bundle ${title}: refused, the last good keeps serving, then restored`,
});

test('truncated to half its size', refusedAndRestored, {
  layout: 'file',
  async inject(path) {
    const bytes = await permissive();
    await writeFile(path, bytes.subarray(0, Math.floor(bytes.length / 2)));
    return undefined;
  },
  error: /not a readable (gzip|tar) archive/,
});

test('truncated to zero bytes', refusedAndRestored, {
  layout: 'file',
  async inject(path) {
    await writeFile(path, '');
    return undefined;
  },
  error: /not a readable gzip archive|has no \/policy\.wasm/,
});

test('overwritten with garbage', refusedAndRestored, {
  layout: 'file',
  async inject(path) {
    await writeFile(path, 'this is not a bundle\n');
    return undefined;
  },
  error: /not a readable gzip archive/,
});

test('replaced by an archive without policy.wasm', refusedAndRestored, {
  layout: 'file',
  async inject(path) {
    await writeFile(path, await packBundle(new Map([['data.json', '{}']])));
    return undefined;
  },
  error: /has no \/policy\.wasm/,
});

test('replaced by one whose policy.wasm does not compile', refusedAndRestored, {
  layout: 'mount',
  async inject(mount) {
    const files = new Map((await committedBundle()).files);
    files.set('policy.wasm', Buffer.from('\0asm\x01\0\0\0 truncated module'));
    await kubeletSwap(mount, await packBundle(files));
    return undefined;
  },
  error: /policy\.wasm does not load/,
});

test('file deleted', refusedAndRestored, {
  layout: 'file',
  async inject(path) {
    await rm(path);
    return undefined;
  },
  error: /cannot read bundle .*ENOENT/,
});

test('file unreadable', refusedAndRestored, {
  layout: 'mount',
  // The real file behind ..data: the mount's own symlinks stay as kubelet made them.
  inject: (mount) => makeUnreadable(join(mount, '..data', KEY)),
  error: /cannot read bundle .*(EACCES|EISDIR)/,
});

test('mount: the ..data link removed', refusedAndRestored, {
  layout: 'mount',
  async inject(mount) {
    await rm(join(mount, '..data'));
    return undefined;
  },
  error: /cannot read bundle .*ENOENT/,
});

test('mount: the ..data link dangling (its generation removed)', refusedAndRestored, {
  layout: 'mount',
  async inject(mount) {
    await symlink('..generation_that_was_removed', join(mount, '..data_tmp'));
    await rename(join(mount, '..data_tmp'), join(mount, '..data'));
    return undefined;
  },
  error: /cannot read bundle .*ENOENT/,
});

test('mount: the ConfigMap key removed', refusedAndRestored, {
  layout: 'mount',
  async inject(mount) {
    await rm(join(mount, KEY));
    return undefined;
  },
  error: /no \*\.tar\.gz bundle in directory/,
});

test('mount: a second bundle key added', refusedAndRestored, {
  layout: 'mount',
  async inject(mount) {
    await writeFile(join(mount, 'other.tar.gz'), await committedBundleBytes());
    return undefined;
  },
  error: /more than one bundle in directory .*imagegate\.tar\.gz, other\.tar\.gz/,
});

test('a bundle written in place in two halves is never served half-written', async (t) => {
  const { gw, target, traffic } = await setUp(t, 'file');
  const next = await committedBundleBytes();
  const half = Math.floor(next.length / 2);
  const okBefore = await reloads(gw, 'policy', 'ok');

  // A slow writer: the first half, a pause of two poll intervals, then the rest.
  const file = await open(target, 'w');
  try {
    await file.write(next, 0, half, 0);
    await sleep(INTERVAL_MS * 2);
    t.true(await allowed(gw, 'mid-write'), 'the last good bundle decides while it is written');
    await file.write(next, half, next.length - half, half);
  } finally {
    await file.close();
  }

  await poll(
    async () => ((await allowed(gw, 'complete')) ? undefined : true),
    'the completed bundle',
  );
  t.is(gw.gateway.policy.engine?.bundleDigest, sha256(next));
  t.is(await reloads(gw, 'policy', 'ok'), okBefore + 1, 'only the complete file was loaded');
  // The debounce may have let the half file through after its two stable intervals; if it
  // did, it was refused, never served.
  const refused = gw.logs.messages(REFUSED_MSG);
  t.true(refused.length <= 1);
  for (const line of refused) t.regex(String(line.error), /not a readable (gzip|tar) archive/);
  t.log(`half-written file refused ${refused.length} time(s)`);
  t.true((await readyz(gw)).lastLoad.ok);

  await traffic.stop();
  t.deepEqual(traffic.failures, []);
});
