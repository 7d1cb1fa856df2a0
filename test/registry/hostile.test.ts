/**
 * What a pod author (who chooses how many images, tags and repositories a review asks
 * about) or a hostile registry (which chooses its answers) must not make the gateway do:
 * starve another tenant's review, keep sending requests nobody waits for, cache its own
 * impatience as the registry's failure, send credentials anywhere but the registry, put a
 * registry-supplied "digest" into a URL, or grow a table without bound. Fake registries
 * (test/helpers/fake-registry.ts) that count what they are asked.
 */
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import test from 'ava';
import { addressPolicy } from '../../src/registry/addresses.ts';
import { RegistryClient } from '../../src/registry/client.ts';
import type { FactRequest } from '../../src/registry/facts.ts';
import { RegistryHttp } from '../../src/registry/http.ts';
import { createCa, issueCertificate } from '../../src/tls/certs.ts';
import {
  ca,
  client,
  digest,
  facts,
  fake,
  legacySignature,
  MANIFEST,
  resolver,
} from '../helpers/fake-registry.ts';
import { podWithImages } from '../helpers/fixtures.ts';
import {
  admissionAnswer,
  record,
  startTestGateway,
  tempDir,
  writeConfig,
} from '../helpers/gateway.ts';
import type { Teardown } from '../helpers/teardown.ts';

const tagOf = (registry: string, tag: string, index = 0): FactRequest => ({
  index,
  registry,
  repository: 'team/app',
  tag,
  digest: '',
  keys: [],
});

/** HEAD of a tag: its digest (a function of the tag), after `delayMs`. */
const slowTags =
  (delayMs: number) =>
  (req: {
    method: string;
    url: string;
  }): { status: number; headers: Record<string, string>; delayMs: number } => ({
    status: 200,
    headers: { 'docker-content-digest': digest(req.url) },
    delayMs,
  });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test.serial("one review's thousand tags do not starve another tenant's review", async (t) => {
  const registry = await fake(t, slowTags(50));
  const policy = addressPolicy([registry.host]);
  // One connection slot: every request queues behind the ones before it, unless turns are fair.
  const source = facts(policy, client(policy, { client: { perRegistry: 1 } }));
  // 200 lookups of 50 ms each through one slot: 10 s of work, against a 3 s budget.
  const hostile = Array.from({ length: 200 }, (_, i) => tagOf(registry.host, `h${i}`, i));
  const flood = source.gather(hostile, 3000, 'ci-runner');
  await sleep(20);
  const benign = await source.gather([tagOf(registry.host, 'v1')], 5000, 'shop');
  t.is(benign.get(0)?.digest, digest('/v2/team/app/manifests/v1'), JSON.stringify(benign.get(0)));
  const flooded = await flood;
  // The flood got what its budget allowed, and was told why for the rest.
  const late = [...flooded.values()].filter((f) => f.error !== undefined);
  t.true(late.length > 0);
  t.is(
    late[0]?.error,
    `registry ${registry.host} did not answer within the review's 3000 ms budget`,
  );
  // Nothing of the flood is sent once its review is out of time.
  const sent = registry.seen.length;
  await sleep(400);
  t.true(registry.seen.length <= sent + 1, `${registry.seen.length - sent} sent after the budget`);
});

test.serial('running out of time is not cached as the registry failing', async (t) => {
  const registry = await fake(t, slowTags(300));
  const policy = addressPolicy([registry.host]);
  const source = facts(policy);
  const hurried = await source.gather([tagOf(registry.host, 'v1')], 50);
  t.is(
    hurried.get(0)?.error,
    `registry ${registry.host} did not answer within the review's 50 ms budget`,
  );
  const patient = await source.gather([tagOf(registry.host, 'v1')], 10_000);
  t.is(patient.get(0)?.digest, digest('/v2/team/app/manifests/v1'));
});

test.serial('a lookup shared by two reviews goes on when the hurried one leaves', async (t) => {
  const registry = await fake(t, slowTags(300));
  const policy = addressPolicy([registry.host]);
  const source = facts(policy);
  const [hurried, patient] = await Promise.all([
    source.gather([tagOf(registry.host, 'v1')], 50),
    source.gather([tagOf(registry.host, 'v1')], 10_000),
  ]);
  t.regex(hurried.get(0)?.error ?? '', /within the review's 50 ms budget$/);
  t.is(patient.get(0)?.digest, digest('/v2/team/app/manifests/v1'));
  t.is(registry.seen.length, 1);
});

test.serial('one review sees one digest per tag, however often the tag moves', async (t) => {
  let moves = 0;
  const registry = await fake(t, () => ({
    status: 200,
    headers: { 'docker-content-digest': digest(`revision ${moves++}`) },
    delayMs: 20,
  }));
  const policy = addressPolicy([registry.host]);
  // No tag cache at all: only the review's own memory keeps its digests together.
  const source = facts(policy, client(policy), { ttls: { tagMs: 1 } });
  const requests = [0, 1, 2].map((i) => tagOf(registry.host, 'v1', i));
  const gathered = await source.gather(requests, 20_000);
  t.is(new Set([...gathered.values()].map((f) => f.digest)).size, 1);
  t.is(registry.seen.length, 1);
});

test('a 401 from storage the registry redirected to gets no credentials', async (t) => {
  const storage = await fake(t, (req) =>
    req.url.startsWith('/token')
      ? { status: 200, body: JSON.stringify({ token: 'stolen' }) }
      : {
          status: 401,
          headers: { 'www-authenticate': `Bearer realm="https://localhost:${port}/token"` },
        },
  );
  const port = storage.port;
  const blob = Buffer.from('layer');
  const registry = await fake(t, () => ({
    status: 307,
    headers: { location: `https://localhost:${storage.port}/blob` },
  }));
  const credentials = new Map([[registry.host, { username: 'robot', password: 's3cret' }]]);
  const c = client(addressPolicy([registry.host]), { credentials });
  await t.throwsAsync(
    c.blob(registry.host, 'team/app', digest(blob), 1024, AbortSignal.timeout(20_000)),
    {
      message: `${registry.host} redirected to localhost:${storage.port}, which asked for credentials; imagegate sends them only to the registry`,
    },
  );
  t.deepEqual(
    storage.seen.map((s) => s.authorization),
    storage.seen.map(() => undefined),
  );
  t.false(storage.seen.some((s) => s.url.startsWith('/token')));
});

/** A registry that wants a Bearer token from `realm`, and accepts any token it issued. */
async function tokenRegistry(t: Teardown, realm: () => string) {
  return fake(t, (req) => {
    if (req.url.startsWith('/token')) {
      return { status: 200, body: JSON.stringify({ token: 'issued', expires_in: 300 }) };
    }
    return req.headers.authorization === 'Bearer issued'
      ? { status: 200, headers: { 'docker-content-digest': digest('image') } }
      : {
          status: 401,
          headers: { 'www-authenticate': `Bearer realm="${realm()}",service="registry"` },
        };
  });
}

test('credentials go to a token realm on another host only when the configuration names it', async (t) => {
  const auth = await fake(t, () => ({ status: 200, body: JSON.stringify({ token: 'issued' }) }));
  const realm = `https://localhost:${auth.port}/token`;
  const registry = await tokenRegistry(t, () => realm);
  const credentials = new Map([[registry.host, { username: 'robot', password: 's3cret' }]]);

  const unnamed = client(addressPolicy([registry.host]), { credentials });
  await t.throwsAsync(
    unnamed.resolve(registry.host, 'team/app', 'v1', AbortSignal.timeout(20_000)),
    {
      message: `${registry.host} named the token realm localhost:${auth.port}, which is not the registry's host nor an auth host the configuration names for it (registries.${registry.host}.authHosts); its credentials are not sent there`,
    },
  );
  t.is(auth.seen.length, 0);

  const named = client(
    addressPolicy(
      [registry.host],
      new Map([[registry.host, { authHosts: [`localhost:${auth.port}`] }]]),
    ),
    { credentials },
  );
  const resolved = await named.resolve(
    registry.host,
    'team/app',
    'v1',
    AbortSignal.timeout(20_000),
  );
  t.is(resolved.digest, digest('image'));
  t.is(auth.seen[0]?.authorization, `Basic ${Buffer.from('robot:s3cret').toString('base64')}`);

  // Without credentials there is nothing to leak: an anonymous token from any realm.
  const anonymous = client(addressPolicy([registry.host]));
  const anonymousResolved = await anonymous.resolve(
    registry.host,
    'team/app',
    'v1',
    AbortSignal.timeout(20_000),
  );
  t.is(anonymousResolved.digest, digest('image'));
  t.is(auth.seen[1]?.authorization, undefined);
});

test('a token realm at an IPv4-mapped loopback address is not followed', async (t) => {
  const realm = await fake(t, () => ({ status: 200, body: JSON.stringify({ token: 'issued' }) }));
  // What a public registry's challenge would send the client to: refused before connecting.
  const http = new RegistryHttp({
    policy: () => addressPolicy(['registry.example.com']),
    ca: [ca.cert],
    requestTimeoutMs: 1000,
  });
  for (const host of [
    `[::ffff:127.0.0.1]:${realm.port}`,
    `[::ffff:7f00:1]:${realm.port}`,
    `[::7f00:1]:${realm.port}`,
    `[64:ff9b::7f00:1]:${realm.port}`,
  ]) {
    await t.throwsAsync(
      http.request('registry.example.com', new URL(`https://${host}/token`), {
        signal: AbortSignal.timeout(1000),
        maxBytes: 1024,
        foreign: true,
        headers: { authorization: 'Basic cm9ib3Q6czNjcmV0' },
      }),
      {
        message:
          /^registry\.example\.com sent imagegate to \[[0-9a-f:]+\]:\d+: \[[0-9a-f:]+\] is a loopback address$/,
      },
      host,
    );
  }
  t.is(realm.connections, 0);
});

test('a private network: the decision, and the address the client would dial', async (t) => {
  const lookup = resolver((host) => (host === 'harbor.corp.example' ? '10.20.30.40' : '8.8.8.8'));
  const http = (settings: Map<string, { network: 'private' | 'public' }>) =>
    new RegistryHttp({
      policy: () => addressPolicy(['harbor.corp.example', 'registry.example.com'], settings),
      ca: [],
      requestTimeoutMs: 1000,
      lookup,
    });
  // Not allowed: refused before any connection, saying why.
  await t.throwsAsync(http(new Map()).addressesFor('harbor.corp.example', 'harbor.corp.example'), {
    message:
      'harbor.corp.example resolves to 10.20.30.40, which imagegate does not contact for harbor.corp.example',
  });
  // Allowed for harbor.corp.example: that address is what its pool dials.
  const allowed = http(new Map([['harbor.corp.example', { network: 'private' }]]));
  t.deepEqual(
    (await allowed.addressesFor('harbor.corp.example', 'harbor.corp.example')).map(
      (a) => a.address,
    ),
    ['10.20.30.40'],
  );
  // ... and for no other registry, even one whose redirect names that host.
  await t.throwsAsync(allowed.addressesFor('registry.example.com', 'harbor.corp.example'), {
    message:
      /resolves to 10\.20\.30\.40, which imagegate does not contact for registry\.example\.com/,
  });
});

test('registry-supplied digests never reach a URL; a bad descriptor hides no valid signature', async (t) => {
  const image = digest(MANIFEST);
  const signature = legacySignature(image);
  const evil = 'sha256:x/../../../../../api/v2.0/users?q=';
  const index = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: evil,
        size: 100,
        artifactType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
      },
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: `sha256:${'ab'.repeat(16)}`,
        size: 100,
      },
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: digest('missing'),
        size: -1,
      },
    ],
  });
  const registry = await fake(t, (req) => {
    const path = req.url.split('?')[0];
    if (path === `/v2/team/app/manifests/${image.replace(':', '-')}.sig`) {
      return {
        status: 200,
        headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
        body: signature.manifest,
      };
    }
    if (path === `/v2/team/app/blobs/${digest(signature.payload)}`)
      return { status: 200, body: signature.payload };
    if (path === `/v2/team/app/referrers/${image}`) {
      return {
        status: 200,
        headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' },
        body: index,
      };
    }
    return { status: 404 };
  });
  const policy = addressPolicy([registry.host]);
  const source = facts(policy, client(policy), { keys: [signature.key] });
  const gathered = await source.gather(
    [
      {
        index: 0,
        registry: registry.host,
        repository: 'team/app',
        tag: '',
        digest: image,
        keys: ['release.pub'],
      },
    ],
    20_000,
  );
  t.deepEqual(gathered.get(0)?.signature, { verified: true, key: 'release.pub', format: 'legacy' });
  t.deepEqual(
    registry.seen.filter((s) => !s.url.startsWith('/v2/team/app/')).map((s) => s.url),
    [],
  );
});

test('a digest header of the wrong length is not believed: the manifest is fetched and digested', async (t) => {
  const registry = await fake(t, (req) =>
    req.method === 'HEAD'
      ? { status: 200, headers: { 'docker-content-digest': `sha256:${'a'.repeat(10)}` } }
      : {
          status: 200,
          headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
          body: MANIFEST,
        },
  );
  const source = facts(addressPolicy([registry.host]));
  const gathered = await source.gather([tagOf(registry.host, 'v1')], 20_000);
  t.is(gathered.get(0)?.digest, digest(MANIFEST));
});

test('the token table is bounded: repositories beyond it push the least used out', async (t) => {
  const registry = await tokenRegistry(t, () => `https://${registry.host}/token`);
  const c = client(addressPolicy([registry.host]), {
    requestTimeoutMs: 10_000,
    client: { maxTokens: 20 },
  });
  for (let i = 0; i < 60; i += 10) {
    await Promise.all(
      Array.from({ length: 10 }, (_, j) =>
        c.resolve(registry.host, `tenant/repo-${i + j}`, 'v1', AbortSignal.timeout(20_000)),
      ),
    );
  }
  t.true(c.tables().tokens <= 20, `${c.tables().tokens} tokens kept`);
  t.true(c.tables().tokens > 0);
});

test('fact caches are bounded: answers, negative answers and failures', async (t) => {
  const registry = await fake(t, (req) =>
    req.url.includes('/manifests/missing')
      ? { status: 404 }
      : req.url.includes('/manifests/broken')
        ? { status: 500 }
        : { status: 200, headers: { 'docker-content-digest': digest(req.url) } },
  );
  const policy = addressPolicy([registry.host]);
  const source = facts(policy, client(policy, { requestTimeoutMs: 10_000 }), { maxEntries: 20 });
  for (const kind of ['ok', 'missing', 'broken']) {
    const requests = Array.from({ length: 50 }, (_, i) => tagOf(registry.host, `${kind}-${i}`, i));
    await source.gather(requests, 5000);
    t.true(source.tables().tags <= 20, `${kind}: ${source.tables().tags}`);
  }
  t.is(source.tables().inflight, 0);
});

/** One HTTPS server answering 429 for many registry names (rN.localhost:port), its own CA. */
async function manyNames(t: Teardown, count: number): Promise<{ names: string[]; ca: string }> {
  const hosts = Array.from({ length: count }, (_, i) => `r${i}.localhost`);
  const own = createCa('imagegate many names CA');
  const serving = issueCertificate(own, {
    commonName: 'r0.localhost',
    usage: 'server',
    altNames: hosts,
  });
  const server: Server = createServer({ cert: serving.cert, key: serving.key }, (_req, res) => {
    res.writeHead(429, { 'retry-after': '60' });
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as AddressInfo;
  return { names: hosts.map((host) => `${host}:${port}`), ca: own.cert };
}

test('per-registry tables are bounded: cooldowns, queues and connection pools', async (t) => {
  const { names, ca: ownCa } = await manyNames(t, 40);
  const policy = addressPolicy(names);
  const http = new RegistryHttp({
    policy: () => policy,
    ca: [ownCa],
    requestTimeoutMs: 10_000,
    lookup: resolver(() => '127.0.0.1'),
    maxPools: 10,
  });
  const c = new RegistryClient({ http, credentials: () => new Map(), maxRegistries: 10 });
  for (const name of names) {
    await t.throwsAsync(c.resolve(name, 'team/app', 'v1', AbortSignal.timeout(20_000)), {
      message: `${name} is rate limiting (429): not asked again for 60 s`,
    });
  }
  const tables = c.tables();
  t.true(tables.cooldowns <= 10 && tables.cooldowns > 0, JSON.stringify(tables));
  t.true(tables.queues <= 10, JSON.stringify(tables));
  t.true(tables.pools <= 10, JSON.stringify(tables));
  await http.close();
});

test('a review that needs more lookups than maxLookups is refused before any is made', async (t) => {
  const registry = await fake(t, (req) => ({
    status: 200,
    headers: { 'docker-content-digest': digest(req.url) },
  }));
  const dir = await tempDir(t, 'imagegate-ca-');
  await writeFile(join(dir, 'ca.crt'), ca.cert);
  const config = await writeConfig(
    t,
    [
      `trustedRegistries: ["${registry.host}"]`,
      'pinDigests: pods',
      'maxLookups: 6',
      'namespaces: {"ci-*": {maxLookups: 2}}',
    ].join('\n'),
  );
  const gateway = await startTestGateway(t, { config, registry: { ca: [join(dir, 'ca.crt')] } });
  const images = (n: number) =>
    Array.from({ length: n }, (_, i) => `${registry.host}/team/app:v${i}`);

  const flood = admissionAnswer(
    await gateway.post('/v1/mutate', podWithImages(images(7), { namespace: 'shop' })),
  );
  t.false(flood.response.allowed);
  t.deepEqual(flood.response.status, {
    code: 400,
    reason: 'BadRequest',
    message:
      'imagegate: the object needs 7 registry lookups; a review may make at most 6 (maxLookups)',
  });
  t.is(registry.seen.length, 0);
  // The same tag twice is one lookup; a namespace's override is its bound.
  const repeated = [...images(6), `${registry.host}/team/app:v0`];
  t.true(
    admissionAnswer(
      await gateway.post('/v1/mutate', podWithImages(repeated, { namespace: 'shop' })),
    ).response.allowed === true,
  );
  const ci = admissionAnswer(
    await gateway.post('/v1/mutate', podWithImages(images(3), { namespace: 'ci-7' })),
  );
  t.regex(String(record(ci.response.status, 'status').message), /at most 2 \(maxLookups\)$/);
  const metrics = (await gateway.health('/metrics')).text;
  t.regex(metrics, /imagegate_limit_refusals_total\{endpoint="mutate",limit="lookups"\} 2/);
});
