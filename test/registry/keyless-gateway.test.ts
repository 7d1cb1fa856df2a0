/**
 * Keyless signatures and attestations through the whole gateway — configuration, loader,
 * compiled policy, registry facts, answer, decision log, /readyz — and through `imagegate
 * check` and the audit with the same configuration: the same facts, the same decisions.
 * The registry is the replay of the committed conformance fixtures (real cosign output),
 * so no Go tool is needed.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { auditObject } from '../../src/audit/evaluate.ts';
import { PolicyHolder } from '../../src/policy/holder.ts';
import { loadPolicy } from '../../src/policy/loader.ts';
import { startRegistryFacts } from '../../src/server/registry-facts.ts';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createMetrics } from '../../src/shared/metrics.ts';
import { defaultBundlePath } from '../../src/shared/paths.ts';
import { imagegate } from '../helpers/cli.ts';
import { ca } from '../helpers/fake-registry.ts';
import { loadJsonObject } from '../helpers/fixtures.ts';
import {
  admissionAnswer,
  record,
  startTestGateway,
  tempDir,
  writeConfig,
} from '../helpers/gateway.ts';
import { type Conformance, conformance, FIXTURES } from '../helpers/sigstore-fixtures.ts';

const SLSA = 'https://slsa.dev/provenance/v1';
const VULN = 'https://cosign.sigstore.dev/attestation/vuln/v1';

async function setUp(t: ExecutionContext) {
  const c: Conformance = await conformance(t);
  const dir = await tempDir(t, 'imagegate-keyless-');
  const caFile = join(dir, 'registry-ca.crt');
  await writeFile(caFile, ca.cert);
  const { release } = c.fixtures.identities;
  const host = c.registries.referrers.host;
  const fallback = c.registries.fallback.host;
  const config = await writeConfig(
    t,
    [
      `trustedRegistries: ["${host}", "${fallback}"]`,
      `trustRoots: {bed: ${join(FIXTURES, 'roots', 'bed.json')}}`,
      'signatures:',
      `  - images: ["${host}/cases", "${fallback}/cases"]`,
      '    trustRoot: bed',
      `    identities: [{issuer: "${release.issuer}", subject: "${release.subject}"}]`,
      `    attestations: [slsaprovenance1, {type: vuln, required: false}]`,
      '',
    ].join('\n'),
  );
  const image = (name: string) => {
    const found = c.fixtures.cases[name];
    if (found === undefined) throw new Error(`no case ${name}`);
    return `${c.registries[found.registry].host}/${found.repository}:v1@${found.digest}`;
  };
  return { c, dir, caFile, config, image, host };
}

function podReview(images: readonly string[]): JsonObject {
  const review = structuredClone(loadJsonObject('admission', 'pod-create-v1'));
  const spec = record(record(record(review.request, 'request').object, 'object').spec, 'spec');
  spec.containers = images.map((image, i) => ({ name: `c${i}`, image, imagePullPolicy: 'Always' }));
  delete spec.initContainers;
  return review;
}

test('the gateway admits the workflow’s signed and attested image, refuses the rest, and logs attestations by type and digest', async (t) => {
  const { caFile, config, image, host } = await setUp(t);
  const gw = await startTestGateway(t, { config, registry: { ca: [caFile] } });
  const judge = async (name: string) => {
    const { response } = admissionAnswer(await gw.post('/v1/validate', podReview([image(name)])));
    const status = isRecord(response.status) ? response.status : {};
    return { allowed: response.allowed === true, message: String(status.message ?? ''), response };
  };
  const scope = `${host}/cases`;

  const attested = await judge('attest-keyless');
  t.true(attested.allowed, attested.message);
  const annotations = record(attested.response.auditAnnotations ?? {}, 'auditAnnotations');
  t.regex(
    String(annotations['verified-signatures']),
    /by https:\/\/github\.com\/acme\/app\/.*release\.yml@refs\/tags\/v1\.0\.0 \(http/,
  );
  const line = gw.logs.messages('decision').at(-1);
  const [facts] = Array.isArray(line?.facts) ? (line.facts as JsonObject[]) : [];
  const logged = Array.isArray(facts?.attestations) ? facts.attestations : [];
  t.deepEqual(
    logged.map((a) => Object.keys(record(a, 'attestation')).sort()),
    [
      ['digest', 'type'],
      ['digest', 'type'],
    ],
    'no statement in the decision log',
  );
  t.deepEqual(logged.map((a) => record(a, 'attestation').type).sort(), [SLSA, VULN].sort());
  t.false(
    JSON.stringify(gw.logs.lines).includes('buildDefinition'),
    'the provenance stays out of the logs',
  );

  const unattested = await judge('v3-keyless');
  t.false(unattested.allowed);
  t.regex(
    unattested.message,
    new RegExp(
      `attestation required \\(${scope.replaceAll('.', '\\.')}\\): https://slsa\\.dev/provenance/v1: no attestation$`,
    ),
  );
  const mallory = await judge('v3-keyless-mallory');
  t.regex(mallory.message, /: signature required \(.*\): signed by another identity$/);
  const otherRoot = await judge('v3-keyless-other-root');
  t.regex(
    otherRoot.message,
    /: signature required \(.*\): certificate not issued by the trust root$/,
  );
  const noTime = await judge('v2-keyless-no-time');
  t.regex(noTime.message, /: signature required \(.*\): no verified signing time$/);
  const unsigned = await judge('unsigned');
  t.regex(unsigned.message, /: signature required \(.*\): no signature$/);

  const ready = await gw.health('/readyz');
  const roots = record(record(ready.body, 'readyz').trustRoots, 'trustRoots');
  t.like(roots.bed, {
    file: join(FIXTURES, 'roots', 'bed.json'),
    certificateAuthorities: 1,
    tlogs: 1,
    timestampAuthorities: 1,
    ctlogs: 0,
    validUntil: null,
  });
});

test('imagegate check and the audit decide with the same facts', async (t) => {
  const { dir, caFile, config, image } = await setUp(t);
  const manifests = join(dir, 'pods.yaml');
  const pod = (name: string, ref: string) =>
    `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: shop}\nspec:\n  containers: [{name: app, image: "${ref}", imagePullPolicy: Always}]\n`;
  await writeFile(
    manifests,
    [pod('attested', image('attest-keyless')), pod('mallory', image('attest-mallory'))].join(
      '---\n',
    ),
  );
  const checked = await imagegate([
    'check',
    '-f',
    manifests,
    '--config',
    config,
    '--registry-ca',
    caFile,
  ]);
  t.is(checked.code, 1, checked.stderr);
  t.true(checked.stdout.includes(`ALLOWED Pod shop/attested (${manifests}#1)`), checked.stdout);
  t.true(
    checked.stdout.includes(`https://slsa.dev/provenance/v1: signed by another identity`),
    checked.stdout,
  );

  const { engine } = await loadPolicy({ bundle: defaultBundlePath(), config });
  const policy = new PolicyHolder();
  policy.swap(engine, 'test');
  const facts = await startRegistryFacts(
    { ca: [caFile], budgetMs: 30_000 },
    {
      policy,
      metrics: createMetrics({ processMetrics: false }),
      logger: createLogger('silent'),
      intervalMs: 60_000,
    },
  );
  t.teardown(() => facts.close());
  const running = (name: string, ref: string) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'shop', uid: name },
    spec: { containers: [{ name: 'app', image: ref, imagePullPolicy: 'Always' }] },
    status: { phase: 'Running' },
  });
  const audit = (name: string, ref: string) =>
    auditObject(engine, running(name, ref), { apiVersion: 'v1', kind: 'Pod' }, (e, input) =>
      facts.withFacts(e, input, 'validate'),
    );
  t.deepEqual(
    (await audit('attested', image('attest-keyless')))?.results.map((r) => r.result),
    ['pass'],
  );
  const failed = await audit('mallory', image('attest-mallory'));
  t.deepEqual(
    failed?.results.map((r) => [r.rule, r.result]),
    [['attestation', 'fail']],
  );
  t.regex(
    failed?.results[0]?.message ?? '',
    /https:\/\/slsa\.dev\/provenance\/v1: signed by another identity$/,
  );
});
