/**
 * Keyless signatures through the real kube-apiserver: a private Sigstore (Rekor v2, Fulcio,
 * the timestamp authority, an OIDC issuer minting GitHub Actions tokens;
 * test/helpers/sigstore.ts) and another one standing for another root, the distribution
 * registry, images signed by the real cosign 3 (and cosign 2 for a certificate without a
 * timestamp). Namespace e2e-keyless requires acme's release workflow; e2e-provenance also
 * its SLSA provenance. What kubectl shows and what the API server stores.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { getPointer, type JsonObject } from '../../src/shared/json.ts';
import { Teardowns } from '../helpers/gateway.ts';
import {
  type PushedImage,
  pushImage,
  startRegistry,
  type TestRegistry,
} from '../helpers/registry.ts';
import { startSigstoreBed } from '../helpers/sigstore.ts';
import { githubActionsClaims, githubActionsIdentity } from '../helpers/sigstore-fulcio-config.ts';
import { cosign2Sign, cosignAttest, cosignSign, slsaProvenance } from '../helpers/sigstore-sign.ts';
import { pod } from './helpers/kubectl.ts';
import {
  createdAndStored,
  inContainer,
  refusedOnCreate,
  useE2e,
  WEBHOOK_DENIED,
} from './helpers/scenario.ts';

const KEYLESS_NS = 'e2e-keyless';
const PROVENANCE_NS = 'e2e-provenance';
const RELEASE = { repository: 'acme/app', ref: 'refs/tags/v1.0.0' };
const registries = new Teardowns();
test.after.always(() => registries.run());

interface Images {
  registry: TestRegistry;
  signed: PushedImage;
  otherIdentity: PushedImage;
  otherRoot: PushedImage;
  noTimestamp: PushedImage;
  unsigned: PushedImage;
  attested: PushedImage;
}
let images: Images | undefined;
const the = (): Images => {
  if (images === undefined) throw new Error('the registry and Sigstore did not start');
  return images;
};

const e2e = useE2e(test, {
  imagePolicyWebhook: false,
  async before(work) {
    const registry = await startRegistry(registries, { auth: 'none' });
    const [bed, elsewhere] = await Promise.all([
      startSigstoreBed(registries, { fulcio: true }),
      startSigstoreBed(registries, { fulcio: true }),
    ]);
    if (bed.oidc === undefined || elsewhere.oidc === undefined) throw new Error('no OIDC issuer');
    const release = () => bed.oidc?.mint('github-actions', githubActionsClaims(RELEASE)) ?? '';
    const push = (repo: string) => pushImage(registry, repo, 'v1');

    const signed = await push('acme/signed');
    await cosignSign(bed, registry, signed.reference, { identityToken: await release() });
    const otherIdentity = await push('acme/other-identity');
    await cosignSign(bed, registry, otherIdentity.reference, {
      identityToken: await bed.oidc.mint(
        'github-actions',
        githubActionsClaims({ repository: 'mallory/app', ref: 'refs/tags/v1.0.0' }),
      ),
    });
    const otherRoot = await push('acme/other-root');
    await cosignSign(elsewhere, registry, otherRoot.reference, {
      identityToken: await elsewhere.oidc.mint('github-actions', githubActionsClaims(RELEASE)),
    });
    // cosign 2, keyless, with neither a log nor a timestamp: only the certificate's ten
    // minutes say when it signed, and nothing proves the signature was made within them.
    const noTimestamp = await push('acme/no-timestamp');
    const { tsa: _tsa, ...withoutTsa } = bed;
    await cosign2Sign(withoutTsa, registry, noTimestamp.reference, {
      identityToken: await release(),
    });
    const unsigned = await push('acme/unsigned');
    const attested = await push('acme/attested');
    await cosignSign(bed, registry, attested.reference, { identityToken: await release() });
    await cosignAttest(
      bed,
      registry,
      attested.reference,
      { identityToken: await release() },
      slsaProvenance({ builderId: githubActionsIdentity(RELEASE), repository: 'acme/app' }),
    );
    images = { registry, signed, otherIdentity, otherRoot, noTimestamp, unsigned, attested };

    const ca = join(work, 'registry-ca.crt');
    await writeFile(ca, registry.ca);
    const identity = `{issuer: "${bed.oidc.url('github-actions')}", subject: "${githubActionsIdentity(RELEASE)}"}`;
    return {
      topLevel: `trustRoots: {bed: ${bed.trustedRoot}, elsewhere: ${elsewhere.trustedRoot}}\n`,
      namespaces: [KEYLESS_NS, PROVENANCE_NS],
      args: [`--registry-ca=${ca}`],
      namespaceOverrides: [
        `  ${KEYLESS_NS}:`,
        `    trustedRegistries: ["${registry.host}"]`,
        '    pinDigests: pods',
        `    signatures: [{images: ["${registry.host}/acme"], trustRoot: bed, identities: [${identity}]}]`,
        `  ${PROVENANCE_NS}:`,
        `    trustedRegistries: ["${registry.host}"]`,
        '    pinDigests: pods',
        `    signatures: [{images: ["${registry.host}/acme"], trustRoot: bed, identities: [${identity}], attestations: [slsaprovenance1]}]`,
        '',
      ].join('\n'),
    };
  },
});

const tagged = (image: PushedImage) => `${image.repository}:v1`;
const pinned = (image: PushedImage) => `${tagged(image)}@${image.digest}`;
const podOf = (namespace: string, name: string, image: string): JsonObject =>
  pod(namespace, name, { containers: [{ name: 'app', image }] });

test.serial('a pod signed by the release workflow is admitted, pinned', async (t) => {
  const { signed } = the();
  const { stored } = await createdAndStored(t, e2e(), podOf(KEYLESS_NS, 'signed', tagged(signed)));
  t.is(getPointer(stored, '/spec/containers/0/image'), pinned(signed));
  const annotations = await e2e().auditAnnotations(KEYLESS_NS, 'signed');
  t.regex(
    Object.values(annotations).join('\n'),
    /by https:\/\/github\.com\/acme\/app\/\.github\/workflows\/release\.yml@refs\/tags\/v1\.0\.0 \(http/,
  );
});

test.serial(
  'another identity, another root, a certificate without a timestamp, and no signature are refused',
  async (t) => {
    const { registry, otherIdentity, otherRoot, noTimestamp, unsigned } = the();
    const scope = `${registry.host}/acme`;
    for (const [name, image, why] of [
      ['other-identity', otherIdentity, 'signed by another identity'],
      ['other-root', otherRoot, 'certificate not issued by the trust root'],
      ['no-timestamp', noTimestamp, 'no verified signing time'],
      ['unsigned', unsigned, 'no signature'],
    ] as const) {
      await refusedOnCreate(
        t,
        e2e(),
        podOf(KEYLESS_NS, name, tagged(image)),
        WEBHOOK_DENIED +
          inContainer(
            'app',
            'containers[0]',
            pinned(image),
            `signature required (${scope}): ${why}`,
          ),
      );
    }
  },
);

test.serial('where provenance is required, a signed image without it is refused', async (t) => {
  const { registry, attested, signed } = the();
  const { stored } = await createdAndStored(
    t,
    e2e(),
    podOf(PROVENANCE_NS, 'attested', tagged(attested)),
  );
  t.is(getPointer(stored, '/spec/containers/0/image'), pinned(attested));
  await refusedOnCreate(
    t,
    e2e(),
    podOf(PROVENANCE_NS, 'signed-only', tagged(signed)),
    WEBHOOK_DENIED +
      inContainer(
        'app',
        'containers[0]',
        pinned(signed),
        `attestation required (${registry.host}/acme): https://slsa.dev/provenance/v1: no attestation`,
      ),
  );
});
