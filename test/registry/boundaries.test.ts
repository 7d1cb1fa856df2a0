/**
 * What a registry (or a pod spec naming one) must not make the gateway do: call a host the
 * configuration does not name, follow a redirect to the metadata address or a plain-HTTP
 * URL, carry credentials to another host, ask again while it says 429, believe content
 * that does not match its digest, or outlast the review's budget. Hand-made HTTPS servers
 * here, because a real registry does none of these things on purpose; each counts the
 * connections it gets, so "no network call" is observed, not assumed.
 */
import test from 'ava';
import { addressPolicy } from '../../src/registry/addresses.ts';
import { RegistryClient } from '../../src/registry/client.ts';
import type { FactRequest, FactSource } from '../../src/registry/facts.ts';
import { RegistryHttp } from '../../src/registry/http.ts';
import { ca, client, digest, facts, fake, MANIFEST, resolver } from '../helpers/fake-registry.ts';

const tagOf = (registry: string, tag = 'v1'): FactRequest => ({
  index: 0,
  registry,
  repository: 'team/app',
  tag,
  digest: '',
  verification: '',
});

async function one(source: FactSource, request: FactRequest, budgetMs = 3000) {
  return (await source.gather([request], budgetMs)).get(0) ?? {};
}

test('an image on a host the configuration does not name makes no network call', async (t) => {
  const listening = await fake(t, () => ({ status: 200, body: MANIFEST }));
  // Only registry.example.com is named; the pod spec names the others.
  const source = facts(addressPolicy(['registry.example.com']));
  for (const host of [
    listening.host, // a loopback port (the gateway's own, a sidecar's)
    '169.254.169.254', // the cloud metadata service
    'kubernetes.default.svc', // the API server
    '10.0.0.7:10250', // a node's kubelet
    'localhost:8080',
  ]) {
    const answer = await one(source, tagOf(host));
    t.is(
      answer.error,
      `registry ${host} is not one the configuration names, so imagegate does not contact it`,
    );
    t.is(answer.digest, undefined);
  }
  t.is(listening.connections, 0);
});

test('a named registry whose name resolves to loopback or link-local is not connected to', async (t) => {
  const listening = await fake(t, () => ({ status: 200, body: MANIFEST }));
  const policy = addressPolicy(['registry.example.com']);
  for (const address of ['127.0.0.1', '169.254.169.254', '10.1.2.3']) {
    const source = facts(policy, client(policy, { lookup: resolver(() => address) }));
    const answer = await one(source, tagOf('registry.example.com'));
    t.is(
      answer.error,
      `registry.example.com resolves to ${address}, which imagegate does not contact for registry.example.com`,
    );
  }
  t.is(listening.connections, 0);
});

test('redirects: never to link-local or plain HTTP; to storage beside the registry without its credentials', async (t) => {
  const blob = Buffer.from('layer bytes');
  const storage = await fake(t, () => ({ status: 200, body: blob }));
  let location = '';
  const registry = await fake(t, (req) =>
    req.url.includes('/blobs/') ? { status: 307, headers: { location } } : { status: 404 },
  );
  const policy = addressPolicy([registry.host]);
  const c = client(policy);
  const get = () =>
    c.blob(registry.host, 'team/app', digest(blob), 1024, AbortSignal.timeout(3000));

  location = 'https://169.254.169.254/latest/meta-data/';
  await t.throwsAsync(get, {
    message: `${registry.host} redirected to 169.254.169.254: 169.254.169.254 is a link-local address`,
  });
  location = `http://127.0.0.1:${storage.port}/blob`;
  await t.throwsAsync(get, {
    message: `${registry.host} redirected to 127.0.0.1:${storage.port}: http: is not https`,
  });
  t.is(storage.connections, 0);

  // A loopback registry may send the gateway to another loopback host: followed, and the
  // Authorization meant for the registry stays behind.
  location = `https://localhost:${storage.port}/blob`;
  t.deepEqual(await get(), blob);
  t.deepEqual(
    storage.seen.map((s) => [s.url, s.authorization]),
    [['/blob', undefined]],
  );
});

test('429 with Retry-After: one request, then the registry is left alone for that long', async (t) => {
  const limited = await fake(t, () => ({ status: 429, headers: { 'retry-after': '7' } }));
  const source = facts(addressPolicy([limited.host]));
  const first = await one(source, tagOf(limited.host, 'v1'));
  t.is(first.error, `${limited.host} is rate limiting (429): not asked again for 7 s`);
  // The same tag (cached failure) and another tag (the registry's cooldown): no request.
  t.is((await one(source, tagOf(limited.host, 'v1'))).error, first.error);
  t.regex(
    (await one(source, tagOf(limited.host, 'v2'))).error ?? '',
    /is rate limiting: not asked again for [67] s$/,
  );
  t.is(limited.seen.length, 1);
});

test('content that does not match its digest is refused, from a tag and by digest', async (t) => {
  const body = Buffer.from(MANIFEST);
  const claimed = `sha256:${'0'.repeat(64)}`;
  const registry = await fake(t, (req) =>
    req.method === 'HEAD'
      ? { status: 405 }
      : {
          status: 200,
          headers: {
            'content-type': 'application/vnd.oci.image.manifest.v1+json',
            'docker-content-digest': claimed,
          },
          body,
        },
  );
  const policy = addressPolicy([registry.host]);
  t.is(
    (await one(facts(policy), tagOf(registry.host))).error,
    `${registry.host}/team/app:v1: the manifest does not match its digest ${claimed}`,
  );
  await t.throwsAsync(
    client(policy).manifest(registry.host, 'team/app', claimed, AbortSignal.timeout(3000)),
    {
      message: `${registry.host}/team/app@${claimed}: the content does not match its digest ${claimed}`,
    },
  );
});

test('a registry that never answers costs the review its budget, not more, and says so', async (t) => {
  const silent = await fake(t, () => 'hang');
  const answer = await one(facts(addressPolicy([silent.host])), tagOf(silent.host), 300);
  t.is(answer.error, `registry ${silent.host} did not answer within the review's 300 ms budget`);
});

test('a manifest larger than the limit is not read to its end', async (t) => {
  const huge = await fake(t, (req) =>
    req.method === 'HEAD'
      ? { status: 405 }
      : { status: 200, body: Buffer.alloc(5 * 1024 * 1024, 32) },
  );
  const answer = await one(facts(addressPolicy([huge.host])), tagOf(huge.host));
  t.is(answer.error, `${huge.host} sent more than 4194304 bytes for /v2/team/app/manifests/v1`);
});

test('a rate per registry spaces requests out: the audit never hammers a registry', async (t) => {
  const arrivals: number[] = [];
  const registry = await fake(t, () => {
    arrivals.push(performance.now());
    return { status: 200, headers: { 'docker-content-digest': `sha256:${'a'.repeat(64)}` } };
  });
  const policy = addressPolicy([registry.host]);
  const http = new RegistryHttp({ policy: () => policy, ca: [ca.cert], requestTimeoutMs: 5000 });
  const limited = new RegistryClient({ http, credentials: () => new Map(), ratePerSecond: 4 });
  const started = performance.now();
  await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      limited.resolve(registry.host, 'team/app', `v${i}`, AbortSignal.timeout(10_000)),
    ),
  );
  // A burst of 4, then one every 250 ms: request i cannot arrive before (i - 3) × 250 ms.
  // (Only a lower bound: a slow machine makes requests later, never earlier.)
  t.is(arrivals.length, 10);
  for (const [i, at] of arrivals.sort((a, b) => a - b).entries()) {
    t.true(
      at - started >= Math.max(0, i - 3) * 250 - 5,
      `request ${i} at ${(at - started).toFixed(0)} ms`,
    );
  }
});
