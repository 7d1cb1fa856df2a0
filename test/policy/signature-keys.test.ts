/**
 * The keys `signatures` names are read when the configuration loads: a missing or
 * malformed key refuses the configuration (as a bad key file refuses a reload), and the
 * engine knows which registries it may contact.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { ConfigError } from '../../src/policy/config-error.ts';
import { loadPolicy } from '../../src/policy/loader.ts';
import { registryNames, registrySettings } from '../../src/policy/registry-names.ts';
import { parseAdmissionReview } from '../../src/review/admission-review.ts';
import { admissionInput } from '../../src/review/policy-input.ts';
import { defaultBundlePath } from '../../src/shared/paths.ts';
import { loadJsonObject } from '../helpers/fixtures.ts';
import { tempDir, writeConfig } from '../helpers/gateway.ts';
import { FIXTURES } from '../helpers/sigstore-fixtures.ts';

const pem = () =>
  generateKeyPairSync('ec', { namedCurve: 'P-256' })
    .publicKey.export({ type: 'spki', format: 'pem' })
    .toString();

test('keys are read at load, by path and inline, and named for messages', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'release.pub');
  await writeFile(path, pem());
  const inline = pem();
  const config = await writeConfig(
    t,
    `signatures:\n  - images: [registry.example.com/prod]\n    keys: [${path}, ${JSON.stringify(inline)}]\n`,
  );
  const { engine } = await loadPolicy({ bundle: defaultBundlePath(), config });
  t.deepEqual([...engine.keys.keys()], [path, inline]);
  t.is(engine.keys.get(path)?.name, 'release.pub');
  t.regex(engine.keys.get(inline)?.name ?? '', /^inline:[0-9a-f]{12}$/);
  t.true(engine.registries.has('registry.example.com'));
});

test('a key file that is missing, or not a public key, refuses the configuration', async (t) => {
  const dir = await tempDir(t);
  const missing = join(dir, 'missing.pub');
  const notKey = join(dir, 'not-a-key.pub');
  await writeFile(notKey, 'hello\n');
  for (const [key, message] of [
    [missing, /signatures: signature key .*missing\.pub: .*ENOENT/],
    [notKey, /signatures: signature key not-a-key\.pub is not a PEM public key/],
  ] as const) {
    const config = await writeConfig(
      t,
      `signatures: [{images: [registry.example.com], keys: [${key}]}]\n`,
    );
    const error = await t.throwsAsync(loadPolicy({ bundle: defaultBundlePath(), config }), {
      instanceOf: ConfigError,
    });
    t.regex(error?.message ?? '', message);
  }
});

test("the registries contacted are the configuration's sources, and none when nothing needs facts", (t) => {
  t.deepEqual([...registryNames({ trustedRegistries: ['registry.example.com'] })], []);
  const names = registryNames({
    trustedRegistries: ['Registry.Example.com/prod', 'index.docker.io/library'],
    mirrors: { 'ghcr.io': 'harbor.example.com/ghcr' },
    rewriteRegistry: 'mirror.example.com',
    pinDigests: 'pods',
    namespaces: { 'team-*': { trustedRegistries: ['localhost:5000'] } },
  });
  t.deepEqual([...names].sort(), [
    'docker.io',
    'ghcr.io',
    'harbor.example.com',
    'localhost:5000',
    'mirror.example.com',
    'registry.example.com',
  ]);
  // An override that turns signatures on makes the whole configuration's registries named.
  const override = registryNames({
    trustedRegistries: ['registry.example.com'],
    namespaces: { prod: { signatures: [{ images: ['sig.example.com/prod'], keys: ['/k.pub'] }] } },
  });
  t.deepEqual([...override].sort(), ['registry.example.com', 'sig.example.com']);
});

test('what `registries` says of each registry, keyed as references name it', async (t) => {
  const settings = registrySettings({
    registries: {
      'Harbor.Corp.example': { network: 'private', authHosts: ['sso.corp.example'] },
      'index.docker.io': { authHosts: ['auth.docker.io'] },
    },
  });
  t.deepEqual(Object.fromEntries(settings), {
    'harbor.corp.example': { network: 'private', authHosts: ['sso.corp.example'] },
    'docker.io': { network: 'public', authHosts: ['auth.docker.io'] },
  });
  // The engine carries them beside the names, for the address policy.
  const config = await writeConfig(
    t,
    'pinDigests: pods\ntrustedRegistries: [harbor.corp.example]\nregistries: {harbor.corp.example: {network: private}}\n',
  );
  const { engine } = await loadPolicy({ bundle: defaultBundlePath(), config });
  t.deepEqual([...engine.registries], ['harbor.corp.example']);
  t.is(engine.registrySettings.get('harbor.corp.example')?.network, 'private');
});

test('trust roots: read at load; an entry naming an unknown one, or a file that is no root, is refused', async (t) => {
  const dir = await tempDir(t);
  const key = join(dir, 'release.pub');
  await writeFile(key, pem());
  const notARoot = join(dir, 'not-a-root.json');
  await writeFile(notARoot, '{"tlogs": "nope"}');
  const unknown = await writeConfig(
    t,
    `signatures: [{images: [registry.example.com/prod], keys: [${key}], trustRoot: public-good}]\n`,
  );
  const refused = await t.throwsAsync(loadPolicy({ bundle: defaultBundlePath(), config: unknown }));
  t.true(refused instanceof ConfigError);
  t.regex(
    refused?.message ?? '',
    /signatures\[0\]\.trustRoot: no trust root named "public-good" \(trustRoots has: none\)$/,
  );
  const malformed = await writeConfig(t, `trustRoots: {bed: ${notARoot}}\n`);
  const bad = await t.throwsAsync(loadPolicy({ bundle: defaultBundlePath(), config: malformed }));
  t.regex(
    bad?.message ?? '',
    /trustRoots: trust root bed: .* is not a Sigstore trusted_root\.json/,
  );
  const missing = await writeConfig(t, `trustRoots: {bed: ${join(dir, 'gone.json')}}\n`);
  const gone = await t.throwsAsync(loadPolicy({ bundle: defaultBundlePath(), config: missing }));
  t.regex(gone?.message ?? '', /trustRoots: trust root bed: cannot read .*gone\.json/);
});

test('signatures entries are compiled at load, named by id, one per distinct entry', async (t) => {
  const roots = join(FIXTURES, 'roots');
  const entry = (images: string) =>
    `{images: [${images}], trustRoot: bed, identities: [{issuer: https://token.actions.githubusercontent.com, subject: "https://github.com/acme/**"}], attestations: [slsaprovenance1]}`;
  const config = await writeConfig(
    t,
    [
      `trustRoots: {bed: ${roots}/bed.json, tsa-only: ${roots}/tsa-only.json}`,
      `signatures: [${entry('registry.example.com/prod')}]`,
      `namespaces: {team-a: {signatures: [${entry('registry.example.com/team-a')}]}}`,
      '',
    ].join('\n'),
  );
  const { engine } = await loadPolicy({ bundle: defaultBundlePath(), config });
  // The same words (the images aside) are one verification, whichever namespace says them.
  t.is(engine.verifications.size, 1);
  const [id, verification] = [...engine.verifications][0] ?? [];
  t.regex(id ?? '', /^v-[0-9a-f]{16}$/);
  t.is(verification?.requirement, 'tlog', "cosign's default with a trust root");
  t.deepEqual(verification?.attestations, [
    { type: 'https://slsa.dev/provenance/v1', required: true },
  ]);
  // What the policy sees: the entry, its id, its attestations spelled out.
  const review = structuredClone(loadJsonObject('admission', 'pod-create-v1'));
  const pod = JSON.stringify(review).replace(
    /"image":"[^"]*"/g,
    '"image":"registry.example.com/prod/app:1"',
  );
  const parsed = parseAdmissionReview(JSON.parse(pod));
  const needed = engine.factsNeeded(admissionInput(parsed.apiVersion, parsed.request), 'validate');
  t.true(needed.validate.length > 0);
  t.true(needed.validate.every((r) => r.verification === id));
});

test('an entry whose requirement its roots cannot check is refused at load, with its path', async (t) => {
  const roots = join(FIXTURES, 'roots');
  const config = await writeConfig(
    t,
    [
      `trustRoots: {tsa-only: ${roots}/tsa-only.json}`,
      'namespaces:',
      '  ci: {signatures: [{images: [registry.example.com/ci], trustRoot: tsa-only, identities: [{issuer: i, subject: s}]}]}',
      '',
    ].join('\n'),
  );
  const refused = await t.throwsAsync(loadPolicy({ bundle: defaultBundlePath(), config }));
  t.true(refused instanceof ConfigError);
  t.regex(
    refused?.message ?? '',
    /namespaces\["ci"\]\.signatures\[0\]: require: tlog needs a transparency log, and trust root tsa-only names none/,
  );
  const unknown = await writeConfig(
    t,
    `trustRoots: {tsa-only: ${roots}/tsa-only.json}\nsignatures: [{images: [registry.example.com/ci], require: timestamp, trustRoot: tsa-only, identities: [{issuer: i, subject: s, trustRoot: github}]}]\n`,
  );
  const missing = await t.throwsAsync(loadPolicy({ bundle: defaultBundlePath(), config: unknown }));
  t.regex(
    missing?.message ?? '',
    /signatures\[0\]\.identities\[0\]\.trustRoot: no trust root named "github"/,
  );
});
