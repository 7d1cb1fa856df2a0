/**
 * pinDigests and signatures through the real kube-apiserver, against real registries
 * (the CNCF distribution registry; one more behind the token server), images pushed by
 * crane and signed by cosign 3 and cosign 2: what kubectl shows and what the API server
 * stores. Namespace e2e-signed pins Pods and requires a signature for <registry>/prod;
 * e2e-token pins through the token-auth registry with --registry-credentials.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { getPointer, type JsonObject } from '../../src/shared/json.ts';
import { Teardowns } from '../helpers/gateway.ts';
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
import { runTool } from '../helpers/registry-tools.ts';
import { startSigstoreBed } from '../helpers/sigstore.ts';
import { cosignSign } from '../helpers/sigstore-sign.ts';
import { pod } from './helpers/kubectl.ts';
import { eventually } from './helpers/poll.ts';
import {
  admits,
  createdAndStored,
  inContainer,
  refusedOnCreate,
  useE2e,
  WEBHOOK_DENIED,
} from './helpers/scenario.ts';

const SIGNED_NS = 'e2e-signed';
const TOKEN_NS = 'e2e-token';
/** Signatures made by cosign 3 with its defaults: a Rekor v2 entry, checked against the root. */
const LOGGED_NS = 'e2e-logged';
const registries = new Teardowns();
test.after.always(() => registries.run());

interface Images {
  registry: TestRegistry;
  token: TestRegistry;
  signed: PushedImage;
  legacy: PushedImage;
  unsigned: PushedImage;
  stranger: PushedImage;
  copied: PushedImage;
  private: PushedImage;
  logged: PushedImage;
  loggedStranger: PushedImage;
}
let images: Images | undefined;
const the = (): Images => {
  if (images === undefined) throw new Error('the registries did not start');
  return images;
};

const e2e = useE2e(test, {
  imagePolicyWebhook: false,
  async before(work) {
    const registry = await startRegistry(registries, { auth: 'none' });
    const token = await startRegistry(registries, { auth: 'token' });
    const keys = join(work, 'keys');
    await mkdir(join(keys, 'stranger'), { recursive: true });
    const release = await generateKeyPair(keys);
    const strangerKey = await generateKeyPair(join(keys, 'stranger'));
    const push = (repo: string) => pushImage(registry, repo, 'v1');
    const signed = await push('prod/signed');
    await signImage(registry, signed.reference, release, { cosign: 'v3' });
    const legacy = await push('prod/legacy');
    await signImage(registry, legacy.reference, release, { cosign: 'v2' });
    const unsigned = await push('prod/unsigned');
    const stranger = await push('prod/stranger');
    await signImage(registry, stranger.reference, strangerKey, { cosign: 'v3' });
    const copied = await push('prod/copied');
    // signed's signature, put where copied's would be: valid, but for another digest.
    const sigTag = (image: PushedImage) =>
      `${image.repository}:${image.digest.replace(':', '-')}.sig`;
    await signImage(registry, signed.reference, release, { cosign: 'v2' });
    await runTool(registry.tools.crane, ['copy', sigTag(signed), sigTag(copied)], registry.env);
    // cosign 3 as people use it: `sign --key` with a signing config, uploading to Rekor v2.
    const sigstore = await startSigstoreBed(registries);
    const logged = await push('logged/app');
    await cosignSign(sigstore, registry, logged.reference, { key: release });
    const loggedStranger = await push('logged/stranger');
    await cosignSign(sigstore, registry, loggedStranger.reference, { key: strangerKey });
    images = {
      registry,
      token,
      signed,
      legacy,
      unsigned,
      stranger,
      copied,
      private: await pushImage(token, 'team/app', 'v1'),
      logged,
      loggedStranger,
    };
    const ca = join(work, 'registry-ca.crt');
    await writeFile(ca, registry.ca);
    const tokenCa = join(work, 'token-registry-ca.crt');
    await writeFile(tokenCa, token.ca);
    const credentials = await writeDockerConfigJson(registries, token);
    return {
      topLevel: `trustRoots: {bed: ${sigstore.trustedRoot}}\n${authHostsYaml([token])}`,
      namespaces: [SIGNED_NS, TOKEN_NS, LOGGED_NS],
      args: [
        `--registry-ca=${ca}`,
        `--registry-ca=${tokenCa}`,
        `--registry-credentials=${credentials}`,
      ],
      namespaceOverrides: [
        `  ${SIGNED_NS}:`,
        `    trustedRegistries: ["${registry.host}"]`,
        '    pinDigests: pods',
        '    signatures:',
        `      - images: ["${registry.host}/prod"]`,
        `        keys: [${release.publicKey}]`,
        `  ${TOKEN_NS}:`,
        `    trustedRegistries: ["${token.host}"]`,
        '    pinDigests: pods',
        `  ${LOGGED_NS}:`,
        `    trustedRegistries: ["${registry.host}"]`,
        '    pinDigests: pods',
        '    signatures:',
        `      - {images: ["${registry.host}/logged"], keys: [${release.publicKey}], trustRoot: bed}`,
        '',
      ].join('\n'),
    };
  },
});

const tagged = (image: PushedImage) => `${image.repository}:v1`;
const pinned = (image: PushedImage) => `${tagged(image)}@${image.digest}`;
const podOf = (namespace: string, name: string, image: string): JsonObject =>
  pod(namespace, name, { containers: [{ name: 'app', image }] });

test.serial('a tag-only pod is stored pinned to the digest its tag names', async (t) => {
  for (const [name, image] of [
    ['signed', the().signed],
    ['legacy', the().legacy],
  ] as const) {
    const { stored } = await createdAndStored(t, e2e(), podOf(SIGNED_NS, name, tagged(image)));
    t.is(getPointer(stored, '/spec/containers/0/image'), pinned(image));
  }
});

test.serial(
  'unsigned, wrongly signed and copied signatures are refused with the reason',
  async (t) => {
    const scope = `${the().registry.host}/prod`;
    for (const [name, image, why] of [
      ['unsigned', the().unsigned, 'no signature'],
      ['stranger', the().stranger, 'signed by another key'],
      ['copied', the().copied, 'signature for another digest'],
    ] as const) {
      await refusedOnCreate(
        t,
        e2e(),
        podOf(SIGNED_NS, name, tagged(image)),
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

test.serial(
  'with the registry stopped pods are refused, and allowed again once it is back',
  async (t) => {
    const { registry, signed } = the();
    // A tag nothing has resolved yet (the cache holds tags 30 s).
    const fresh = await pushImage(registry, 'prod/signed', 'v2');
    await signImage(
      registry,
      fresh.reference,
      { privateKey: join(e2e().work, 'keys', 'cosign.key') },
      { cosign: 'v3' },
    );
    await registry.stop();
    const probe = podOf(SIGNED_NS, 'outage', `${signed.repository}:v2`);
    const refused = await e2e().kubectl.create(probe, '--dry-run=server');
    t.is(refused.code, 1);
    t.regex(
      refused.stderr,
      new RegExp(
        `not pinned to a digest \\(pinDigests\\); pinning failed: registry ${registry.host.replace('.', '\\.')} unreachable: .*ECONNREFUSED`,
      ),
    );
    await registry.start();
    // Failures are cached for seconds; the same gateway process admits it once they pass.
    await eventually('the pod to be admitted again', () => admits(e2e(), probe, 'registry'));
    const { stored } = await createdAndStored(t, e2e(), probe);
    t.is(getPointer(stored, '/spec/containers/0/image'), `${signed.repository}:v2@${fresh.digest}`);
    t.is(e2e().gateway.running(), true);
  },
);

test.serial(
  'cosign 3 with its defaults: a Rekor v2 entry verified against the trust root',
  async (t) => {
    const { logged, loggedStranger, registry } = the();
    const { stored } = await createdAndStored(t, e2e(), podOf(LOGGED_NS, 'logged', tagged(logged)));
    t.is(getPointer(stored, '/spec/containers/0/image'), pinned(logged));
    await refusedOnCreate(
      t,
      e2e(),
      podOf(LOGGED_NS, 'logged-stranger', tagged(loggedStranger)),
      WEBHOOK_DENIED +
        inContainer(
          'app',
          'containers[0]',
          pinned(loggedStranger),
          `signature required (${registry.host}/logged): signed by another key`,
        ),
    );
  },
);

test.serial('the token-auth registry works with the credentials file', async (t) => {
  const image = the().private;
  const { stored } = await createdAndStored(t, e2e(), podOf(TOKEN_NS, 'private', tagged(image)));
  t.is(getPointer(stored, '/spec/containers/0/image'), pinned(image));
});

test.serial(
  'an ephemeral container and an image volume are verified like containers',
  async (t) => {
    const { signed, unsigned, registry } = the();
    const scope = `${registry.host}/prod`;
    await createdAndStored(t, e2e(), podOf(SIGNED_NS, 'target', tagged(signed)));
    const debug = (container: string, image: string) =>
      e2e().kubectl.run([
        'debug',
        'target',
        `-n=${SIGNED_NS}`,
        '--profile=general',
        `--container=${container}`,
        `--image=${image}`,
      ]);
    const refused = await debug('probe', tagged(unsigned));
    t.is(refused.code, 1);
    t.is(
      refused.stderr.trim(),
      `Error from server (Forbidden): ${WEBHOOK_DENIED}${inContainer('probe', 'ephemeralContainers[0]', pinned(unsigned), `signature required (${scope}): no signature`)}`,
    );
    const allowed = await debug('shell', tagged(signed));
    t.is(allowed.code, 0, allowed.stderr);
    const after = await e2e().kubectl.get('pod', SIGNED_NS, 'target');
    t.is(getPointer(after, '/spec/ephemeralContainers/0/image'), pinned(signed));

    const volume = (name: string, image: string): JsonObject => ({
      ...podOf(SIGNED_NS, name, tagged(signed)),
      spec: {
        containers: [
          {
            name: 'app',
            image: tagged(signed),
            volumeMounts: [{ name: 'data', mountPath: '/data' }],
          },
        ],
        volumes: [{ name: 'data', image: { reference: image } }],
      },
    });
    await refusedOnCreate(
      t,
      e2e(),
      volume('volume-unsigned', tagged(unsigned)),
      `${WEBHOOK_DENIED}volume "data" (volumes[0]) image "${pinned(unsigned)}": signature required (${scope}): no signature`,
    );
    const { stored } = await createdAndStored(t, e2e(), volume('volume-signed', tagged(signed)));
    t.is(getPointer(stored, '/spec/volumes/0/image/reference'), pinned(signed));
  },
);
