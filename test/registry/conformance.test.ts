/**
 * The conformance fixtures: every format the real cosign 2 and 3 write (Sigstore bundles
 * v0.1–v0.3, DSSE and message signatures, by referrers API, tag fallback and raw
 * referrers; cosign 2's legacy `.sig` and `.att` tags and its referrer mode) × key and
 * keyless × transparency log and timestamp × single and multi-arch, made against a real
 * Sigstore (test/tools/sigstore-fixtures.ts, `make sigstore-fixtures`) and replayed here
 * through the gateway's own registry client and fact source: every case with the entry it
 * should pass and the ones it should fail, with the reason. No Go tool needed.
 */
import test from 'ava';
import type { ImageFacts } from '../../src/registry/facts.ts';
import type { VerificationConfig } from '../../src/registry/sigstore/verification.ts';
import { type Conformance, conformance } from '../helpers/sigstore-fixtures.ts';
import { Teardowns } from '../helpers/teardown.ts';

const teardowns = new Teardowns();
test.after.always(() => teardowns.run());
let bed: Conformance | undefined;
test.before(async () => {
  bed = await conformance(teardowns);
});
const the = (): Conformance => {
  if (bed === undefined) throw new Error('no fixtures');
  return bed;
};

const { release, mallory, email } = (await import('../helpers/sigstore-fixtures.ts')).fixtures()
  .identities;
const workflow = { issuer: release.issuer, subject: release.subject };
const WORKFLOW = `${release.subject} (${release.issuer})`;
const SLSA = 'https://slsa.dev/provenance/v1';
const VULN = 'https://cosign.sigstore.dev/attestation/vuln/v1';

type Entry = Partial<VerificationConfig>;
const entries: Record<string, Entry> = {
  'key, root bed': { keys: ['release.pub'], trustRoot: 'bed' },
  'key, no root': { keys: ['release.pub'] },
  'key, root bed, either': { keys: ['release.pub'], trustRoot: 'bed', require: 'either' },
  'workflow, root bed': { identities: [workflow], trustRoot: 'bed' },
  'workflow, root bed, timestamp': {
    identities: [workflow],
    trustRoot: 'bed',
    require: 'timestamp',
  },
  'workflow, root bed, either': { identities: [workflow], trustRoot: 'bed', require: 'either' },
  'workflow, TSA-only root': {
    identities: [{ issuer: release.tsaOnlyIssuer, subject: release.subject }],
    trustRoot: 'tsa-only',
    require: 'timestamp',
  },
  'workflow, both roots': {
    identities: [
      workflow,
      { issuer: release.otherIssuer, subject: release.subject, trustRoot: 'other' },
    ],
    trustRoot: 'bed',
  },
  'key and workflow, threshold 2': {
    keys: ['release.pub'],
    identities: [workflow],
    trustRoot: 'bed',
    threshold: 2,
  },
  'two patterns of one workflow, threshold 2': {
    identities: [workflow, { issuer: release.issuer, subject: 'https://github.com/acme/**' }],
    trustRoot: 'bed',
    threshold: 2,
  },
};

type Expected =
  | { readonly verified: true; readonly [field: string]: unknown }
  | { readonly reason: string };

/** [case, entry, expected] */
const table: [string, string, Expected][] = [
  // keys with a trust root: cosign's default, the log entry is required and checked
  [
    'v3-key-rekor',
    'key, root bed',
    {
      verified: true,
      key: 'release.pub',
      format: 'bundle v0.3',
      transparencyLog: 'verified by bed',
    },
  ],
  [
    'v3-key-rekor-referrers',
    'key, root bed',
    { verified: true, transparencyLog: 'verified by bed' },
  ],
  ['v3-key-offline', 'key, root bed', { reason: 'no transparency-log entry' }],
  ['v3-key-other', 'key, root bed', { reason: 'signed by another key' }],
  ['v2-key', 'key, root bed', { reason: 'no transparency-log entry' }],
  ['v3-keyless', 'key, root bed', { reason: 'signed by another key' }],
  ['unsigned', 'key, root bed', { reason: 'no signature' }],
  // keys alone: no log to check (set aside and said so), the signature decides
  [
    'v3-key-rekor',
    'key, no root',
    {
      verified: true,
      transparencyLog: 'not checked: no transparency log is configured for this entry',
    },
  ],
  ['v3-key-offline', 'key, no root', { verified: true, format: 'bundle v0.3' }],
  ['v2-key', 'key, no root', { verified: true, format: 'legacy' }],
  ['v2-key-tsa', 'key, no root', { verified: true, format: 'legacy' }],
  ['v2-referrer', 'key, no root', { verified: true, format: 'legacy' }],
  ['copied-to', 'key, no root', { reason: 'signature for another digest' }],
  ['index-recursive', 'key, no root', { verified: true }],
  // a log or a timestamp
  [
    'v2-key-tsa',
    'key, root bed, either',
    { verified: true, format: 'legacy', timestamp: 'verified by bed' },
  ],
  ['v2-key', 'key, root bed, either', { reason: 'no transparency-log entry or timestamp' }],
  // keyless: the release workflow, Rekor v2 and the TSA
  [
    'v3-keyless',
    'workflow, root bed',
    {
      verified: true,
      signers: [WORKFLOW],
      format: 'bundle v0.3',
      transparencyLog: 'verified by bed',
      timestamp: 'verified by bed',
    },
  ],
  ['v3-keyless-fallback', 'workflow, root bed', { verified: true }],
  ['v3-keyless-raw', 'workflow, root bed', { verified: true }],
  [
    'message-keyless',
    'workflow, root bed',
    { verified: true, format: 'bundle v0.3 (message signature)' },
  ],
  ['v02-keyless', 'workflow, root bed', { verified: true, format: 'bundle v0.2' }],
  ['v3-keyless-mallory', 'workflow, root bed', { reason: 'signed by another identity' }],
  ['v3-keyless-email', 'workflow, root bed', { reason: 'signed by another identity' }],
  [
    'v3-keyless-other-root',
    'workflow, root bed',
    { reason: 'certificate not issued by the trust root' },
  ],
  [
    'v3-keyless-tsa-only',
    'workflow, root bed',
    { reason: 'certificate not issued by the trust root' },
  ],
  ['v2-keyless-tsa', 'workflow, root bed', { reason: 'no transparency-log entry' }],
  ['v2-keyless-no-time', 'workflow, root bed', { reason: 'no verified signing time' }],
  ['v3-key-rekor', 'workflow, root bed', { reason: 'signed by another key' }],
  ['unsigned', 'workflow, root bed', { reason: 'no signature' }],
  // keyless with a timestamp instead of (or beside) the log
  [
    'v2-keyless-tsa',
    'workflow, root bed, timestamp',
    { verified: true, format: 'legacy', timestamp: 'verified by bed' },
  ],
  ['v3-keyless', 'workflow, root bed, timestamp', { verified: true }],
  ['v2-keyless-tsa', 'workflow, root bed, either', { verified: true }],
  ['v2-keyless-no-time', 'workflow, root bed, either', { reason: 'no verified signing time' }],
  // a Sigstore with timestamp authorities and no log (GitHub's private instance)
  [
    'v3-keyless-tsa-only',
    'workflow, TSA-only root',
    { verified: true, timestamp: 'verified by tsa-only' },
  ],
  ['v2-bundle-keyless', 'workflow, TSA-only root', { verified: true, format: 'bundle v0.3' }],
  ['v01-keyless', 'workflow, TSA-only root', { verified: true, format: 'bundle v0.1' }],
  ['v3-keyless', 'workflow, TSA-only root', { reason: 'certificate not issued by the trust root' }],
  // two trust roots at once, chosen per identity
  ['v3-keyless', 'workflow, both roots', { verified: true }],
  [
    'v3-keyless-other-root',
    'workflow, both roots',
    { verified: true, transparencyLog: 'verified by other' },
  ],
  // thresholds: distinct signers, each by a distinct signature
  [
    'two-signers',
    'key and workflow, threshold 2',
    { verified: true, signers: ['release.pub', WORKFLOW], key: 'release.pub' },
  ],
  ['v3-keyless', 'key and workflow, threshold 2', { reason: 'too few signers' }],
  ['v3-key-rekor-referrers', 'key and workflow, threshold 2', { reason: 'too few signers' }],
  ['v3-keyless', 'two patterns of one workflow, threshold 2', { reason: 'too few signers' }],
];

const signatureOf = (facts: ImageFacts) => facts.signature as Record<string, unknown> | undefined;

for (const [name, entry, expected] of table) {
  test(`${name} against "${entry}": ${'reason' in expected ? expected.reason : 'verified'}`, async (t) => {
    const c = the();
    const config = entries[entry];
    if (config === undefined) return t.fail(`no entry ${entry}`);
    const facts = await c.one(c.request(name, c.entry(config)));
    t.is(facts.error, undefined, facts.error);
    t.like(signatureOf(facts), 'reason' in expected ? { verified: false, ...expected } : expected);
  });
}

test('a keyless signature tells its identity and its signed time', async (t) => {
  const c = the();
  const facts = await c.one(c.request('v3-keyless', c.entry(entries['workflow, root bed'] ?? {})));
  const signature = signatureOf(facts);
  t.like(signature, {
    identity: {
      issuer: release.issuer,
      subject: release.subject,
      extensions: {
        sourceRepositoryURI: 'https://github.com/acme/app',
        sourceRepositoryRef: 'refs/tags/v1.0.0',
        buildTrigger: 'push',
        runnerEnvironment: 'github-hosted',
        githubWorkflowRepository: 'acme/app',
      },
    },
  });
  t.regex(String(signature?.signedAt), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

const identityTable: [string, VerificationConfig['identities'][number], boolean][] = [
  ['exact subject', workflow, true],
  [
    'glob, * within a segment',
    {
      issuer: release.issuer,
      subject: 'https://github.com/acme/*/.github/workflows/release.yml@refs/tags/v*',
    },
    true,
  ],
  [
    'glob, * does not cross /',
    { issuer: release.issuer, subject: 'https://github.com/acme/*@refs/tags/v*' },
    false,
  ],
  ['glob, ** crosses /', { issuer: release.issuer, subject: 'https://github.com/acme/**' }, true],
  [
    'regexp, matched whole',
    { issuer: release.issuer, subjectRegExp: 'https://github\\.com/acme/app/.*' },
    true,
  ],
  [
    'regexp, never a substring',
    { issuer: release.issuer, subjectRegExp: 'github\\.com/acme/app' },
    false,
  ],
  [
    'issuer regexp',
    { issuerRegExp: 'http://127\\.0\\.0\\.1:\\d+/github-actions', subject: release.subject },
    true,
  ],
  ['another issuer', { issuer: email.issuer, subject: release.subject }, false],
  ['another workflow', { issuer: release.issuer, subject: mallory.subject }, false],
  [
    'Fulcio extensions that match',
    {
      ...workflow,
      extensions: {
        sourceRepositoryURI: 'https://github.com/acme/app',
        sourceRepositoryRef: 'refs/tags/v1.0.0',
        buildTrigger: 'push',
        githubWorkflowTrigger: 'push',
      },
    },
    true,
  ],
  [
    'a Fulcio extension that does not',
    { ...workflow, extensions: { sourceRepositoryRef: 'refs/heads/main' } },
    false,
  ],
  ['an email identity', { issuer: email.issuer, subject: email.subject }, false],
];

for (const [what, identity, verified] of identityTable) {
  test(`identity: ${what}`, async (t) => {
    const c = the();
    const id = c.entry({ identities: [identity], trustRoot: 'bed' });
    const signature = signatureOf(await c.one(c.request('v3-keyless', id)));
    t.like(
      signature,
      verified ? { verified: true } : { verified: false, reason: 'signed by another identity' },
    );
  });
}

test('an email identity verifies its own signature', async (t) => {
  const c = the();
  const id = c.entry({
    identities: [{ issuer: email.issuer, subject: email.subject }],
    trustRoot: 'bed',
  });
  t.like(signatureOf(await c.one(c.request('v3-keyless-email', id))), { verified: true });
});

test('SCTs: required when the root names CT logs, unless sct is false', async (t) => {
  const c = the();
  const bedRoot = c.roots.get('bed');
  if (bedRoot === undefined) return t.fail();
  // The bed's Fulcio has no CT log: a root that names one (as public Sigstore's does)
  // finds no SCT in its certificates.
  c.roots.set('with-ct', {
    ...bedRoot,
    name: 'with-ct',
    fingerprint: `${bedRoot.fingerprint}-ct`,
    material: { ...bedRoot.material, ctlogs: bedRoot.material.tlogs },
  });
  const strict = c.entry({ identities: [workflow], trustRoot: 'with-ct' });
  t.like(signatureOf(await c.one(c.request('v3-keyless', strict))), {
    verified: false,
    reason: 'no SCT',
  });
  const lenient = c.entry({ identities: [workflow], trustRoot: 'with-ct', sct: false });
  t.like(signatureOf(await c.one(c.request('v3-keyless', lenient))), { verified: true });
});

test('a root whose timestamp authority is not trusted gives a certificate no time', async (t) => {
  const c = the();
  const bedRoot = c.roots.get('bed');
  if (bedRoot === undefined) return t.fail();
  c.roots.set('no-tsa', {
    ...bedRoot,
    name: 'no-tsa',
    fingerprint: `${bedRoot.fingerprint}-no-tsa`,
    material: { ...bedRoot.material, timestampAuthorities: [] },
  });
  const id = c.entry({ identities: [workflow], trustRoot: 'no-tsa' });
  t.like(signatureOf(await c.one(c.request('v3-keyless', id))), {
    verified: false,
    reason: 'no verified signing time',
  });
});

test('requirements a root cannot check are refused when the entry is compiled', (t) => {
  const c = the();
  t.throws(() => c.entry({ identities: [workflow], trustRoot: 'tsa-only' }), {
    message: /require: tlog needs a transparency log, and trust root tsa-only names none/,
  });
  t.throws(() => c.entry({ identities: [workflow], trustRoot: 'bed', require: 'none' }), {
    message: /a keyless signature needs a signed time/,
  });
  t.throws(() => c.entry({ keys: ['release.pub'], require: 'tlog' }), {
    message: /needs the entry's trustRoot/,
  });
});

test('multi-arch: an index reference needs the index signed; a platform its own, or opt-in the index', async (t) => {
  const c = the();
  const keyed = c.entry({ keys: ['release.pub'], trustRoot: 'bed' });
  const byIndex = c.entry({ keys: ['release.pub'], trustRoot: 'bed', acceptIndexSignature: true });
  const one = async (name: string, id: string, platform?: string) =>
    signatureOf(await c.one(c.request(name, id, platform === undefined ? {} : { platform })));
  t.like(await one('index-signed', keyed), { verified: true });
  t.like(await one('index-signed', keyed, 'linux/amd64'), {
    verified: false,
    reason: 'no signature',
  });
  const via = await one('index-signed', byIndex, 'linux/amd64');
  t.like(via, { verified: true, key: 'release.pub' });
  t.is(via?.via, `index ${the().fixtures.cases['index-signed']?.digest}`);

  t.like(await one('platform-signed', keyed, 'linux/arm64'), { verified: true });
  t.like(await one('platform-signed', keyed, 'linux/amd64'), { verified: false });
  t.like(await one('platform-signed', byIndex, 'linux/amd64'), {
    verified: false,
    reason: 'no signature',
  });
  t.like(await one('platform-signed', keyed), { verified: false, reason: 'no signature' });
});

test('attestations: verified with the entry’s signers, about the digest, statements bounded', async (t) => {
  const c = the();
  const keyed = c.entry({
    keys: ['release.pub'],
    trustRoot: 'bed',
    attestations: ['slsaprovenance1', { type: 'vuln', required: false }],
  });
  const facts = await c.one(c.request('attest-key', keyed));
  t.like(signatureOf(facts), { verified: true });
  const byType = new Map((facts.attestations ?? []).map((a) => [a.type, a]));
  t.deepEqual([...byType.keys()].sort(), [SLSA, VULN].sort());
  const provenance = byType.get(SLSA);
  t.is(provenance?.signer, 'release.pub');
  t.regex(provenance?.digest ?? '', /^sha256:[0-9a-f]{64}$/);
  t.deepEqual(provenance?.statement?.predicate, the().fixtures.provenance);
  t.deepEqual(facts.attestationFailures, {});

  const keyless = c.entry({ identities: [workflow], trustRoot: 'bed', attestations: [SLSA, VULN] });
  const made = await c.one(c.request('attest-keyless', keyless));
  t.deepEqual(
    (made.attestations ?? []).map((a) => [a.type, a.signer]).sort(),
    [
      [SLSA, WORKFLOW],
      [VULN, WORKFLOW],
    ].sort(),
  );
  const mallorys = await c.one(c.request('attest-mallory', keyless));
  t.like(signatureOf(mallorys), { verified: true });
  t.deepEqual(mallorys.attestations, []);
  t.like(mallorys.attestationFailures, {
    [SLSA]: { reason: 'signed by another identity' },
    [VULN]: { reason: 'no attestation' },
  });

  // cosign 2's .att tag: a DSSE envelope with a certificate and a timestamp over the layer.
  const legacy = c.entry({
    identities: [workflow],
    trustRoot: 'bed',
    require: 'timestamp',
    attestations: [SLSA],
  });
  const v2 = await c.one(c.request('attest-v2-keyless', legacy));
  t.like(signatureOf(v2), { verified: true, format: 'legacy' });
  t.deepEqual(
    (v2.attestations ?? []).map((a) => a.type),
    [SLSA],
  );
});

test.serial(
  'verified once, whatever the pod says: one read per digest, none when warm',
  async (t) => {
    const c = the();
    const identities = Array.from({ length: 5 }, (_, i) => ({
      issuer: release.issuer,
      subject: i === 4 ? release.subject : `https://github.com/acme/other-${i}/**`,
    }));
    const five = c.entry({ identities, trustRoot: 'bed' });
    const also = c.entry({ identities: [workflow], trustRoot: 'bed', attestations: [] });
    const registry = c.registries.referrers;
    const before = registry.seen.length;
    // Eight containers of one image under one entry of five identities, and the same digest
    // under another entry: one review.
    const requests = [
      ...Array.from({ length: 8 }, (_, index) => c.request('v3-keyless', five, { index })),
      c.request('v3-keyless', also, { index: 8 }),
    ];
    const cold = await c.facts.gather(requests, 20_000);
    const reads = registry.seen.slice(before).map((s) => s.url);
    t.true([...cold.values()].every((f) => f.signature?.verified === true));
    // The legacy tag (absent), the referrers index, one referrer manifest, its bundle: once each.
    t.is(reads.length, 4, reads.join('\n'));
    t.is(new Set(reads).size, 4, reads.join('\n'));
    const warm = registry.seen.length;
    const again = await c.facts.gather(requests, 20_000);
    t.true([...again.values()].every((f) => f.signature?.verified === true));
    t.is(registry.seen.length, warm, 'the warm path asks the registry nothing');
  },
);
