/**
 * The Sigstore bed itself (test/helpers/sigstore.ts), against the real servers and the real
 * cosign 3: images pushed by crane, signed with cosign's defaults against the bed's Rekor v2,
 * TSA and Fulcio, accepted by `cosign verify` and by @sigstore/verify given only the bed's
 * trusted_root.json, and refused for another key, identity, issuer or root.
 * Needs `make registry-tools sigstore-tools`; without them every test is skipped and says so.
 */
import { createHash, createPublicKey } from 'node:crypto';
import { PolicyError, VerificationError } from '@sigstore/verify';
import { tempDir } from '../helpers/gateway.ts';
import { generateKeyPair, pushImage, startRegistry } from '../helpers/registry.ts';
import { startSigstoreBed } from '../helpers/sigstore.ts';
import { object, offline, oneBundle } from '../helpers/sigstore-assert.ts';
import { rfc3161Timestamps } from '../helpers/sigstore-bundles.ts';
import {
  emailClaims,
  githubActionsClaims,
  githubActionsIdentity,
} from '../helpers/sigstore-fulcio-config.ts';
import { cosignSign, cosignVerify } from '../helpers/sigstore-sign.ts';
import { sigstoreTest } from '../helpers/sigstore-test.ts';
import { loadTrustedRoot, verifyBundle } from '../helpers/sigstore-verify.ts';

const test = await sigstoreTest('test/registry/sigstore-bed');

/** @sigstore/verify's error code: what a verifier would turn into its own reason. */
const code = (error: unknown) =>
  error instanceof VerificationError || error instanceof PolicyError ? error.code : String(error);

for (const rekorKey of ['ecdsa-p256', 'ed25519'] as const) {
  test(`key + Rekor v2 (${rekorKey} log key): cosign 3 sign --key, then cosign verify and @sigstore/verify`, async (t) => {
    const bed = await startSigstoreBed(t, { rekorKey });
    t.is(bed.fulcio, undefined, 'a key and a log need no Fulcio');
    t.is(bed.tsa, undefined);
    const registry = await startRegistry(t, { auth: 'none' });
    const image = await pushImage(registry, 'signed', 'v1');
    const keys = await generateKeyPair(await tempDir(t, 'imagegate-keys-'));
    offline(t, (await cosignSign(bed, registry, image.reference, { key: keys })).stderr);
    const { bundle } = await oneBundle(t, registry, 'signed', image.digest, bed);
    t.log(`bundle:\n${JSON.stringify(bundle, null, 2)}`);
    // The key is named by a hint, base64 SHA-256 of its DER (SPKI): a verifier configured
    // with keys may use it to pick one, never to trust one.
    const der = createPublicKey(keys.publicPem).export({ type: 'spki', format: 'der' });
    t.deepEqual(object(bundle.verificationMaterial, 'verificationMaterial').publicKey, {
      hint: createHash('sha256').update(der).digest('base64'),
    });
    t.deepEqual(rfc3161Timestamps(bundle), []);

    offline(
      t,
      (await cosignVerify(bed, registry, image.reference, { key: keys.publicKey })).stderr,
    );
    const other = await generateKeyPair(await tempDir(t, 'imagegate-keys-'));
    await t.throwsAsync(cosignVerify(bed, registry, image.reference, { key: other.publicKey }));

    const root = await loadTrustedRoot(bed.trustedRoot);
    t.notThrows(() => verifyBundle(root, bundle, { key: keys.publicPem }));
    const wrongKey = t.throws(() => verifyBundle(root, bundle, { key: other.publicPem }));
    t.is(code(wrongKey), 'SIGNATURE_ERROR');
    // A Rekor v2 entry has no integrated time: without a TSA there is no timestamp at all.
    const needsTime = t.throws(() =>
      verifyBundle(root, bundle, { key: keys.publicPem, options: { timestampThreshold: 1 } }),
    );
    t.is(code(needsTime), 'TIMESTAMP_ERROR');
    // A keyed verifier with no log authority (tlogs: [], tlogThreshold: 0) still checks every
    // entry the bundle carries, and fails it — issue 22's "real cosign 3 signatures are
    // refused": the log's key must come from a trusted root, or the entry be skipped.
    const noLog = t.throws(() =>
      verifyBundle({ ...root, tlogs: [] }, bundle, {
        key: keys.publicPem,
        options: { tlogThreshold: 0 },
      }),
    );
    t.is(code(noLog), 'TLOG_INCLUSION_PROOF_ERROR');
    // Another bed's root: same kind of log, another key.
    const elsewhere = await startSigstoreBed(t, { rekorKey });
    const foreign = await loadTrustedRoot(elsewhere.trustedRoot);
    t.is(
      code(t.throws(() => verifyBundle(foreign, bundle, { key: keys.publicPem }))),
      'TLOG_INCLUSION_PROOF_ERROR',
    );
    await t.throwsAsync(
      cosignVerify(elsewhere, registry, image.reference, { key: keys.publicKey }),
    );
  });
}

test('keyless: a GitHub Actions identity through Fulcio, Rekor v2 and the TSA, on a registry with the referrers API', async (t) => {
  const bed = await startSigstoreBed(t, { fulcio: true });
  const { oidc } = bed;
  if (oidc === undefined || bed.tsa === undefined)
    return t.fail('keyless needs the OIDC issuer and a TSA');
  const registry = await startRegistry(t, { auth: 'none', referrers: true });
  const image = await pushImage(registry, 'acme/app', 'v1');
  const run = { repository: 'acme/app', ref: 'refs/tags/v1.0.0' };
  const token = await oidc.mint('github-actions', githubActionsClaims(run));
  offline(t, (await cosignSign(bed, registry, image.reference, { identityToken: token })).stderr);
  const { bundle } = await oneBundle(t, registry, 'acme/app', image.digest, bed);
  const material = object(bundle.verificationMaterial, 'verificationMaterial');
  t.truthy(
    object(material.certificate, 'certificate').rawBytes,
    'the leaf alone, as bundle v0.3 says',
  );
  t.is(rfc3161Timestamps(bundle).length, 1);

  const identity = githubActionsIdentity(run);
  t.is(identity, 'https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0');
  const issuer = oidc.url('github-actions');
  offline(t, (await cosignVerify(bed, registry, image.reference, { identity, issuer })).stderr);
  const main = githubActionsIdentity({ repository: 'acme/app' });
  await t.throwsAsync(cosignVerify(bed, registry, image.reference, { identity: main, issuer }));
  const email = oidc.url('email');
  await t.throwsAsync(cosignVerify(bed, registry, image.reference, { identity, issuer: email }));

  const root = await loadTrustedRoot(bed.trustedRoot);
  const options = { timestampThreshold: 1 };
  const signer = verifyBundle(root, bundle, {
    identity: { subjectAlternativeName: identity, issuer },
    options,
  });
  t.is(signer.identity?.extensions?.issuer, issuer);
  // Fulcio's GitHub extensions: 1.3.6.1.4.1.57264.1.12 source repository URI, .14 its ref.
  const extension = (last: number) =>
    signer.identity?.oids?.find((o) => o.oid?.id.join('.') === `1.3.6.1.4.1.57264.1.${last}`)
      ?.value;
  t.is(extension(12)?.subarray(2).toString(), 'https://github.com/acme/app');
  t.is(extension(14)?.subarray(2).toString(), 'refs/tags/v1.0.0');
  const other = { subjectAlternativeName: main, issuer };
  t.is(
    code(t.throws(() => verifyBundle(root, bundle, { identity: other, options }))),
    'UNTRUSTED_SIGNER_ERROR',
  );
  // One timestamp, the TSA's (the Rekor v2 entry gives none): the only time at which the
  // certificate's ten-minute validity can be checked.
  const twoTimes = {
    identity: { subjectAlternativeName: identity, issuer },
    options: { timestampThreshold: 2 },
  };
  t.is(code(t.throws(() => verifyBundle(root, bundle, twoTimes))), 'TIMESTAMP_ERROR');
});

test('keyless with an email identity; cosign 3 refuses keyless against Rekor v2 without a TSA', async (t) => {
  const bed = await startSigstoreBed(t, { fulcio: true });
  const noTsa = await startSigstoreBed(t, { fulcio: true, tsa: false });
  if (bed.oidc === undefined || noTsa.oidc === undefined) return t.fail();
  const registry = await startRegistry(t, { auth: 'htpasswd' });
  const image = await pushImage(registry, 'signed', 'v1');
  // Through the issuer's token endpoint this time, as a tool outside the test would.
  const answer = await fetch(`${bed.oidc.url('email')}/token`, {
    method: 'POST',
    body: JSON.stringify(emailClaims('release@acme.example')),
  });
  const token = String(object(await answer.json(), 'token answer').id_token);
  await cosignSign(bed, registry, image.reference, { identityToken: token });
  const who = { identity: 'release@acme.example', issuer: bed.oidc.url('email') };
  offline(t, (await cosignVerify(bed, registry, image.reference, who)).stderr);
  await t.throwsAsync(
    cosignVerify(noTsa, registry, image.reference, who),
    undefined,
    'another root',
  );

  const refused = await t.throwsAsync(
    cosignSign(noTsa, registry, image.reference, {
      identityToken: await noTsa.oidc.mint('email', emailClaims('release@acme.example')),
    }),
  );
  t.regex(
    refused?.message ?? '',
    /a timestamp authority must be provided to request a short-lived certificate that will be logged to Rekor/,
  );
});
