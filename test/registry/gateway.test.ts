/**
 * The gateway with pinDigests and signatures on, against real registries: the mutating
 * webhook pins tags, the validating webhook and the ImagePolicyWebhook refuse what no
 * configured key signed — naming the image and why — and a registry outage is a refusal
 * that lifts by itself once the registry is back. Reviews are the captured fixtures with
 * their images replaced by ones crane pushed and cosign signed.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import { loadJsonObject } from '../helpers/fixtures.ts';
import {
  admissionAnswer,
  type HttpResult,
  poll,
  record,
  startTestGateway,
  type TestGateway,
  tempDir,
  writeConfig,
} from '../helpers/gateway.ts';
import {
  authHostsYaml,
  generateKeyPair,
  type PushedImage,
  pushImage,
  signImage,
  startRegistry,
  type TestRegistry,
  writeDockerConfigJson,
} from '../helpers/registry.ts';
import { registryTest } from '../helpers/registry-test.ts';
import { runTool } from '../helpers/registry-tools.ts';

const test = await registryTest('test/registry/gateway');

/** The captured Pod CREATE with these images as its containers (no init containers). */
function podReview(images: readonly string[]): JsonObject {
  const review = structuredClone(loadJsonObject('admission', 'pod-create-v1'));
  const spec = record(record(record(review.request, 'request').object, 'object').spec, 'spec');
  const template = record((spec.containers as unknown[])[0], 'container');
  spec.containers = images.map((image, i) => ({
    ...template,
    name: `c${i}`,
    image,
    imagePullPolicy: 'Always',
  }));
  delete spec.initContainers;
  return review;
}

function imageReview(images: readonly string[]): JsonObject {
  const review = structuredClone(loadJsonObject('imagereview', 'imagereview-trusted'));
  record(review.spec, 'spec').containers = images.map((image) => ({ image }));
  return review;
}

interface Bed {
  readonly registry: TestRegistry;
  readonly gateway: TestGateway;
  readonly signed: PushedImage;
  readonly multi: PushedImage;
  readonly unsigned: PushedImage;
  readonly stranger: PushedImage;
  readonly copied: PushedImage;
}

async function bed(t: ExecutionContext, extra = ''): Promise<Bed> {
  const registry = await startRegistry(t, { auth: 'none' });
  const keys = await tempDir(t, 'imagegate-keys-');
  const release = await generateKeyPair(keys);
  const strangerDir = join(keys, 'stranger');
  await mkdir(strangerDir);
  const strangerKey = await generateKeyPair(strangerDir);
  const signed = await pushImage(registry, 'prod/signed', 'v1');
  await signImage(registry, signed.reference, release, { cosign: 'v3' });
  const multi = await pushImage(registry, 'prod/multi', 'v1', {
    platforms: ['linux/amd64', 'linux/arm64'],
  });
  await signImage(registry, multi.reference, release, { cosign: 'v2' });
  const unsigned = await pushImage(registry, 'prod/unsigned', 'v1');
  const stranger = await pushImage(registry, 'prod/stranger', 'v1');
  await signImage(registry, stranger.reference, strangerKey, { cosign: 'v3' });
  const copied = await pushImage(registry, 'prod/copied', 'v1');
  const from = `${registry.host}/prod/signed:${signed.digest.replace(':', '-')}`;
  const to = `${registry.host}/prod/copied:${copied.digest.replace(':', '-')}`;
  await runTool(registry.tools.crane, ['copy', from, to], registry.env);

  const config = await writeConfig(
    t,
    [
      `trustedRegistries: [${registry.host}]`,
      'pinDigests: pods',
      'signatures:',
      `  - images: [${registry.host}/prod]`,
      `    keys: [${release.publicKey}]`,
      extra,
    ].join('\n'),
  );
  const caFile = join(keys, 'registry-ca.crt');
  await writeFile(caFile, registry.ca);
  const gateway = await startTestGateway(t, { config, registry: { ca: [caFile] } });
  return { registry, gateway, signed, multi, unsigned, stranger, copied };
}

const tagged = (image: PushedImage, tag = 'v1') => `${image.repository}:${tag}`;

/** allowed, and the message kubectl would show. */
function verdict(result: HttpResult): { allowed: boolean; message: string } {
  const { response } = admissionAnswer(result);
  const status = isRecord(response.status) ? response.status : {};
  return { allowed: response.allowed === true, message: String(status.message ?? '') };
}

function patchOf(result: HttpResult): JsonObject[] {
  const { response } = admissionAnswer(result);
  if (typeof response.patch !== 'string') return [];
  const ops = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as unknown[];
  return ops.map((op) => record(op, 'patch operation'));
}

test('mutate pins every tag to the digest it names now, the index for a multi-arch image', async (t) => {
  const { gateway, signed, multi } = await bed(t);
  const res = await gateway.post('/v1/mutate', podReview([tagged(signed), tagged(multi)]));
  const images = patchOf(res)
    .filter((op) => String(op.path).endsWith('/image'))
    .map((op) => op.value);
  t.deepEqual(images, [`${tagged(signed)}@${signed.digest}`, `${tagged(multi)}@${multi.digest}`]);
});

test('validate: signed allowed; unsigned, another key, a copied signature refused, each saying why', async (t) => {
  const { gateway, registry, signed, unsigned, stranger, copied } = await bed(t);
  const scope = `${registry.host}/prod`;
  const allowed = verdict(
    await gateway.post('/v1/validate', podReview([`${tagged(signed)}@${signed.digest}`])),
  );
  t.true(allowed.allowed, allowed.message);
  const cases: [PushedImage, string][] = [
    [unsigned, 'no signature'],
    [stranger, 'signed by another key'],
    [copied, 'signature for another digest'],
  ];
  for (const [image, why] of cases) {
    const raw = `${tagged(image)}@${image.digest}`;
    const denied = verdict(await gateway.post('/v1/validate', podReview([raw])));
    t.false(denied.allowed);
    t.is(
      denied.message,
      `container "c0" (containers[0]) image "${raw}": signature required (${scope}): ${why}`,
    );
  }
});

test('the ImagePolicyWebhook path gets the same facts', async (t) => {
  const { gateway, registry, signed, unsigned } = await bed(t);
  const yes = record(
    (await gateway.post('/v1/imagereview', imageReview([tagged(signed)]))).body,
    'review',
  );
  t.true(record(yes.status, 'status').allowed);
  const no = record(
    (await gateway.post('/v1/imagereview', imageReview([tagged(unsigned)]))).body,
    'review',
  );
  t.false(record(no.status, 'status').allowed);
  t.is(
    record(no.status, 'status').reason,
    `image "${tagged(unsigned)}": signature required (${registry.host}/prod): no signature`,
  );
});

test('a registry outage refuses with its reason, and lifts without a restart once it is back', async (t) => {
  const { gateway, registry, signed } = await bed(t);
  const review = () =>
    gateway.post('/v1/validate', podReview([`${tagged(signed)}@${signed.digest}`]));
  await registry.stop();
  const down = verdict(await review());
  t.false(down.allowed);
  t.regex(
    down.message,
    new RegExp(
      `signature required \\(${registry.host.replace('.', '\\.')}/prod\\): registry ${registry.host.replace('.', '\\.')} unreachable: .*ECONNREFUSED`,
    ),
  );
  await registry.start();
  await poll(async () => verdict(await review()).allowed || undefined, 'allowed again', {
    tries: 150,
    everyMs: 100,
  });
  const metrics = (await gateway.health('/metrics')).text;
  t.regex(
    metrics,
    new RegExp(
      `imagegate_registry_requests_total\\{registry="${registry.host.replace('.', '\\.')}",kind="manifest",outcome="error"\\} [1-9]`,
    ),
  );
});

test('pinned by digest with a verified signature: the second review makes no registry call', async (t) => {
  const { gateway, registry, signed } = await bed(t);
  const raw = `${tagged(signed)}@${signed.digest}`;
  t.true(verdict(await gateway.post('/v1/validate', podReview([raw]))).allowed);
  await registry.stop();
  t.true(verdict(await gateway.post('/v1/validate', podReview([raw]))).allowed);
  const metrics = (await gateway.health('/metrics')).text;
  t.regex(metrics, /imagegate_registry_cache_total\{kind="signature",result="hit"\} 1/);
});

test('token auth through --registry-credentials; the password appears in no log line', async (t) => {
  const registry = await startRegistry(t, { auth: 'token' });
  const image = await pushImage(registry, 'team/app', 'v1');
  const credentials = await writeDockerConfigJson(t, registry);
  const caFile = join(await tempDir(t), 'ca.crt');
  await writeFile(caFile, registry.ca);
  const config = await writeConfig(
    t,
    `trustedRegistries: [${registry.host}]\npinDigests: pods\n${authHostsYaml([registry])}`,
  );
  const gateway = await startTestGateway(t, {
    config,
    logLevel: 'debug',
    registry: { credentials, ca: [caFile] },
  });
  const res = await gateway.post('/v1/mutate', podReview([tagged(image)]));
  t.deepEqual(
    patchOf(res).map((op) => (op as JsonObject).value),
    [`${tagged(image)}@${image.digest}`],
  );
  const logs = gateway.logs.text;
  t.true(logs.includes('registry credentials loaded'));
  t.false(logs.includes(registry.password ?? '\0'));
  t.false(
    logs.includes(Buffer.from(`${registry.username}:${registry.password}`).toString('base64')),
  );
});

test('an image volume and an ephemeral container are verified like containers', async (t) => {
  const { gateway, registry, unsigned, signed } = await bed(t);
  const volumes = structuredClone(loadJsonObject('admission', 'pod-create-image-volumes-v1'));
  const spec = record(record(record(volumes.request, 'request').object, 'object').spec, 'spec');
  spec.containers = [];
  delete spec.initContainers;
  spec.volumes = [{ name: 'model', image: { reference: tagged(unsigned), pullPolicy: 'Always' } }];
  const denied = verdict(await gateway.post('/v1/validate', volumes));
  t.is(
    denied.message,
    `volume "model" (volumes[0]) image "${tagged(unsigned)}": not pinned to a digest (pinDigests); the tag names ${unsigned.digest} but the mutating webhook did not pin it; volume "model" (volumes[0]) image "${tagged(unsigned)}": signature required (${registry.host}/prod): no signature`,
  );

  const debug = structuredClone(loadJsonObject('admission', 'pod-ephemeralcontainers-v1'));
  const object = record(record(debug.request, 'request').object, 'object');
  const ephemeral = record(
    (record(object.spec, 'spec').ephemeralContainers as unknown[])[0],
    'ephemeral',
  );
  ephemeral.image = tagged(signed);
  const pinned = patchOf(await gateway.post('/v1/mutate', debug));
  t.deepEqual(
    pinned.filter((op) => String(op.path).endsWith('/image')),
    [
      {
        op: 'replace',
        path: '/spec/ephemeralContainers/0/image',
        value: `${tagged(signed)}@${signed.digest}`,
      },
    ],
  );
  ephemeral.image = `${tagged(unsigned)}@${unsigned.digest}`;
  const refused = verdict(await gateway.post('/v1/validate', debug));
  t.false(refused.allowed);
  t.regex(refused.message, /signature required .*: no signature$/);
});

test('rotated credentials and CA files are picked up without a restart', async (t) => {
  const registry = await startRegistry(t, { auth: 'htpasswd' });
  const image = await pushImage(registry, 'team/app', 'v1');
  const dir = await tempDir(t);
  const credentials = join(dir, '.dockerconfigjson');
  const caFile = join(dir, 'ca.crt');
  // Wrong at first: another registry's CA, and a wrong password.
  const other = await startRegistry(t, { auth: 'none' });
  await writeFile(caFile, other.ca);
  await writeFile(
    credentials,
    JSON.stringify({
      auths: { [registry.host]: { username: registry.username, password: 'old' } },
    }),
  );
  const config = await writeConfig(t, `trustedRegistries: [${registry.host}]\npinDigests: pods\n`);
  const gateway = await startTestGateway(t, {
    config,
    watchIntervalMs: 100,
    registry: { credentials, ca: [caFile] },
  });
  const pinnedNow = async () => {
    const values = patchOf(await gateway.post('/v1/mutate', podReview([tagged(image)]))).map(
      (op) => op.value,
    );
    return values.includes(`${tagged(image)}@${image.digest}`);
  };
  const denial = verdict(await gateway.post('/v1/validate', podReview([tagged(image)])));
  t.regex(denial.message, /pinning failed: registry .* unreachable: .*certificate/);
  t.false(await pinnedNow());

  await writeFile(caFile, registry.ca);
  await poll(
    async () =>
      verdict(await gateway.post('/v1/validate', podReview([tagged(image)]))).message.includes(
        'refused the credentials',
      ) || undefined,
    'the new CA in use (then the old password refused)',
    { tries: 100, everyMs: 100 },
  );
  await writeFile(credentials, await readFile(await writeDockerConfigJson(t, registry), 'utf8'));
  await poll(async () => (await pinnedNow()) || undefined, 'the new credentials in use', {
    tries: 100,
    everyMs: 100,
  });
  t.pass();
});
