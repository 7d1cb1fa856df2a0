/**
 * `--bundle oci://…` against the real CNCF distribution registry (htpasswd auth, its own
 * CA), with bundles pushed by the real oras in OPA's OCI layout: the gateway serves the
 * artifact, polls with one HEAD per interval and downloads only a new manifest digest,
 * keeps serving through an outage, picks up a revision published during it, serves its last
 * good bundle from disk after a restart while the registry is down, fails closed when it
 * never had one, and requires a cosign signature on the artifact when told to.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RemoteSourceOptions } from '../../src/server/bundle-source.ts';
import { startFaultProxy } from '../helpers/fault-proxy.ts';
import { orasPushBundle, podReview, variantBundle } from '../helpers/fleet.ts';
import {
  admissionAnswer,
  poll,
  record,
  startTestGateway,
  type Teardown,
  type TestGateway,
  tempDir,
} from '../helpers/gateway.ts';
import {
  generateKeyPair,
  signImage,
  startRegistry,
  type TestRegistry,
  writeDockerConfigJson,
} from '../helpers/registry.ts';
import { registryTest } from '../helpers/registry-test.ts';

const test = await registryTest('oci bundle source');

const REPO = 'policy/imagegate';

function remoteOptions(persistDir?: string, extra: Partial<RemoteSourceOptions> = {}) {
  return {
    timing: { intervalMs: 150, maxBackoffMs: 400 },
    persistDir,
    service: { timeoutMs: 2_000, longPollSeconds: 0, caFiles: [] },
    artifactKeys: [],
    ...extra,
  } satisfies RemoteSourceOptions;
}

async function allowed(gateway: TestGateway, image: string): Promise<boolean> {
  const answer = admissionAnswer(await gateway.post('/v1/validate', podReview(image)));
  return answer.response.allowed === true;
}

async function readyz(gateway: TestGateway) {
  const result = await gateway.health('/readyz');
  return { status: result.status, body: record(result.body, '/readyz') };
}

const source = (body: Record<string, unknown>) => record(body.bundleSource, 'bundleSource');

async function until(
  gateway: TestGateway,
  check: (body: Record<string, unknown>) => boolean,
  what: string,
) {
  return poll(
    async () => {
      const { body } = await readyz(gateway);
      return check(body) ? body : undefined;
    },
    what,
    { tries: 300, everyMs: 50 },
  );
}

async function registryWithBundle(t: Teardown) {
  const registry = await startRegistry(t, { auth: 'htpasswd' });
  const credentials = await writeDockerConfigJson(t, registry);
  const a = await orasPushBundle(
    t,
    registry,
    `${REPO}:1`,
    await variantBundle('fleet-a', 'a.example.com'),
  );
  return { registry, credentials, a };
}

const registryOptions = (registry: TestRegistry, credentials: string, ca = [registry.caFile]) => ({
  credentials,
  ca,
  requestTimeoutMs: 3_000,
});

test('serves the artifact, and downloads it again only when its manifest digest changes', async (t) => {
  const { registry, credentials, a } = await registryWithBundle(t);
  const gateway = await startTestGateway(t, {
    bundle: `oci://${registry.host}/${REPO}:1`,
    registry: registryOptions(registry, credentials),
    remote: remoteOptions(),
  });
  await until(gateway, (body) => body.ready === true, 'ready');
  const first = await readyz(gateway);
  t.is(first.status, 200);
  t.is(first.body.revision, 'fleet-a');
  t.like(source(first.body), { kind: 'oci', origin: 'remote', version: a, consecutiveFailures: 0 });
  t.true(await allowed(gateway, 'a.example.com/app:1'));
  t.false(await allowed(gateway, 'b.example.com/app:1'));

  // Several polls later, the layer was fetched once.
  await poll(
    async () =>
      ((await gateway.gateway.metrics.bundleRequests.get()).values.find(
        (v) => v.labels.result === 'unchanged',
      )?.value ?? 0) >= 3 || undefined,
    'three unchanged polls',
  );
  const count = (pattern: RegExp) => (registry.logs().match(pattern) ?? []).length;
  t.is(count(/"GET \/v2\/policy\/imagegate\/blobs\/sha256:/g), 1, 'the layer, once');
  t.is(count(/"GET \/v2\/policy\/imagegate\/manifests\/sha256:/g), 1, 'the manifest, once');
  t.true(count(/"HEAD \/v2\/policy\/imagegate\/manifests\/1 /g) >= 4, 'a HEAD per poll');

  const b = await orasPushBundle(
    t,
    registry,
    `${REPO}:1`,
    await variantBundle('fleet-b', 'b.example.com'),
  );
  const next = await until(gateway, (body) => body.revision === 'fleet-b', 'revision fleet-b');
  t.is(source(next).version, b);
  t.true(await allowed(gateway, 'b.example.com/app:1'));
  t.false(await allowed(gateway, 'a.example.com/app:1'));
});

test('an outage keeps the last good policy; a revision published during it is picked up after', async (t) => {
  const { registry } = await registryWithBundle(t);
  // The gateway reaches the real registry through a proxy that can cut it off.
  const proxy = await startFaultProxy(t, registry);
  const proxied = await writeDockerConfigJson(t, { ...registry, host: proxy.host });
  const gateway = await startTestGateway(t, {
    bundle: `oci://${proxy.host}/${REPO}:1`,
    registry: registryOptions(registry, proxied, [registry.caFile, await caFile(t, proxy.ca)]),
    remote: remoteOptions(),
  });
  // Ready once the first poll through the proxy answered (a busy machine may retry it).
  await until(gateway, (body) => body.revision === 'fleet-a', 'fleet-a through the proxy');

  proxy.set({ kind: 'reset' });
  const failing = await until(
    gateway,
    (body) => Number(source(body).consecutiveFailures) >= 3,
    'three failed polls',
  );
  t.is(failing.ready, true, 'still ready: the last good policy serves');
  t.is(failing.revision, 'fleet-a');
  t.regex(String(source(failing).lastError), /unreachable|socket|reset/i);
  t.true(await allowed(gateway, 'a.example.com/app:1'));

  // Published while the gateway cannot see the registry.
  await orasPushBundle(t, registry, `${REPO}:1`, await variantBundle('fleet-b', 'b.example.com'));
  proxy.set({ kind: 'none' });
  const after = await until(
    gateway,
    (body) => body.revision === 'fleet-b',
    'fleet-b after the outage',
  );
  t.is(source(after).consecutiveFailures, 0);
  t.true(await allowed(gateway, 'b.example.com/app:1'));
});

test('after a restart during an outage the last good bundle is served from disk', async (t) => {
  const { registry, credentials, a } = await registryWithBundle(t);
  const persistDir = await tempDir(t, 'imagegate-persist-');
  const options = {
    bundle: `oci://${registry.host}/${REPO}:1`,
    registry: registryOptions(registry, credentials),
    remote: remoteOptions(persistDir),
  };
  const first = await startTestGateway(t, options);
  await until(first, (body) => body.revision === 'fleet-a', 'fleet-a');
  await first.gateway.close(100);

  await registry.stop();
  const second = await startTestGateway(t, options);
  const kept = await readyz(second);
  t.is(kept.status, 200, 'ready on the kept bundle');
  t.is(kept.body.revision, 'fleet-a');
  t.like(source(kept.body), { origin: 'persisted', version: a });
  t.true(Number(source(kept.body).consecutiveFailures) >= 1);
  t.true(await allowed(second, 'a.example.com/app:1'));
  t.is(
    (await second.gateway.metrics.bundleSource.get()).values.find((v) => v.value === 1)?.labels
      .origin,
    'persisted',
  );

  await registry.start();
  const confirmed = await until(
    second,
    (body) => source(body).origin === 'remote',
    'the registry to confirm it',
  );
  t.is(confirmed.revision, 'fleet-a');
});

test('never loaded: not ready and every review fails closed, until the registry answers', async (t) => {
  const { registry, credentials } = await registryWithBundle(t);
  await registry.stop();
  const gateway = await startTestGateway(t, {
    bundle: `oci://${registry.host}/${REPO}:1`,
    registry: registryOptions(registry, credentials),
    remote: remoteOptions(await tempDir(t, 'imagegate-persist-')),
  });
  const none = await readyz(gateway);
  t.is(none.status, 503);
  t.is(none.body.revision, null);
  const { response } = admissionAnswer(
    await gateway.post('/v1/validate', podReview('a.example.com/app:1')),
  );
  t.false(response.allowed);
  t.is(record(response.status, 'status').code, 500);

  await registry.start();
  const ready = await until(
    gateway,
    (body) => body.ready === true,
    'ready once the registry answers',
  );
  t.is(ready.revision, 'fleet-a');
});

test('with --bundle-cosign-key only an artifact cosign signed is loaded', async (t) => {
  const { registry, credentials, a } = await registryWithBundle(t);
  const keys = await generateKeyPair(await tempDir(t, 'imagegate-cosign-'));
  await signImage(registry, `${registry.host}/${REPO}@${a}`, keys, { cosign: 'v3' });
  const gateway = await startTestGateway(t, {
    bundle: `oci://${registry.host}/${REPO}:1`,
    registry: registryOptions(registry, credentials),
    remote: remoteOptions(undefined, { artifactKeys: [keys.publicKey] }),
  });
  const signed = await readyz(gateway);
  t.is(signed.body.revision, 'fleet-a');
  t.regex(String(source(signed.body).artifactSignature), /cosign\.pub \(bundle/);

  // An unsigned revision is never loaded; the signed one keeps serving.
  await orasPushBundle(t, registry, `${REPO}:1`, await variantBundle('fleet-b', 'b.example.com'));
  const refused = await until(
    gateway,
    (body) => /cosign signature required: no signature/.test(String(source(body).lastError)),
    'the unsigned artifact to be refused',
  );
  t.is(refused.revision, 'fleet-a');
  t.true(await allowed(gateway, 'a.example.com/app:1'));
});

async function caFile(t: Teardown, pem: string): Promise<string> {
  const path = join(await tempDir(t, 'imagegate-ca-'), 'ca.crt');
  await writeFile(path, pem);
  return path;
}
