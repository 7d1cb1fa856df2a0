/**
 * cosign 3 as people use it: `cosign sign --key` with its defaults uploads to a
 * transparency log, so the bundle carries a Rekor v2 entry. The gateway verifies the key's
 * signature and, where the `signatures` entry names a trust root (trustRoots) with that
 * log, the entry too; with no log configured the entry is set aside and the facts say so —
 * never "signed by another key" (what main 4cf58ec answered for every such bundle). Each
 * failure has its own reason. Real cosign 3, real Rekor v2 (test/helpers/sigstore.ts), the
 * real distribution registry, the real gateway.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import { podWithImages } from '../helpers/fixtures.ts';
import { admissionAnswer, startTestGateway, tempDir, writeConfig } from '../helpers/gateway.ts';
import { generateKeyPair, pushImage, signImage, startRegistry } from '../helpers/registry.ts';
import { startSigstoreBed } from '../helpers/sigstore.ts';
import { cosignSign } from '../helpers/sigstore-sign.ts';
import { sigstoreTest } from '../helpers/sigstore-test.ts';

const test = await sigstoreTest('test/registry/transparency');

async function bed(t: ExecutionContext) {
  const sigstore = await startSigstoreBed(t);
  const elsewhere = await startSigstoreBed(t);
  const registry = await startRegistry(t, { auth: 'none' });
  const dir = await tempDir(t, 'imagegate-transparency-');
  const key = await generateKeyPair(dir);
  const logged = await pushImage(registry, 'prod/logged', 'v1');
  await cosignSign(sigstore, registry, logged.reference, { key });
  const offlineSigned = await pushImage(registry, 'prod/offline', 'v1');
  await signImage(registry, offlineSigned.reference, key, { cosign: 'v3' });
  const other = await generateKeyPair(await tempDir(t, 'imagegate-other-key-'));
  const stranger = await pushImage(registry, 'prod/stranger', 'v1');
  await cosignSign(sigstore, registry, stranger.reference, { key: other });
  await writeFile(join(dir, 'registry-ca.crt'), registry.ca);
  const gateway = async (entry: string) =>
    startTestGateway(t, {
      config: await writeConfig(
        t,
        [
          `trustedRegistries: ["${registry.host}"]`,
          'trustRoots:',
          `  bed: ${sigstore.trustedRoot}`,
          `  elsewhere: ${elsewhere.trustedRoot}`,
          'signatures:',
          `  - {images: ["${registry.host}/prod"], keys: [${key.publicKey}]${entry}}`,
        ].join('\n'),
      ),
      registry: { ca: [join(dir, 'registry-ca.crt')] },
    });
  const judge = async (gw: Awaited<ReturnType<typeof gateway>>, image: { reference: string }) => {
    const result = await gw.post(
      '/v1/validate',
      podWithImages([image.reference], { names: ['app'] }),
    );
    const { response } = admissionAnswer(result);
    const status = isRecord(response.status) ? response.status : {};
    const decision = gw.logs.messages('decision').at(-1);
    const facts = Array.isArray(decision?.facts) ? (decision.facts as JsonObject[]) : [];
    return {
      allowed: response.allowed === true,
      message: String(status.message ?? ''),
      signature: facts[0]?.signature,
    };
  };
  return { registry, gateway, judge, logged, offlineSigned, stranger };
}

test('a key-signed bundle with a Rekor v2 entry verifies, the entry checked against the root', async (t) => {
  const { gateway, judge, logged, offlineSigned, stranger } = await bed(t);
  const rooted = await gateway(', trustRoot: bed');
  const verified = await judge(rooted, logged);
  t.true(verified.allowed, verified.message);
  t.deepEqual(verified.signature, {
    verified: true,
    key: 'cosign.pub',
    format: 'bundle',
    transparencyLog: 'verified by bed',
  });
  // A bundle signed without a log has no entry to check: the key's signature is enough.
  const unlogged = await judge(rooted, offlineSigned);
  t.true(unlogged.allowed, unlogged.message);
  t.deepEqual(unlogged.signature, { verified: true, key: 'cosign.pub', format: 'bundle' });
  // Signed by another key, logged in the same log: another key, not a log problem.
  const other = await judge(rooted, stranger);
  t.false(other.allowed);
  t.regex(other.message, /: signed by another key$/);
});

test('with no transparency log configured the entry is set aside, and the facts say so', async (t) => {
  const { gateway, judge, logged } = await bed(t);
  const keyOnly = await gateway('');
  const verified = await judge(keyOnly, logged);
  t.true(verified.allowed, verified.message);
  t.deepEqual(verified.signature, {
    verified: true,
    key: 'cosign.pub',
    format: 'bundle',
    transparencyLog: 'not checked: no transparency log is configured for this entry',
  });
});

test("an entry from a log the root does not trust is its own reason, not 'another key'", async (t) => {
  const { gateway, judge, logged } = await bed(t);
  const wrongRoot = await gateway(', trustRoot: elsewhere');
  const refused = await judge(wrongRoot, logged);
  t.false(refused.allowed);
  t.regex(refused.message, /: transparency-log entry invalid$/);
  t.like(refused.signature, { verified: false, reason: 'transparency-log entry invalid' });
  t.regex(
    String(isRecord(refused.signature) ? refused.signature.detail : ''),
    /^elsewhere: TLOG_INCLUSION_PROOF_ERROR/,
  );
});
