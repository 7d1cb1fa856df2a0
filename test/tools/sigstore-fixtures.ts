/**
 * `make sigstore-fixtures`: the conformance fixture set of test/registry/conformance.test.ts,
 * made by the real cosign 3.1.3 and 2.6.5 against a real, private Sigstore (Rekor v2, Fulcio,
 * the timestamp authority, an OIDC issuer: test/helpers/sigstore.ts) and real registries
 * (the CNCF distribution registry, which has no referrers API, and go-containerregistry's
 * with it, also in its raw mode), then recorded — every manifest, signature blob and
 * referrers index a verifier reads — into test/fixtures/sigstore/. Committed: the tests
 * replay it without the Go tools, and certificates are checked at their signed time, so the
 * fixtures stay verifiable for as long as the bed's CAs are valid (ten years).
 *
 * Each case is one image, signed one way; cases.json says how each was made. Three formats
 * no tool here writes as such are made from real output and say so: the message-signature
 * bundle (`cosign sign-blob` of the image manifest, attached as a referrer as `oras attach`
 * would), and bundles v0.1 and v0.2 (a real v0.3 bundle's material in the older shapes —
 * a certificate chain instead of a certificate; the signatures are the originals). Rekor v1
 * cannot run here (it needs Trillian and MySQL), so no fixture has a Rekor v1 entry.
 *
 * Run: node --import=tsx/esm test/tools/sigstore-fixtures.ts [out-dir]
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import { ROOT } from '../helpers/cli.ts';
import {
  type RecordedRegistry,
  type RecordedRepository,
  sha256,
} from '../helpers/recorded-registry.ts';
import {
  generateKeyPair,
  type KeyPair,
  type PushedImage,
  pushImage,
  signImage,
  startRegistry,
  type TestRegistry,
} from '../helpers/registry.ts';
import { ACCEPT_MANIFESTS, https, MEDIA_TYPES, pull } from '../helpers/registry-http.ts';
import { runTool } from '../helpers/registry-tools.ts';
import { type SigstoreBed, startSigstoreBed } from '../helpers/sigstore.ts';
import { attachedBundles } from '../helpers/sigstore-bundles.ts';
import {
  emailClaims,
  type GithubWorkflow,
  githubActionsClaims,
  githubActionsIdentity,
} from '../helpers/sigstore-fulcio-config.ts';
import {
  cosign2Sign,
  cosignAttest,
  cosignSign,
  type Predicate,
  type Signer,
  slsaProvenance,
} from '../helpers/sigstore-sign.ts';
import { Teardowns, tempDir } from '../helpers/teardown.ts';

const OUT = process.argv[2] ?? join(ROOT, 'test', 'fixtures', 'sigstore');
const BUNDLE_V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';

/** The release workflow every "expected" keyless signature is made by. */
export const RELEASE: GithubWorkflow = { repository: 'acme/app', ref: 'refs/tags/v1.0.0' };
const MALLORY: GithubWorkflow = { repository: 'mallory/app', ref: 'refs/tags/v1.0.0' };

type Kind = 'fallback' | 'referrers' | 'raw';

interface Case {
  readonly registry: Kind;
  readonly repository: string;
  readonly tag: string;
  readonly digest: string;
  readonly platformDigests: Readonly<Record<string, string>>;
  /** How it was made, in words. */
  readonly made: string;
}

const vulnScan = (critical: number): Predicate => ({
  type: 'vuln',
  predicate: {
    invocation: { uri: 'https://github.com/acme/app/actions/runs/3000003' },
    scanner: {
      uri: 'pkg:github/aquasecurity/trivy@0.58.0',
      version: '0.58.0',
      db: { uri: 'pkg:github/aquasecurity/trivy-db', version: '2026-12-01' },
      result: { summary: { critical, high: 1, medium: 4, low: 9 } },
    },
    metadata: { scanStartedOn: '2026-12-01T10:00:00Z', scanFinishedOn: '2026-12-01T10:00:30Z' },
  },
});

async function main(): Promise<void> {
  const t = new Teardowns();
  try {
    await generate(t);
  } finally {
    await t.run();
  }
}

async function generate(t: Teardowns): Promise<void> {
  // The bed every "expected" signature is made against; one without Rekor (GitHub's private
  // instance has timestamp authorities and no log); another, standing for another root.
  const [bed, tsaOnly, other] = await Promise.all([
    startSigstoreBed(t, { fulcio: true }),
    startSigstoreBed(t, { fulcio: true, rekor: false }),
    startSigstoreBed(t, { fulcio: true }),
  ]);
  const registries: Record<Kind, TestRegistry> = {
    fallback: await startRegistry(t, { auth: 'none' }),
    referrers: await startRegistry(t, { auth: 'none', referrers: true }),
    raw: await startRegistry(t, { auth: 'none', referrers: true, rawReferrers: true }),
  };
  const scratch = await startRegistry(t, { auth: 'none', referrers: true });
  const keysDir = await tempDir(t, 'imagegate-fixture-keys-');
  await mkdir(join(keysDir, 'other'));
  const release = await generateKeyPair(keysDir);
  const otherKey = await generateKeyPair(join(keysDir, 'other'));

  const token = (b: SigstoreBed, run: GithubWorkflow) => {
    if (b.oidc === undefined) throw new Error('no OIDC issuer');
    return b.oidc.mint('github-actions', githubActionsClaims(run));
  };
  const keyless = async (b: SigstoreBed, run = RELEASE): Promise<Signer> => ({
    identityToken: await token(b, run),
  });
  const key = (pair: KeyPair): Signer => ({ key: pair });

  const cases: Record<string, Case> = {};
  const image = async (
    name: string,
    kind: Kind,
    made: string,
    platforms?: readonly string[],
  ): Promise<PushedImage> => {
    const pushed = await pushImage(registries[kind], `cases/${name}`, 'v1', {
      ...(platforms === undefined ? {} : { platforms }),
    });
    cases[name] = {
      registry: kind,
      repository: `cases/${name}`,
      tag: 'v1',
      digest: pushed.digest,
      platformDigests: pushed.platformDigests,
      made,
    };
    console.log(`${name}: ${made}`);
    return pushed;
  };
  const cosign2 = (kind: Kind, args: readonly string[], env: NodeJS.ProcessEnv = {}) =>
    runTool(registries[kind].tools.cosign2, args, { ...registries[kind].env, ...env });
  const { tsa: _tsa, ...withoutTsa } = bed;

  // --- cosign 3: Sigstore bundles v0.3 (DSSE), referrers or the tag fallback
  let i = await image('v3-key-rekor', 'fallback', 'cosign 3 sign --key, Rekor v2 (tag fallback)');
  await cosignSign(bed, registries.fallback, i.reference, key(release));
  i = await image(
    'v3-key-rekor-referrers',
    'referrers',
    'cosign 3 sign --key, Rekor v2 (referrers API)',
  );
  await cosignSign(bed, registries.referrers, i.reference, key(release));
  i = await image('v3-key-offline', 'fallback', 'cosign 3 sign --key --tlog-upload=false');
  await signImage(registries.fallback, i.reference, release, { cosign: 'v3' });
  i = await image('v3-key-other', 'fallback', 'cosign 3 sign --key (another key), Rekor v2');
  await cosignSign(bed, registries.fallback, i.reference, key(otherKey));
  i = await image(
    'v3-keyless',
    'referrers',
    'cosign 3 sign keyless (release workflow), Rekor v2 + TSA (referrers API)',
  );
  await cosignSign(bed, registries.referrers, i.reference, await keyless(bed));
  i = await image(
    'v3-keyless-fallback',
    'fallback',
    'cosign 3 sign keyless (release workflow), Rekor v2 + TSA (tag fallback)',
  );
  await cosignSign(bed, registries.fallback, i.reference, await keyless(bed));
  i = await image(
    'v3-keyless-raw',
    'raw',
    'cosign 3 sign keyless, Rekor v2 + TSA (referrers listed with the empty artifactType)',
  );
  await cosignSign(bed, registries.raw, i.reference, await keyless(bed));
  i = await image(
    'v3-keyless-tsa-only',
    'referrers',
    'cosign 3 sign keyless against a Sigstore without Rekor: TSA only',
  );
  await cosignSign(tsaOnly, registries.referrers, i.reference, await keyless(tsaOnly));
  i = await image(
    'v3-keyless-mallory',
    'referrers',
    'cosign 3 sign keyless by another workflow (mallory/app), Rekor v2 + TSA',
  );
  await cosignSign(bed, registries.referrers, i.reference, await keyless(bed, MALLORY));
  i = await image(
    'v3-keyless-other-root',
    'referrers',
    'cosign 3 sign keyless (release workflow) against another Sigstore',
  );
  await cosignSign(other, registries.referrers, i.reference, await keyless(other));
  i = await image(
    'v3-keyless-email',
    'referrers',
    'cosign 3 sign keyless with an email identity, Rekor v2 + TSA',
  );
  if (bed.oidc === undefined) throw new Error('no OIDC issuer');
  await cosignSign(bed, registries.referrers, i.reference, {
    identityToken: await bed.oidc.mint('email', emailClaims('release@acme.example')),
  });
  i = await image(
    'two-signers',
    'referrers',
    'cosign 3 sign --key (release) and keyless (release workflow), Rekor v2',
  );
  await cosignSign(bed, registries.referrers, i.reference, key(release));
  await cosignSign(bed, registries.referrers, i.reference, await keyless(bed));

  // --- cosign 2: the legacy .sig tag (offline: no Rekor v1), its bundle format, its referrers mode
  i = await image('v2-key', 'fallback', 'cosign 2 sign --key --tlog-upload=false (.sig)');
  await signImage(registries.fallback, i.reference, release, { cosign: 'v2' });
  i = await image(
    'v2-key-tsa',
    'fallback',
    'cosign 2 sign --key --tlog-upload=false with an RFC 3161 timestamp (.sig)',
  );
  await cosign2Sign(bed, registries.fallback, i.reference, key(release));
  i = await image(
    'v2-keyless-tsa',
    'fallback',
    'cosign 2 sign keyless (release workflow) --tlog-upload=false, RFC 3161 timestamp (.sig)',
  );
  await cosign2Sign(bed, registries.fallback, i.reference, await keyless(bed));
  i = await image(
    'v2-keyless-no-time',
    'fallback',
    'cosign 2 sign keyless --tlog-upload=false without a timestamp (.sig): its certificate expired ten minutes later',
  );
  await cosign2Sign(withoutTsa, registries.fallback, i.reference, await keyless(bed));
  i = await image(
    'v2-bundle-keyless',
    'referrers',
    'cosign 2 sign --new-bundle-format keyless against a Sigstore without Rekor (TSA)',
  );
  {
    const tokenFile = join(tsaOnly.dir, 'fixture-token.jwt');
    await writeFile(tokenFile, await token(tsaOnly, RELEASE));
    await cosign2('referrers', [
      'sign',
      '--new-bundle-format',
      '--signing-config',
      tsaOnly.signingConfig,
      '--trusted-root',
      tsaOnly.trustedRoot,
      '--identity-token',
      tokenFile,
      '--yes',
      i.reference,
    ]);
  }
  i = await image(
    'v2-referrer',
    'referrers',
    'cosign 2 sign --key --registry-referrers-mode=oci-1-1 (the .sig manifest as a referrer)',
  );
  await cosign2(
    'referrers',
    [
      'sign',
      '--key',
      release.privateKey,
      '--tlog-upload=false',
      '--registry-referrers-mode=oci-1-1',
      '--yes',
      i.reference,
    ],
    { COSIGN_EXPERIMENTAL: '1' },
  );
  {
    const signed = await image(
      'copied-from',
      'fallback',
      'cosign 2 sign --key (.sig), copied to copied-to',
    );
    await signImage(registries.fallback, signed.reference, release, { cosign: 'v2' });
    i = await image(
      'copied-to',
      'fallback',
      "copied-from's .sig tag copied here by crane: a valid signature of another digest",
    );
    const sigTag = (p: PushedImage) => `${p.repository}:${p.digest.replace(':', '-')}.sig`;
    await runTool(
      registries.fallback.tools.crane,
      ['copy', sigTag(signed), sigTag(i)],
      registries.fallback.env,
    );
  }

  // --- formats made from real output: a message signature, bundles v0.1 and v0.2
  i = await image(
    'message-keyless',
    'referrers',
    'cosign 3 sign-blob of the image manifest, keyless, Rekor v2 + TSA; attached as a referrer',
  );
  {
    const manifest = await pull(
      registries.referrers,
      i.repository.slice(registries.referrers.host.length + 1),
      `manifests/${i.digest}`,
    );
    const file = join(bed.dir, 'manifest.json');
    await writeFile(file, manifest.body);
    const tokenFile = join(bed.dir, 'blob-token.jwt');
    await writeFile(tokenFile, await token(bed, RELEASE));
    const out = join(bed.dir, 'message.bundle.json');
    await runTool(
      registries.referrers.tools.cosign,
      [
        'sign-blob',
        '--bundle',
        out,
        '--signing-config',
        bed.signingConfig,
        '--trusted-root',
        bed.trustedRoot,
        '--identity-token',
        tokenFile,
        '--yes',
        file,
      ],
      registries.referrers.env,
    );
    await attach(
      registries.referrers,
      `cases/message-keyless`,
      i.digest,
      manifest.body,
      await readFile(out, 'utf8'),
    );
  }
  for (const [name, version, from] of [
    ['v01-keyless', '0.1', tsaOnly],
    ['v02-keyless', '0.2', bed],
  ] as const) {
    i = await image(
      name,
      'referrers',
      `a cosign 3 keyless bundle (${from === bed ? 'Rekor v2 + TSA' : 'TSA only'}) in the v${version} shape: its certificate as a chain`,
    );
    const copy = await pushCopy(registries.referrers, scratch, `cases/${name}`, i.digest);
    await cosignSign(from, scratch, copy, await keyless(from));
    const [made] = await attachedBundles(scratch, `cases/${name}`, i.digest);
    if (made === undefined) throw new Error(`${name}: cosign attached nothing`);
    const manifest = await pull(registries.referrers, `cases/${name}`, `manifests/${i.digest}`);
    await attach(
      registries.referrers,
      `cases/${name}`,
      i.digest,
      manifest.body,
      JSON.stringify(olderShape(made.bundle, version)),
    );
  }

  // --- attestations: cosign 3 attest (bundles), cosign 2 attest (.att)
  const provenance = slsaProvenance({
    builderId: githubActionsIdentity(RELEASE),
    repository: 'acme/app',
    ref: 'refs/tags/v1.0.0',
  });
  i = await image(
    'attest-key',
    'fallback',
    'cosign 3 sign and attest --key: SLSA provenance and a vulnerability scan, Rekor v2',
  );
  await cosignSign(bed, registries.fallback, i.reference, key(release));
  await cosignAttest(bed, registries.fallback, i.reference, key(release), provenance);
  await cosignAttest(bed, registries.fallback, i.reference, key(release), vulnScan(0));
  i = await image(
    'attest-keyless',
    'referrers',
    'cosign 3 sign and attest keyless (release workflow): SLSA provenance and a vulnerability scan with a critical finding',
  );
  await cosignSign(bed, registries.referrers, i.reference, await keyless(bed));
  await cosignAttest(bed, registries.referrers, i.reference, await keyless(bed), provenance);
  await cosignAttest(bed, registries.referrers, i.reference, await keyless(bed), vulnScan(2));
  i = await image(
    'attest-mallory',
    'referrers',
    'cosign 3 sign keyless (release workflow); provenance attested by another workflow (mallory/app)',
  );
  await cosignSign(bed, registries.referrers, i.reference, await keyless(bed));
  await cosignAttest(
    bed,
    registries.referrers,
    i.reference,
    await keyless(bed, MALLORY),
    provenance,
  );
  i = await image(
    'attest-v2-keyless',
    'fallback',
    'cosign 2 sign and attest keyless (release workflow) --tlog-upload=false with RFC 3161 timestamps (.sig, .att)',
  );
  await cosign2Sign(bed, registries.fallback, i.reference, await keyless(bed));
  {
    const predicate = join(bed.dir, 'provenance.json');
    await writeFile(predicate, JSON.stringify(provenance.predicate));
    const tokenFile = join(bed.dir, 'attest-token.jwt');
    await writeFile(tokenFile, await token(bed, RELEASE));
    await cosign2('fallback', [
      'attest',
      '--predicate',
      predicate,
      '--type',
      'slsaprovenance1',
      '--identity-token',
      tokenFile,
      '--tlog-upload=false',
      '--fulcio-url',
      bed.fulcio?.url ?? '',
      '--insecure-skip-verify',
      '--timestamp-server-url',
      bed.tsa?.url ?? '',
      '--yes',
      i.reference,
    ]);
  }

  // --- multi-arch: the index, every manifest, one platform
  const platforms = ['linux/amd64', 'linux/arm64'];
  i = await image(
    'index-signed',
    'fallback',
    'a two-platform index; cosign 3 sign --key of the index only, Rekor v2',
    platforms,
  );
  await cosignSign(bed, registries.fallback, i.reference, key(release));
  i = await image(
    'index-recursive',
    'fallback',
    'a two-platform index; cosign 3 sign --key --recursive (the index and each platform), offline',
    platforms,
  );
  await runTool(
    registries.fallback.tools.cosign,
    [
      'sign',
      '--key',
      release.privateKey,
      '--recursive',
      '--tlog-upload=false',
      '--use-signing-config=false',
      '--yes',
      i.reference,
    ],
    registries.fallback.env,
  );
  i = await image(
    'platform-signed',
    'fallback',
    'a two-platform index; cosign 3 sign --key of linux/arm64 only, Rekor v2',
    platforms,
  );
  const arm = i.platformDigests['linux/arm64'] ?? '';
  await cosignSign(bed, registries.fallback, `${i.repository}@${arm}`, key(release));
  i = await image('unsigned', 'fallback', 'not signed');

  // --- record
  await rm(OUT, { recursive: true, force: true });
  await mkdir(join(OUT, 'roots'), { recursive: true });
  await mkdir(join(OUT, 'keys'), { recursive: true });
  await writeFile(join(OUT, 'roots', 'bed.json'), await readFile(bed.trustedRoot));
  await writeFile(join(OUT, 'roots', 'tsa-only.json'), await readFile(tsaOnly.trustedRoot));
  await writeFile(join(OUT, 'roots', 'other.json'), await readFile(other.trustedRoot));
  await writeFile(join(OUT, 'keys', 'release.pub'), release.publicPem);
  await writeFile(join(OUT, 'keys', 'other.pub'), otherKey.publicPem);
  const recorded: Record<Kind, RecordedRegistry> = {
    fallback: await record(registries.fallback, cases, 'fallback'),
    referrers: await record(registries.referrers, cases, 'referrers'),
    raw: await record(registries.raw, cases, 'raw'),
  };
  await writeFile(join(OUT, 'registries.json'), `${JSON.stringify(recorded, null, 1)}\n`);
  const identities = {
    release: {
      issuer: bed.oidc.url('github-actions'),
      subject: githubActionsIdentity(RELEASE),
      tsaOnlyIssuer: tsaOnly.oidc?.url('github-actions'),
      otherIssuer: other.oidc?.url('github-actions'),
    },
    mallory: { subject: githubActionsIdentity(MALLORY) },
    email: { issuer: bed.oidc.url('email'), subject: 'release@acme.example' },
  };
  const made = {
    made: new Date().toISOString(),
    tools:
      'cosign 3.1.3, cosign 2.6.5, rekor-tiles 2.3.0 (posix), fulcio 1.8.8, timestamp-authority 2.1.3',
    identities,
    provenance: provenance.predicate,
    cases,
  };
  await writeFile(join(OUT, 'cases.json'), `${JSON.stringify(made, null, 2)}\n`);
  console.log(`wrote ${Object.keys(cases).length} cases to ${OUT}`);
}

/** A copy of an image (by digest) in another registry: crane trusting both registries' CAs. */
async function pushCopy(
  from: TestRegistry,
  to: TestRegistry,
  repository: string,
  digest: string,
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'imagegate-fixture-ca-'));
  try {
    const both = join(dir, 'both.crt');
    await writeFile(both, `${from.ca}\n${to.ca}`);
    await runTool(
      from.tools.crane,
      ['copy', `${from.host}/${repository}@${digest}`, `${to.host}/${repository}:copy`],
      { ...from.env, SSL_CERT_FILE: both },
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return `${to.host}/${repository}@${digest}`;
}

/** A bundle's material in an older shape: v0.1/v0.2 carry the certificate as a chain. */
function olderShape(bundle: JsonObject, version: '0.1' | '0.2'): JsonObject {
  const material = isRecord(bundle.verificationMaterial) ? bundle.verificationMaterial : {};
  const { certificate, ...rest } = material;
  return {
    ...bundle,
    mediaType: `application/vnd.dev.sigstore.bundle+json;version=${version}`,
    verificationMaterial: { ...rest, x509CertificateChain: { certificates: [certificate] } },
  };
}

/** PUTs a blob (monolithic upload). */
async function putBlob(registry: TestRegistry, repository: string, body: string): Promise<string> {
  const digest = sha256(body);
  const start = await https(registry, `/v2/${repository}/blobs/uploads/`, { method: 'POST' });
  const location = String(start.headers.location ?? '');
  if (start.status !== 202 || location === '') throw new Error(`upload: ${start.status}`);
  const url = new URL(location, `https://${registry.host}`);
  url.searchParams.set('digest', digest);
  const put = await https(registry, `${url.pathname}${url.search}`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/octet-stream' },
    body,
  });
  if (put.status !== 201) throw new Error(`upload ${digest}: ${put.status} ${put.body.toString()}`);
  return digest;
}

/** A bundle attached to an image as a referrer, as `oras attach` or cosign 3 attach one. */
async function attach(
  registry: TestRegistry,
  repository: string,
  digest: string,
  subject: Buffer,
  bundle: string,
): Promise<void> {
  const config = await putBlob(registry, repository, '{}');
  const layer = await putBlob(registry, repository, bundle);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    artifactType: BUNDLE_V03,
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: config, size: 2 },
    layers: [{ mediaType: BUNDLE_V03, digest: layer, size: Buffer.byteLength(bundle) }],
    subject: { mediaType: MEDIA_TYPES.ociManifest, digest, size: subject.length },
  });
  const put = await https(registry, `/v2/${repository}/manifests/${sha256(manifest)}`, {
    method: 'PUT',
    headers: { 'Content-Type': MEDIA_TYPES.ociManifest },
    body: manifest,
  });
  if (put.status !== 201) throw new Error(`attach: ${put.status} ${put.body.toString()}`);
}

const SIGNATURE_LAYERS = new Set([
  'application/vnd.dev.cosign.simplesigning.v1+json',
  'application/vnd.dsse.envelope.v1+json',
  BUNDLE_V03,
]);

/** Everything a verifier reads from the registry for these cases, recorded. */
async function record(
  registry: TestRegistry,
  cases: Record<string, Case>,
  kind: Kind,
): Promise<RecordedRegistry> {
  const repositories: Record<string, RecordedRepository> = {};
  for (const c of Object.values(cases)) {
    if (c.registry !== kind) continue;
    const repo: RecordedRepository = { manifests: {}, blobs: {}, referrers: {} };
    repositories[c.repository] = repo;
    const get = (path: string, accept = ACCEPT_MANIFESTS) =>
      pull(registry, c.repository, path, accept);
    const seen = new Set<string>();
    const manifest = async (ref: string): Promise<void> => {
      if (seen.has(ref)) return;
      seen.add(ref);
      const res = await get(`manifests/${ref}`);
      if (res.status !== 200) throw new Error(`${c.repository}/${ref}: ${res.status}`);
      const body = res.body.toString('utf8');
      const entry = { mediaType: String(res.headers['content-type'] ?? ''), body };
      repo.manifests[ref] = entry;
      repo.manifests[sha256(body)] = entry;
      seen.add(sha256(body));
      const json: unknown = JSON.parse(body);
      if (!isRecord(json)) return;
      for (const child of Array.isArray(json.manifests) ? json.manifests : []) {
        if (isRecord(child) && typeof child.digest === 'string') await manifest(child.digest);
      }
      for (const layer of Array.isArray(json.layers) ? json.layers : []) {
        if (!isRecord(layer) || !SIGNATURE_LAYERS.has(String(layer.mediaType))) continue;
        const blob = await get(`blobs/${String(layer.digest)}`, '*/*');
        repo.blobs[String(layer.digest)] = blob.body.toString('base64');
      }
    };
    const tags = await get('tags/list');
    const names = isRecord(tags.json) && Array.isArray(tags.json.tags) ? tags.json.tags : [];
    for (const tag of names) await manifest(String(tag));
    if (kind !== 'fallback') {
      for (const digest of [...seen].filter((ref) => ref.startsWith('sha256:'))) {
        const res = await get(`referrers/${digest}`, MEDIA_TYPES.ociIndex);
        const index: unknown = res.json;
        if (res.status !== 200 || !isRecord(index) || !Array.isArray(index.manifests)) continue;
        if (index.manifests.length === 0) continue;
        repo.referrers[digest] = res.body.toString('utf8');
        for (const d of index.manifests) if (isRecord(d)) await manifest(String(d.digest));
      }
    }
  }
  return { referrersApi: kind !== 'fallback', repositories };
}

await main();
