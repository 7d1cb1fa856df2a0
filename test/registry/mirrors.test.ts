/**
 * Signatures where images are pulled, with two real registries: a source, and a mirror
 * the configuration rewrites it to. Images pushed to the source by crane, signed there by
 * cosign 3, and copied to the mirror as a mirror gets them — the image and, for the signed
 * one, its signature (`crane copy` of cosign 3's `sha256-<hex>` tag; `oras copy -r` or a
 * registry's replication do the same). A `signatures` entry on the source holds on the
 * mirror, whether the mutating webhook rewrote the image or the pod spec wrote the
 * mirror's path; it is verified at the mirror. And the digest pinned is the digest
 * verified, even when the tag moves between the two webhooks.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import jsonpatch from 'fast-json-patch';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import { podWithImages } from '../helpers/fixtures.ts';
import {
  admissionAnswer,
  type HttpResult,
  record,
  startTestGateway,
  stringMap,
  tempDir,
  writeConfig,
} from '../helpers/gateway.ts';
import {
  generateKeyPair,
  pushImage,
  signImage,
  startRegistry,
  type TestRegistry,
} from '../helpers/registry.ts';
import { registryTest } from '../helpers/registry-test.ts';
import { runTool } from '../helpers/registry-tools.ts';

const test = await registryTest('test/registry/mirrors');

/** The review with the mutating webhook's patch applied to its object: what validate sees. */
function mutated(review: JsonObject, answer: HttpResult): JsonObject {
  const { response } = admissionAnswer(answer);
  const next = structuredClone(review);
  const request = record(next.request, 'request');
  if (typeof response.patch === 'string') {
    const ops = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8'));
    request.object = jsonpatch.applyPatch(request.object, ops, false, false).newDocument;
  }
  return next;
}

function imagesOf(review: JsonObject): string[] {
  const object = record(record(review.request, 'request').object, 'object');
  const containers = record(object.spec, 'spec').containers as JsonObject[];
  return containers.map((c) => String(c.image));
}

function verdict(result: HttpResult) {
  const { response } = admissionAnswer(result);
  const status = isRecord(response.status) ? response.status : {};
  return {
    allowed: response.allowed === true,
    message: String(status.message ?? ''),
    audit: stringMap(response.auditAnnotations, 'auditAnnotations'),
  };
}

async function caFiles(t: ExecutionContext, ...registries: TestRegistry[]): Promise<string[]> {
  const dir = await tempDir(t, 'imagegate-mirror-ca-');
  return Promise.all(
    registries.map(async (registry, i) => {
      const file = join(dir, `ca-${i}.crt`);
      await writeFile(file, registry.ca);
      return file;
    }),
  );
}

test('a signature required of the source is verified on its mirror, however the image is written', async (t) => {
  const [source, mirror] = await Promise.all([
    startRegistry(t, { auth: 'none' }),
    startRegistry(t, { auth: 'none' }),
  ]);
  // The mirror's sandbox must trust the source too: crane copies from one to the other.
  const bundle = await tempDir(t, 'imagegate-both-cas-');
  await writeFile(join(bundle, 'cas.crt'), `${source.ca}\n${mirror.ca}`);
  const env = { ...mirror.env, SSL_CERT_FILE: join(bundle, 'cas.crt') };
  const copy = (from: string, to: string) => runTool(mirror.tools.crane, ['copy', from, to], env);

  const key = await generateKeyPair(await tempDir(t, 'imagegate-mirror-keys-'));
  const signed = await pushImage(source, 'acme/app', '1.0');
  await signImage(source, signed.reference, key, { cosign: 'v3' });
  const unsigned = await pushImage(source, 'acme/unsigned', '1.0');
  // What a mirror holds: both images, and the signature of the signed one.
  await copy(`${source.host}/acme/app:1.0`, `${mirror.host}/hub/acme/app:1.0`);
  const signatureTag = signed.digest.replace(':', '-');
  await copy(
    `${source.host}/acme/app:${signatureTag}`,
    `${mirror.host}/hub/acme/app:${signatureTag}`,
  );
  await copy(`${source.host}/acme/unsigned:1.0`, `${mirror.host}/hub/acme/unsigned:1.0`);

  const sourceRequests = () =>
    source
      .logs()
      .split('\n')
      .filter((line) => line.includes('/v2/acme/')).length;
  const copied = sourceRequests();
  t.true(copied > 0, 'the access log shows the copies');
  const config = await writeConfig(
    t,
    [
      `trustedRegistries: ["${mirror.host}"]`,
      `mirrors: {"${source.host}": "${mirror.host}/hub"}`,
      'pinDigests: pods',
      'signatures:',
      `  - images: ["${source.host}/acme"]`,
      `    keys: [${key.publicKey}]`,
    ].join('\n'),
  );
  const gateway = await startTestGateway(t, {
    config,
    registry: { ca: await caFiles(t, source, mirror) },
  });
  const scope = `${source.host}/acme`;

  // Written at the source: rewritten to the mirror and pinned there, then verified there.
  const written = podWithImages([
    `${source.host}/acme/app:1.0`,
    `${source.host}/acme/unsigned:1.0`,
  ]);
  const admitted = mutated(written, await gateway.post('/v1/mutate', written));
  t.deepEqual(imagesOf(admitted), [
    `${mirror.host}/hub/acme/app:1.0@${signed.digest}`,
    `${mirror.host}/hub/acme/unsigned:1.0@${unsigned.digest}`,
  ]);
  const judged = verdict(await gateway.post('/v1/validate', admitted));
  t.false(judged.allowed);
  t.is(
    judged.message,
    `container "c1" (containers[1]) image "${mirror.host}/hub/acme/unsigned:1.0@${unsigned.digest}": signature required (${scope}): no signature`,
  );
  t.is(
    judged.audit['verified-signatures'],
    `${mirror.host}/hub/acme/app:1.0@${signed.digest} by cosign.pub`,
  );

  // Written at the mirror directly: the same requirement, the same answers.
  for (const [image, allowed] of [
    [`${mirror.host}/hub/acme/app:1.0@${signed.digest}`, true],
    [`${mirror.host}/hub/acme/unsigned:1.0@${unsigned.digest}`, false],
  ] as const) {
    const direct = verdict(await gateway.post('/v1/validate', podWithImages([image])));
    t.is(direct.allowed, allowed, `${image}: ${direct.message}`);
    if (!allowed)
      t.regex(
        direct.message,
        new RegExp(`signature required \\(${scope.replaceAll('.', '\\.')}\\): no signature$`),
      );
  }
  // Verified at the mirror: the gateway never asked the source.
  t.is(sourceRequests(), copied);
});

test('the digest pinned is the digest verified, when the tag moves between the webhooks', async (t) => {
  const registry = await startRegistry(t, { auth: 'none' });
  const key = await generateKeyPair(await tempDir(t, 'imagegate-moving-keys-'));
  const first = await pushImage(registry, 'prod/app', 'v1');
  await signImage(registry, first.reference, key, { cosign: 'v3' });
  const config = await writeConfig(
    t,
    [
      `trustedRegistries: ["${registry.host}"]`,
      'pinDigests: pods',
      'signatures:',
      `  - images: ["${registry.host}/prod"]`,
      `    keys: [${key.publicKey}]`,
    ].join('\n'),
  );
  const gateway = await startTestGateway(t, {
    config,
    registry: { ca: await caFiles(t, registry) },
  });
  const review = podWithImages([`${registry.host}/prod/app:v1`]);
  const pinned = mutated(review, await gateway.post('/v1/mutate', review));
  t.deepEqual(imagesOf(pinned), [`${registry.host}/prod/app:v1@${first.digest}`]);

  // The tag moves to an unsigned image before the validating webhook is called.
  const second = await pushImage(registry, 'prod/app', 'v1');
  t.not(second.digest, first.digest);
  const judged = verdict(await gateway.post('/v1/validate', pinned));
  t.true(judged.allowed, judged.message);
  t.is(
    judged.audit['verified-signatures'],
    `${registry.host}/prod/app:v1@${first.digest} by cosign.pub`,
  );
  // The moved tag's digest is judged on its own: the signature of the first is not reused.
  const moved = verdict(
    await gateway.post(
      '/v1/validate',
      podWithImages([`${registry.host}/prod/app:v1@${second.digest}`]),
    ),
  );
  t.false(moved.allowed);
  t.regex(moved.message, /signature required .*: no signature$/);
  // The decision log names the digest each fact was of.
  const facts = gateway.logs
    .messages('decision')
    .flatMap((line) => (Array.isArray(line.facts) ? (line.facts as JsonObject[]) : []))
    .map((fact) => [fact.image, fact.digest]);
  t.deepEqual(facts.at(-2), [`${registry.host}/prod/app:v1@${first.digest}`, first.digest]);
  t.deepEqual(facts.at(-1), [`${registry.host}/prod/app:v1@${second.digest}`, second.digest]);
});
