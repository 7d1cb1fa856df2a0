/**
 * Attestations and legacy signatures made against the Sigstore bed: `cosign attest` (cosign
 * 3, an in-toto statement carrying a SLSA v1 provenance predicate, in a bundle) with a key
 * and keyless, next to a signature of the same image; and cosign 2's legacy `.sig` tag with
 * a Fulcio certificate and an RFC 3161 timestamp. Verified by cosign and @sigstore/verify
 * against the bed's trusted root only. Needs `make registry-tools sigstore-tools`.
 */
import { verify } from 'node:crypto';
import { PolicyError, VerificationError } from '@sigstore/verify';
import { tempDir } from '../helpers/gateway.ts';
import { generateKeyPair, pushImage, startRegistry } from '../helpers/registry.ts';
import { pull } from '../helpers/registry-http.ts';
import { startSigstoreBed } from '../helpers/sigstore.ts';
import { object, offline, pae } from '../helpers/sigstore-assert.ts';
import { attachedBundles, tlogEntries } from '../helpers/sigstore-bundles.ts';
import { githubActionsClaims, githubActionsIdentity } from '../helpers/sigstore-fulcio-config.ts';
import {
  cosign2Sign,
  cosignAttest,
  cosignSign,
  cosignVerify,
  slsaProvenance,
} from '../helpers/sigstore-sign.ts';
import { sigstoreTest } from '../helpers/sigstore-test.ts';
import { loadTrustedRoot, verifyBundle } from '../helpers/sigstore-verify.ts';

const test = await sigstoreTest('test/registry/sigstore-attest');

const SLSA_V1 = 'https://slsa.dev/provenance/v1';
const COSIGN_SIGN = 'https://sigstore.dev/cosign/sign/v1';
const BUILDER = 'https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main';
const code = (error: unknown) =>
  error instanceof VerificationError || error instanceof PolicyError ? error.code : String(error);

test('cosign attest --key: a SLSA provenance bundle beside the signature, each with its Rekor v2 entry', async (t) => {
  const bed = await startSigstoreBed(t);
  const registry = await startRegistry(t, { auth: 'token' });
  const image = await pushImage(registry, 'built', 'v1');
  const keys = await generateKeyPair(await tempDir(t, 'imagegate-keys-'));
  await cosignSign(bed, registry, image.reference, { key: keys });
  const provenance = slsaProvenance({ builderId: BUILDER, repository: 'acme/app' });
  const attested = await cosignAttest(bed, registry, image.reference, { key: keys }, provenance);
  offline(t, attested.stderr);

  const bundles = await attachedBundles(registry, 'built', image.digest);
  const byType = new Map(bundles.map((b) => [String(b.statement?.predicateType), b]));
  t.deepEqual([...byType.keys()].sort(), [COSIGN_SIGN, SLSA_V1]);
  const attestation = byType.get(SLSA_V1);
  if (attestation?.statement === undefined) return t.fail('no attestation');
  // `cosign attest` still writes in-toto Statement v0.1; `cosign sign`'s statement is v1.
  t.is(attestation.statement._type, 'https://in-toto.io/Statement/v0.1');
  t.is(byType.get(COSIGN_SIGN)?.statement?._type, 'https://in-toto.io/Statement/v1');
  const [subject] = Array.isArray(attestation.statement.subject)
    ? attestation.statement.subject
    : [];
  t.deepEqual(object(subject, 'subject').digest, { sha256: image.digest.slice('sha256:'.length) });
  t.deepEqual(attestation.statement.predicate, provenance.predicate);
  const [entry] = tlogEntries(attestation.bundle);
  t.log(`attestation bundle's tlog entry: ${JSON.stringify(entry?.kindVersion)}`);
  t.deepEqual(entry?.kindVersion, { kind: 'hashedrekord', version: '0.0.2' });
  const envelope = object(attestation.bundle.dsseEnvelope, 'dsseEnvelope');
  const [signature] = Array.isArray(envelope.signatures) ? envelope.signatures : [];
  const sig = Buffer.from(String(object(signature, 'signature').sig), 'base64');
  t.true(verify('sha256', pae(envelope), keys.publicPem, sig));

  const expected = { key: keys.publicKey };
  const verified = await cosignVerify(bed, registry, image.reference, expected, {
    attestationType: 'slsaprovenance1',
  });
  offline(t, verified.stderr);
  const other = await generateKeyPair(await tempDir(t, 'imagegate-keys-'));
  await t.throwsAsync(
    cosignVerify(
      bed,
      registry,
      image.reference,
      { key: other.publicKey },
      { attestationType: 'slsaprovenance1' },
    ),
  );
  await t.throwsAsync(
    cosignVerify(bed, registry, image.reference, expected, { attestationType: 'vuln' }),
    undefined,
    'no attestation of that type',
  );
  const root = await loadTrustedRoot(bed.trustedRoot);
  for (const { bundle } of bundles)
    t.notThrows(() => verifyBundle(root, bundle, { key: keys.publicPem }));
});

test('cosign attest keyless: the provenance bound to the workflow identity that built it', async (t) => {
  const bed = await startSigstoreBed(t, { fulcio: true });
  if (bed.oidc === undefined) return t.fail();
  const registry = await startRegistry(t, { auth: 'none', referrers: true });
  const image = await pushImage(registry, 'acme/app', 'v1', {
    platforms: ['linux/amd64', 'linux/arm64'],
  });
  const run = { repository: 'acme/app' };
  const token = await bed.oidc.mint('github-actions', githubActionsClaims(run));
  const provenance = slsaProvenance({ builderId: BUILDER, repository: 'acme/app' });
  offline(
    t,
    (await cosignAttest(bed, registry, image.reference, { identityToken: token }, provenance))
      .stderr,
  );
  const [attestation, ...more] = await attachedBundles(registry, 'acme/app', image.digest);
  t.is(more.length, 0, 'the index is attested, not each platform');
  if (attestation === undefined) return t.fail('no attestation');
  t.is(attestation.statement?.predicateType, SLSA_V1);

  const identity = githubActionsIdentity(run);
  const issuer = bed.oidc.url('github-actions');
  const type = { attestationType: 'slsaprovenance1' };
  offline(
    t,
    (await cosignVerify(bed, registry, image.reference, { identity, issuer }, type)).stderr,
  );
  const stranger = githubActionsIdentity({ repository: 'mallory/app' });
  await t.throwsAsync(
    cosignVerify(bed, registry, image.reference, { identity: stranger, issuer }, type),
  );

  const root = await loadTrustedRoot(bed.trustedRoot);
  const options = { timestampThreshold: 1 };
  t.notThrows(() =>
    verifyBundle(root, attestation.bundle, {
      identity: { subjectAlternativeName: identity, issuer },
      options,
    }),
  );
  const wrong = { subjectAlternativeName: stranger, issuer };
  t.is(
    code(t.throws(() => verifyBundle(root, attestation.bundle, { identity: wrong, options }))),
    'UNTRUSTED_SIGNER_ERROR',
  );
});

test('cosign 2 offline: the legacy .sig tag, keyless (Fulcio certificate, RFC 3161 timestamp) and keyed beside it', async (t) => {
  const bed = await startSigstoreBed(t, { fulcio: true });
  if (bed.oidc === undefined) return t.fail();
  const registry = await startRegistry(t, { auth: 'htpasswd' });
  const image = await pushImage(registry, 'legacy', 'v1');
  const run = { repository: 'acme/legacy' };
  const token = await bed.oidc.mint('github-actions', githubActionsClaims(run));
  offline(t, (await cosign2Sign(bed, registry, image.reference, { identityToken: token })).stderr);

  const tag = `${image.digest.replace(':', '-')}.sig`;
  const res = await pull(registry, 'legacy', `manifests/${tag}`);
  t.is(res.status, 200);
  const [layer] = Array.isArray(object(res.json, 'manifest').layers)
    ? (object(res.json, 'manifest').layers as unknown[])
    : [];
  const annotations = object(object(layer, 'layer').annotations, 'annotations');
  t.log(`legacy .sig annotations: ${Object.keys(annotations).join(', ')}`);
  t.regex(String(annotations['dev.sigstore.cosign/certificate']), /^-----BEGIN CERTIFICATE-----/);
  t.regex(String(annotations['dev.sigstore.cosign/chain']), /^-----BEGIN CERTIFICATE-----/);
  const timestamp = object(
    JSON.parse(String(annotations['dev.sigstore.cosign/rfc3161timestamp'])),
    'timestamp',
  );
  t.is(typeof timestamp.SignedRFC3161Timestamp, 'string');
  t.is(annotations['dev.sigstore.cosign/bundle'], undefined, 'no transparency log entry');

  // No log entry, so cosign 3 verifies it only with --insecure-ignore-tlog.
  const who = { identity: githubActionsIdentity(run), issuer: bed.oidc.url('github-actions') };
  await t.throwsAsync(cosignVerify(bed, registry, image.reference, who));
  const noTlog = { extraArgs: ['--insecure-ignore-tlog', '--use-signed-timestamps'] };
  offline(t, (await cosignVerify(bed, registry, image.reference, who, noTlog)).stderr);
  const stranger = { ...who, identity: githubActionsIdentity({ repository: 'acme/other' }) };
  await t.throwsAsync(cosignVerify(bed, registry, image.reference, stranger, noTlog));

  // A key signature of the same image joins the tag as a second layer, timestamped too.
  const keys = await generateKeyPair(await tempDir(t, 'imagegate-keys-'));
  offline(t, (await cosign2Sign(bed, registry, image.reference, { key: keys })).stderr);
  const layers = await pull(registry, 'legacy', `manifests/${tag}`);
  const both = object(layers.json, 'manifest').layers;
  const [, second] = Array.isArray(both) ? both : [];
  const secondAnnotations = object(object(second, 'layer').annotations, 'annotations');
  t.is(secondAnnotations['dev.sigstore.cosign/certificate'], undefined);
  t.is(typeof secondAnnotations['dev.sigstore.cosign/rfc3161timestamp'], 'string');
  const keyed = { key: keys.publicKey };
  offline(t, (await cosignVerify(bed, registry, image.reference, keyed, noTlog)).stderr);
});
