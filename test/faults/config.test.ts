/**
 * Fault injection on the policy configuration of a running gateway: YAML errors, unknown
 * keys, wrong types, a deleted or unreadable file, a mounted ConfigMap swapped to a bad
 * document. The last good configuration must keep deciding, /readyz must stay ready and
 * say why, the refusal must be counted and logged, and a good file must restore service.
 *
 * "Unreadable" is chmod 000 where that stops a read; as root (CAP_DAC_OVERRIDE) it does not,
 * so there it is a directory in the file's place (EISDIR).
 */
import { access, chmod, constants, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { ConfigError } from '../../src/policy/config-error.ts';
import { startGateway } from '../../src/server/gateway.ts';
import type { JsonObject } from '../../src/shared/json.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { defaultBundlePath } from '../../src/shared/paths.ts';
import { committedBundle, packBundle } from '../helpers/bundles.ts';
import {
  admissionAnswer,
  poll,
  record,
  startTestGateway,
  type Teardown,
  type TestGateway,
  tempDir,
} from '../helpers/gateway.ts';
import { nginxPodReview, reloads, ValidateTraffic } from '../helpers/reload-traffic.ts';

const INTERVAL_MS = 50;
const REFUSED_MSG = 'policy reload refused; the previous policy keeps serving';
/** Denies nginx (the bundle's default trusted registries). */
const STRICT = 'enforcement: deny\n';
/** Allows nginx: the last good configuration in every test. */
const PERMISSIVE = 'trustedRegistries: [docker.io/library]\n';

async function allowed(gw: TestGateway, uid: string): Promise<boolean> {
  const { response } = admissionAnswer(await gw.post('/v1/validate', nginxPodReview(uid)));
  if (typeof response.allowed !== 'boolean') throw new TypeError('no boolean allowed');
  return response.allowed;
}

async function readyz(gw: TestGateway): Promise<{ status: number; body: JsonObject }> {
  const result = await gw.health('/readyz');
  return { status: result.status, body: record(result.body, '/readyz') };
}

const lastLoad = (body: JsonObject) => record(body.lastLoad, 'lastLoad');

/** A ConfigMap mount holding config.yaml, laid out and swapped as kubelet does. */
let generations = 0;
async function swapMounted(mount: string, text: string): Promise<void> {
  generations += 1;
  const dir = `..2026_11_24_${process.pid}_${generations}`;
  await mkdir(join(mount, dir));
  await writeFile(join(mount, dir, 'config.yaml'), text);
  await symlink(dir, join(mount, '..data_tmp'));
  await rename(join(mount, '..data_tmp'), join(mount, '..data'));
}

interface Setup {
  readonly gw: TestGateway;
  /** The configuration file path the gateway was given. */
  readonly path: string;
  readonly traffic: ValidateTraffic;
  install(text: string): Promise<void>;
}

/** A gateway on the strict configuration, then switched to the permissive one. */
async function setUp(t: Teardown, layout: 'file' | 'mount'): Promise<Setup> {
  const dir = await tempDir(t, 'imagegate-fault-config-');
  const path = join(dir, 'config.yaml');
  let install: (text: string) => Promise<void>;
  if (layout === 'file') {
    // Renamed over atomically, so a poll never sees the file missing; only a directory in
    // its place (makeUnreadable) is removed first.
    install = async (text) => {
      await writeFile(`${path}.tmp`, text);
      try {
        await rename(`${path}.tmp`, path);
      } catch {
        await rm(path, { recursive: true, force: true });
        await rename(`${path}.tmp`, path);
      }
    };
  } else {
    install = (text) => swapMounted(dir, text);
    await symlink('..data/config.yaml', path);
  }
  await install(STRICT);
  const gw = await startTestGateway(t, { config: path, watchIntervalMs: INTERVAL_MS });
  const traffic = new ValidateTraffic(gw);
  t.teardown(() => traffic.stop());
  await install(PERMISSIVE);
  await poll(
    async () => ((await allowed(gw, 'switch')) ? true : undefined),
    'the permissive configuration',
  );
  return { gw, path, traffic, install };
}

interface Fault {
  readonly layout: 'file' | 'mount';
  inject(setup: Setup): Promise<void>;
  readonly error: RegExp;
}

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

const refusedAndRestored = test.macro({
  async exec(t, fault: Fault) {
    const setup = await setUp(t, fault.layout);
    const { gw, traffic } = setup;
    const serving = gw.gateway.policy.engine;

    await fault.inject(setup);
    const refused = await poll(async () => {
      const ready = await readyz(gw);
      return lastLoad(ready.body).ok === false ? ready : undefined;
    }, 'the faulty configuration to be refused');
    t.is(refused.status, 200, 'still ready');
    t.true(refused.body.ready);
    t.regex(String(lastLoad(refused.body).error), fault.error);
    t.is(gw.gateway.policy.engine, serving, 'the same engine keeps serving');
    t.true(await allowed(gw, 'during-fault'), 'the last good configuration decides');
    t.is(await reloads(gw, 'policy', 'refused'), 1);
    const logged = gw.logs.messages(REFUSED_MSG);
    t.is(logged.length, 1);
    t.is(logged[0]?.level, 50);
    t.regex(String(logged[0]?.error), fault.error);

    await setup.install(STRICT);
    await poll(
      async () => ((await allowed(gw, 'restore')) ? undefined : true),
      'the strict configuration',
    );
    t.true(lastLoad((await readyz(gw)).body).ok);
    t.is(await reloads(gw, 'policy', 'ok'), 2);

    await traffic.stop();
    t.deepEqual(traffic.failures, []);
    t.true(traffic.answered > 0);
  },
  title: (title = '') => `configuration ${title}: refused, the last good keeps serving, restored`,
});

const edit = (text: string) => async (setup: Setup) => writeFile(setup.path, text);

test('with a YAML syntax error', refusedAndRestored, {
  layout: 'file',
  inject: edit('trustedRegistries: [docker.io/library\n'),
  error: /not valid YAML or JSON/,
});

test('with a duplicate key', refusedAndRestored, {
  layout: 'file',
  inject: edit('denyLatest: true\ndenyLatest: false\n'),
  error: /not valid YAML or JSON/,
});

test('with an unknown key', refusedAndRestored, {
  layout: 'file',
  inject: edit('trustedRegistry: [docker.io/library]\n'),
  error: /unknown key "trustedRegistry"/,
});

test('with a wrong type', refusedAndRestored, {
  layout: 'file',
  inject: edit('trustedRegistries: docker.io/library\n'),
  error: /trustedRegistries: must be a list/,
});

test('with a wrong type in a namespace override', refusedAndRestored, {
  layout: 'file',
  inject: edit('namespaces:\n  shop: {enforcement: maybe}\n'),
  error: /namespaces\["shop"\]\.enforcement: must be one of deny, warn, dryrun/,
});

test('that is a list, not a map', refusedAndRestored, {
  layout: 'file',
  inject: edit('- trustedRegistries\n'),
  error: /the configuration must be a map/,
});

test('file deleted', refusedAndRestored, {
  layout: 'file',
  inject: (setup) => rm(setup.path),
  error: /cannot read configuration .*ENOENT/,
});

test('file unreadable', refusedAndRestored, {
  layout: 'file',
  async inject(setup) {
    await makeUnreadable(setup.path);
  },
  error: /cannot read configuration .*(EACCES|EISDIR)/,
});

test('mount: swapped to an invalid document', refusedAndRestored, {
  layout: 'mount',
  inject: (setup) => swapMounted(join(setup.path, '..'), 'enforcement: audit\n'),
  error: /enforcement: must be one of deny, warn, dryrun/,
});

test('mount: the ..data link removed', refusedAndRestored, {
  layout: 'mount',
  inject: (setup) => rm(join(setup.path, '..', '..data')),
  error: /cannot read configuration .*ENOENT/,
});

test('an emptied configuration file is valid: the bundle defaults apply, which deny', async (t) => {
  // Not a fault the gateway can see: an empty document is an empty configuration. What
  // matters is that it falls back to the bundle's defaults, which are strict, not open.
  const { gw, traffic, install } = await setUp(t, 'file');
  await install('');
  await poll(async () => ((await allowed(gw, 'empty')) ? undefined : true), 'the bundle defaults');
  t.true(lastLoad((await readyz(gw)).body).ok);
  await traffic.stop();
  t.deepEqual(traffic.failures, []);
});

test('an invalid configuration holds back a new bundle until it is fixed', async (t) => {
  const dir = await tempDir(t, 'imagegate-fault-both-');
  const config = join(dir, 'config.yaml');
  const bundle = join(dir, 'imagegate.tar.gz');
  await writeFile(config, STRICT);
  const files = new Map((await committedBundle()).files);
  await writeFile(bundle, await packBundle(files));
  const gw = await startTestGateway(t, { config, bundle, watchIntervalMs: INTERVAL_MS });
  const first = gw.gateway.policy.engine?.bundleDigest;

  await writeFile(config, 'trustedRegistries: docker.io/library\n');
  await poll(
    async () => (gw.gateway.policy.lastLoad?.ok === false ? true : undefined),
    'the invalid configuration to be refused',
  );
  const manifest = record(JSON.parse(files.get('.manifest')?.toString('utf8') ?? '{}'), 'm');
  files.set('.manifest', Buffer.from(JSON.stringify({ ...manifest, revision: 'next' })));
  await writeFile(bundle, await packBundle(files));
  await poll(
    async () => ((await reloads(gw, 'policy', 'refused')) === 2 ? true : undefined),
    'the new bundle to be tried with the invalid configuration',
  );
  t.is(gw.gateway.policy.engine?.bundleDigest, first, 'neither change is half-applied');
  t.regex(gw.gateway.policy.lastLoad?.error ?? '', /trustedRegistries: must be a list/);

  await writeFile(config, PERMISSIVE);
  await poll(
    async () => ((await allowed(gw, 'fixed')) ? true : undefined),
    'the fixed configuration',
  );
  t.is(gw.gateway.policy.engine?.revision, 'next', 'the held-back bundle loads with it');
});

test('serve does not start on an invalid configuration: nothing is served open', async (t) => {
  const dir = await tempDir(t, 'imagegate-fault-start-');
  const config = join(dir, 'config.yaml');
  await writeFile(config, 'enforcement: off\n');
  await t.throwsAsync(
    startGateway(
      {
        port: 0,
        healthPort: 0,
        host: '127.0.0.1',
        bundle: defaultBundlePath(),
        config,
        tlsCert: undefined,
        tlsKey: undefined,
        clientCa: undefined,
        stateDir: dir,
      },
      createLogger('silent'),
    ),
    { instanceOf: ConfigError, message: /enforcement: must be one of deny, warn, dryrun/ },
  );
});
