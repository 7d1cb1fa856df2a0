/**
 * The example policy over attestations (docs/examples/policies/attestations.rego), compiled
 * to wasm by the real OPA and evaluated as the gateway would (the engine's custom
 * built-ins), on the facts the gateway gathers for the conformance fixtures: attestations
 * the real `cosign attest` made, verified with the fixtures' key and release workflow.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadPolicy } from '@open-policy-agent/opa-wasm';
import test from 'ava';
import { readBundleArchive } from '../../src/policy/bundle.ts';
import { CUSTOM_BUILTINS } from '../../src/policy/engine.ts';
import { packageRoot } from '../../src/shared/paths.ts';
import { buildBundle } from '../helpers/bundles.ts';
import { conformance } from '../helpers/sigstore-fixtures.ts';

const ENTRYPOINT = 'imagegate/examples/attestations/violations';

async function examplePolicy(settings: object) {
  const source = await readFile(
    join(packageRoot(), 'docs', 'examples', 'policies', 'attestations.rego'),
    'utf8',
  );
  const bytes = await buildBundle({ 'attestations.rego': source }, [ENTRYPOINT]);
  const bundle = await readBundleArchive(bytes, 'example');
  const policy = await loadPolicy(bundle.wasm, undefined, CUSTOM_BUILTINS);
  policy.setData({ imagegate_examples: settings });
  return (input: object): string[] => {
    const [first] = policy.evaluate(input, ENTRYPOINT) as { result: string[] }[];
    return [...(first?.result ?? [])].sort();
  };
}

test('the example judges the attestations cosign attest made, verified by the gateway', async (t) => {
  const c = await conformance(t);
  const { release } = c.fixtures.identities;
  const read = { attestations: ['slsaprovenance1', 'vuln'] };
  const keyed = c.entry({ keys: ['release.pub'], trustRoot: 'bed', ...read });
  const workflow = { issuer: release.issuer, subject: release.subject };
  const keyless = c.entry({ identities: [workflow], trustRoot: 'bed', ...read });
  const image = async (name: string, entry: string) => ({
    raw: name,
    facts: await c.one(c.request(name, entry)),
  });
  // The fixtures' scans finished on 2026-12-01: old enough to test both sides of the age.
  const lenient = await examplePolicy({ maxScanAgeDays: 365_000 });
  t.deepEqual(lenient({ images: [await image('attest-key', keyed)] }), []);
  t.deepEqual(lenient({ images: [await image('attest-keyless', keyless)] }), [
    'image attest-keyless: 2 critical vulnerabilities',
  ]);
  // Provenance attested by another workflow is not verified, so not there to count.
  t.deepEqual(lenient({ images: [await image('attest-mallory', keyless)] }), [
    `image attest-mallory: no SLSA provenance from ${release.subject} for https://github.com/acme/app`,
    'image attest-mallory: no vulnerability scan',
  ]);
  const strict = await examplePolicy({ maxScanAgeDays: 0 });
  t.deepEqual(strict({ images: [await image('attest-key', keyed)] }), [
    'image attest-key: its vulnerability scan finished 2026-12-01T10:00:30Z, more than 0 days ago',
  ]);
});

test('the time built-ins refuse what is not RFC 3339: the evaluation fails, closed', async (t) => {
  const judge = await examplePolicy({});
  const scan = (finished: string) => ({
    images: [
      {
        raw: 'x',
        facts: {
          signature: { verified: true },
          attestations: [
            {
              type: 'https://cosign.sigstore.dev/attestation/vuln/v1',
              statement: {
                predicate: {
                  scanner: { result: { summary: { critical: 0 } } },
                  metadata: { scanFinishedOn: finished },
                },
              },
            },
          ],
        },
      },
    ],
  });
  t.throws(() => judge(scan('December 1, 2026')));
  t.notThrows(() => judge(scan('2026-12-01T10:00:30+02:00')));
});
