/**
 * A keyless signature verified through the whole gateway against a trust root it took from
 * a TUF repository (served on 127.0.0.1, test/helpers/tuf-repository.ts): configuration,
 * loader, TUF client, registry facts, answer, /readyz. The registry is the replay of the
 * committed conformance fixtures (real cosign output), the target the trusted_root.json
 * of the Sigstore those fixtures were signed with; `imagegate check` reads the same cache.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { isRecord } from '../../src/shared/json.ts';
import { imagegate } from '../helpers/cli.ts';
import { ca } from '../helpers/fake-registry.ts';
import { podWithImages } from '../helpers/fixtures.ts';
import {
  admissionAnswer,
  poll,
  record,
  startTestGateway,
  type TestGateway,
  tempDir,
  writeConfig,
} from '../helpers/gateway.ts';
import { conformance, FIXTURES } from '../helpers/sigstore-fixtures.ts';
import { serve, TufRepository } from '../helpers/tuf-repository.ts';

async function setUp(t: ExecutionContext, expires?: { timestamp: number }) {
  const c = await conformance(t);
  const dir = await tempDir(t, 'imagegate-tuf-gateway-');
  const caFile = join(dir, 'ca.crt');
  await writeFile(caFile, ca.cert);
  const repo = await TufRepository.create(t);
  const bed = await readFile(join(FIXTURES, 'roots', 'bed.json'));
  await repo.publish('trusted_root.json', bed, expires === undefined ? {} : { expires });
  const mirror = await serve(t, repo);
  const { release } = c.fixtures.identities;
  const host = c.registries.referrers.host;
  const config = await writeConfig(
    t,
    [
      `trustedRegistries: ["${host}"]`,
      `trustRoots: {bed: {mirror: "${mirror.url}", root: ${repo.pinned}}}`,
      'signatures:',
      `  - images: ["${host}/cases"]`,
      '    trustRoot: bed',
      `    identities: [{issuer: "${release.issuer}", subject: "${release.subject}"}]`,
      '',
    ].join('\n'),
  );
  const image = (name: string) => {
    const found = c.fixtures.cases[name];
    if (found === undefined) throw new Error(`no case ${name}`);
    return `${c.registries[found.registry].host}/${found.repository}:v1@${found.digest}`;
  };
  return { dir, caFile, config, image, mirror, repo, bed, cacheDir: join(dir, 'tuf') };
}

/** The validating answer to a Pod of this one image: allowed, and why not. */
async function judge(gw: TestGateway, image: string) {
  const { response } = admissionAnswer(await gw.post('/v1/validate', podWithImages([image])));
  const status = isRecord(response.status) ? response.status : {};
  return { allowed: response.allowed === true, message: String(status.message ?? '') };
}

test('a keyless signature verifies against the root from the TUF mirror; /readyz shows the mirror', async (t) => {
  const { caFile, config, image, cacheDir, mirror } = await setUp(t);
  const gw = await startTestGateway(t, {
    config,
    registry: { ca: [caFile] },
    tuf: { cacheDir },
  });
  const signed = await judge(gw, image('v3-keyless'));
  t.true(signed.allowed, signed.message);
  t.regex((await judge(gw, image('v3-keyless-mallory'))).message, /signed by another identity$/);
  const ready = await gw.health('/readyz');
  const bed = record(record(record(ready.body, 'readyz').trustRoots, 'trustRoots').bed, 'bed');
  t.like(bed, { certificateAuthorities: 1, tlogs: 1, timestampAuthorities: 1 });
  const tuf = record(bed.tuf, 'tuf');
  t.like(tuf, { mirror: mirror.url, target: 'trusted_root.json', lastError: null });
  t.like(record(tuf.metadata, 'metadata'), { timestamp: { version: 1 } });
  t.true(typeof tuf.usableUntil === 'string');

  // `imagegate check` reads the same cache: with the mirror down and --offline, too.
  mirror.down = true;
  const manifests = join(cacheDir, '..', 'pod.yaml');
  await writeFile(
    manifests,
    `apiVersion: v1\nkind: Pod\nmetadata: {name: signed, namespace: shop}\nspec:\n  containers: [{name: app, image: "${image('v3-keyless')}", imagePullPolicy: Always}]\n`,
  );
  const checked = await imagegate([
    'check',
    '-f',
    manifests,
    '--config',
    config,
    '--registry-ca',
    caFile,
    '--tuf-cache-dir',
    cacheDir,
  ]);
  t.is(checked.code, 0, checked.stdout + checked.stderr);
});

test('once its TUF metadata expires with the mirror down, entries needing the root fail closed', async (t) => {
  const { caFile, config, image, cacheDir, mirror } = await setUp(t, { timestamp: 4 });
  const gw = await startTestGateway(t, {
    config,
    registry: { ca: [caFile] },
    tuf: { cacheDir },
  });
  t.true(
    (await judge(gw, image('v3-keyless'))).allowed,
    'verified (and cached) while the metadata holds',
  );
  mirror.down = true;
  const refused = await poll(
    async () => {
      const answer = await judge(gw, image('v3-keyless'));
      return answer.allowed ? undefined : answer;
    },
    'the root to expire',
    { tries: 100, everyMs: 100 },
  );
  t.regex(refused.message, /trust root bed is unavailable: its TUF metadata expired at /);
  const ready = await poll(async () => {
    const body = record((await gw.health('/readyz')).body, 'readyz');
    const bed = record(record(body.trustRoots, 'trustRoots').bed, 'bed');
    return typeof bed.unavailable === 'string' ? { body, bed } : undefined;
  }, 'the reload that shows it');
  t.regex(String(ready.bed.unavailable), /expired at .* and no refresh since verified/);
  t.is(ready.body.ready, true, 'the gateway serves on: only entries needing the root fail');
});

// Sigstore re-signs its timestamp often without a new target: the policy in force must take
// the new expiry, or every entry needing the root fails at the old one with the mirror up.
test('a refresh that only renews the metadata keeps the root usable past its old expiry', async (t) => {
  const { caFile, config, image, cacheDir, repo, bed } = await setUp(t, { timestamp: 4 });
  const gw = await startTestGateway(t, {
    config,
    registry: { ca: [caFile] },
    tuf: { cacheDir, refreshIntervalMs: 1000 },
  });
  t.true((await judge(gw, image('v3-keyless'))).allowed);
  // The same target, the metadata renewed for 30 days.
  await repo.publish('trusted_root.json', bed);
  await new Promise((resolve) => setTimeout(resolve, 6000));
  const after = await judge(gw, image('v3-keyless'));
  t.true(after.allowed, after.message);
});
