/**
 * Registry facts against real registries: the CNCF distribution registry (auth none,
 * htpasswd, token) and an OCI 1.1 registry with the referrers API, images pushed by crane,
 * signed by cosign 3 (Sigstore bundles, referrers or the tag fallback) and cosign 2 (the
 * legacy .sig tag). What the policy reads from these facts is tested in rego/; here, that
 * the facts are right, cached as they may be, and never a pass when the registry fails.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { addressPolicy } from '../../src/registry/addresses.ts';
import { RegistryClient } from '../../src/registry/client.ts';
import type { Credentials } from '../../src/registry/credentials.ts';
import { parseDockerConfig } from '../../src/registry/credentials.ts';
import {
  DEFAULT_TTLS,
  type FactRequest,
  FactSource,
  type FactTtls,
} from '../../src/registry/facts.ts';
import { RegistryHttp } from '../../src/registry/http.ts';
import { loadKey, type PublicKeyRef } from '../../src/registry/keys.ts';
import { keysOnly } from '../../src/registry/sigstore/verification.ts';
import { tempDir } from '../helpers/gateway.ts';
import {
  authHostsOf,
  dockerConfigJson,
  generateKeyPair,
  type KeyPair,
  pushImage,
  signImage,
  startRegistry,
  type TestRegistry,
} from '../helpers/registry.ts';
import { registryTest } from '../helpers/registry-test.ts';
import { runTool } from '../helpers/registry-tools.ts';

const test = await registryTest('test/registry/facts');

interface Harness {
  readonly facts: FactSource;
  /** Registry requests made, as "kind outcome". */
  readonly requests: string[];
  /** Every key by the name the facts give it. */
  readonly keys: Map<string, PublicKeyRef>;
}

function harness(
  registries: readonly TestRegistry[],
  keys: readonly PublicKeyRef[],
  options: { credentials?: Credentials; ttls?: Partial<FactTtls> } = {},
): Harness {
  const policy = addressPolicy(
    registries.map((r) => r.host),
    authHostsOf(registries),
  );
  const requests: string[] = [];
  const client = new RegistryClient({
    http: new RegistryHttp({
      policy: () => policy,
      ca: registries.map((r) => r.ca),
      requestTimeoutMs: 2000,
    }),
    credentials: () => options.credentials ?? new Map(),
    observe: (_registry, kind, outcome) => requests.push(`${kind} ${outcome}`),
  });
  const byRef = new Map(keys.map((k) => [k.name, k]));
  const facts = new FactSource({
    client,
    policy: () => policy,
    // A request's verification names its keys: "release.pub,other.pub".
    verification: (id) =>
      keysOnly(
        id,
        id.split(',').map((ref) => {
          const key = byRef.get(ref);
          if (key === undefined) throw new Error(`no key ${ref}`);
          return key;
        }),
      ),
    ttls: { ...DEFAULT_TTLS, ...options.ttls },
  });
  return { facts, requests, keys: byRef };
}

function request(
  registry: TestRegistry,
  repository: string,
  ref: { tag?: string; digest?: string },
  keys: readonly string[] = [],
): FactRequest {
  return {
    index: 0,
    registry: registry.host,
    repository,
    tag: ref.tag ?? '',
    digest: ref.digest ?? '',
    verification: keys.join(','),
  };
}

async function one(h: Harness, r: FactRequest, budgetMs = 4000) {
  const facts = (await h.facts.gather([r], budgetMs)).get(r.index);
  if (facts === undefined) throw new Error('no facts for the request');
  return facts;
}

async function keyPair(
  t: ExecutionContext,
  name: string,
): Promise<KeyPair & { ref: PublicKeyRef }> {
  const dir = join(await tempDir(t, 'imagegate-keys-'), name);
  await mkdir(dir);
  const pair = await generateKeyPair(dir);
  const loaded = await loadKey(pair.publicKey);
  return { ...pair, ref: { ...loaded, name } };
}

test('a tag resolves to the digest the registry names, the index for a multi-arch image', async (t) => {
  const registry = await startRegistry(t, { auth: 'none' });
  const single = await pushImage(registry, 'team/app', 'v1');
  const multi = await pushImage(registry, 'team/multi', 'v2', {
    platforms: ['linux/amd64', 'linux/arm64'],
  });
  const h = harness([registry], []);
  t.deepEqual(await one(h, request(registry, 'team/app', { tag: 'v1' })), {
    digest: single.digest,
  });
  const index = await one(h, request(registry, 'team/multi', { tag: 'v2' }));
  t.is(index.digest, multi.digest);
  t.false(Object.values(multi.platformDigests).includes(multi.digest));
  // No tag: what the kubelet pulls, latest.
  await pushImage(registry, 'team/plain', 'latest');
  t.truthy((await one(h, request(registry, 'team/plain', {}))).digest);
  const missing = await one(h, request(registry, 'team/app', { tag: 'nope' }));
  t.is(missing.error, `${registry.host}/team/app:nope does not exist`);
});

test('htpasswd: credentials from a .dockerconfigjson; none, or wrong ones, are a clear error', async (t) => {
  const registry = await startRegistry(t, { auth: 'htpasswd' });
  const image = await pushImage(registry, 'team/app', 'v1');
  const right = parseDockerConfig(dockerConfigJson(registry), 'config');
  t.deepEqual(
    await one(
      harness([registry], [], { credentials: right }),
      request(registry, 'team/app', { tag: 'v1' }),
    ),
    {
      digest: image.digest,
    },
  );
  const none = await one(harness([registry], []), request(registry, 'team/app', { tag: 'v1' }));
  t.is(
    none.error,
    `${registry.host} requires credentials, and --registry-credentials has none for it`,
  );
  const wrong = parseDockerConfig(
    dockerConfigJson(registry, { username: registry.username ?? '', password: 'nope' }),
    'config',
  );
  const refused = await one(
    harness([registry], [], { credentials: wrong }),
    request(registry, 'team/app', { tag: 'v1' }),
  );
  t.is(refused.error, `${registry.host} refused the credentials for team/app`);
  t.false(JSON.stringify([none, refused]).includes(registry.password ?? '\0'));
});

test('token auth: one token per repository, reused until it expires', async (t) => {
  const registry = await startRegistry(t, { auth: 'token' });
  const server = registry.tokenServer;
  if (server === undefined) return t.fail('no token server');
  const image = await pushImage(registry, 'team/app', 'v1');
  const before = server.requests.length;
  const h = harness([registry], [], {
    credentials: parseDockerConfig(dockerConfigJson(registry), 'c'),
  });
  t.deepEqual(await one(h, request(registry, 'team/app', { tag: 'v1' })), { digest: image.digest });
  const tokens = server.requests.slice(before);
  t.deepEqual(
    tokens.map((r) => [r.user, r.scopes, r.status]),
    [[registry.username, ['repository:team/app:pull'], 200]],
  );
  // A new tag of the same repository: the token is reused.
  await pushImage(registry, 'team/app', 'v2');
  const after = server.requests.length;
  t.truthy((await one(h, request(registry, 'team/app', { tag: 'v2' }))).digest);
  t.is(server.requests.length, after);
});

test('signatures: cosign 3 bundles by referrers and by tag fallback, cosign 2 .sig, each verified', async (t) => {
  const oci = await startRegistry(t, { auth: 'none', referrers: true });
  const distribution = await startRegistry(t, { auth: 'none' });
  const release = await keyPair(t, 'release.pub');
  const cases = [
    { registry: oci, cosign: 'v3', format: 'bundle v0.3' },
    { registry: distribution, cosign: 'v3', format: 'bundle v0.3' },
    { registry: distribution, cosign: 'v2', format: 'legacy' },
  ] as const;
  for (const { registry, cosign, format } of cases) {
    const repo = `signed/${cosign}`;
    const image = await pushImage(registry, repo, 'v1');
    await signImage(registry, image.reference, release, { cosign });
    const h = harness([registry], [release.ref]);
    const facts = await one(h, request(registry, repo, { tag: 'v1' }, ['release.pub']));
    t.deepEqual(
      facts,
      {
        digest: image.digest,
        signature: { verified: true, signers: ['release.pub'], key: 'release.pub', format },
      },
      `${cosign} on ${registry.referrers ? 'a referrers registry' : 'distribution'}`,
    );
  }
});

test("a bundle listed with the config's empty type (go-containerregistry's referrers) is still found", async (t) => {
  const raw = await startRegistry(t, { auth: 'none', referrers: true, rawReferrers: true });
  const release = await keyPair(t, 'release.pub');
  const image = await pushImage(raw, 'signed/app', 'v1');
  await signImage(raw, image.reference, release, { cosign: 'v3' });
  const facts = await one(
    harness([raw], [release.ref]),
    request(raw, 'signed/app', { tag: 'v1' }, ['release.pub']),
  );
  t.deepEqual(facts.signature, {
    verified: true,
    signers: ['release.pub'],
    key: 'release.pub',
    format: 'bundle v0.3',
  });
});

test('unsigned, signed by another key, and a signature copied from another image are told apart', async (t) => {
  const registry = await startRegistry(t, { auth: 'none' });
  const release = await keyPair(t, 'release.pub');
  const stranger = await keyPair(t, 'stranger.pub');
  const h = harness([registry], [release.ref, stranger.ref]);
  const check = async (repo: string) =>
    (await one(h, request(registry, repo, { tag: 'v1' }, ['release.pub']))).signature;

  await pushImage(registry, 'app/unsigned', 'v1');
  t.deepEqual(await check('app/unsigned'), { verified: false, reason: 'no signature' });

  for (const cosign of ['v3', 'v2'] as const) {
    const other = await pushImage(registry, `app/other-key-${cosign}`, 'v1');
    await signImage(registry, other.reference, stranger, { cosign });
    t.deepEqual(
      await check(`app/other-key-${cosign}`),
      { verified: false, reason: 'signed by another key' },
      cosign,
    );
  }

  // A valid signature of image A, copied to where image B's would be: for another digest.
  const a = await pushImage(registry, 'app/copied', 'a');
  const b = await pushImage(registry, 'app/copied', 'v1');
  await signImage(registry, a.reference, release, { cosign: 'v2' });
  await signImage(registry, a.reference, release, { cosign: 'v3' });
  const crane = (args: string[]) => runTool(registry.tools.crane, args, registry.env);
  const tagOf = (digest: string) => digest.replace(':', '-');
  await crane([
    'copy',
    `${registry.host}/app/copied:${tagOf(a.digest)}.sig`,
    `${registry.host}/app/copied:${tagOf(b.digest)}.sig`,
  ]);
  t.deepEqual(
    await check('app/copied'),
    {
      verified: false,
      reason: 'signature for another digest',
      detail: `it signs ${a.digest}`,
    },
    'legacy',
  );
  await crane(['delete', `${registry.host}/app/copied:${tagOf(b.digest)}.sig`]).catch(
    () => undefined,
  );
  await crane([
    'copy',
    `${registry.host}/app/copied:${tagOf(a.digest)}`,
    `${registry.host}/app/copied:${tagOf(b.digest)}`,
  ]);
  const copied = await one(
    harness([registry], [release.ref]),
    request(registry, 'app/copied', { tag: 'v1' }, ['release.pub']),
  );
  t.deepEqual(
    copied.signature,
    { verified: false, reason: 'signature for another digest', detail: `it signs ${a.digest}` },
    'bundle',
  );
});

test('a registry that goes down: an error naming it, cached only briefly, facts again once it is back', async (t) => {
  const registry = await startRegistry(t, { auth: 'none' });
  const image = await pushImage(registry, 'team/app', 'v1');
  const h = harness([registry], [], { ttls: { failureMs: 300, tagMs: 1 } });
  await registry.stop();
  const down = await one(h, request(registry, 'team/app', { tag: 'v1' }));
  t.is(down.digest, undefined);
  t.regex(
    down.error ?? '',
    new RegExp(`^registry ${registry.host.replace('.', '\\.')} unreachable: .*ECONNREFUSED`),
  );
  // Within the failure's short TTL it is not asked again (no retry storm); after it, it is.
  const asked = h.requests.length;
  t.is((await one(h, request(registry, 'team/app', { tag: 'v1' }))).error, down.error);
  t.is(h.requests.length, asked);
  await registry.start();
  await new Promise((resolve) => setTimeout(resolve, 350));
  t.deepEqual(await one(h, request(registry, 'team/app', { tag: 'v1' })), { digest: image.digest });
});

test('64 concurrent reviews of one new tag make one registry lookup', async (t) => {
  const registry = await startRegistry(t, { auth: 'none' });
  const image = await pushImage(registry, 'team/app', 'v1');
  const h = harness([registry], []);
  const all = await Promise.all(
    Array.from({ length: 64 }, () => one(h, request(registry, 'team/app', { tag: 'v1' }))),
  );
  t.true(all.every((f) => f.digest === image.digest));
  t.deepEqual(h.requests, ['resolve ok']);
});

test('a verified signature is cached by digest: a second review asks only for the tag', async (t) => {
  const registry = await startRegistry(t, { auth: 'none' });
  const release = await keyPair(t, 'release.pub');
  const image = await pushImage(registry, 'signed/app', 'v1');
  await signImage(registry, image.reference, release, { cosign: 'v2' });
  const h = harness([registry], [release.ref], { ttls: { tagMs: 1 } });
  const r = request(registry, 'signed/app', { tag: 'v1' }, ['release.pub']);
  t.true((await one(h, r)).signature?.verified);
  const first = h.requests.length;
  await new Promise((resolve) => setTimeout(resolve, 5));
  t.true((await one(h, r)).signature?.verified);
  t.deepEqual(h.requests.slice(first), ['resolve ok']);
});

test('a cache-only read answers from the caches or not at all, and never asks the registry', async (t) => {
  const registry = await startRegistry(t, { auth: 'none' });
  const release = await keyPair(t, 'release.pub');
  const image = await pushImage(registry, 'signed/app', 'v1');
  await signImage(registry, image.reference, release, { cosign: 'v2' });
  const h = harness([registry], [release.ref]);
  const r = request(registry, 'signed/app', { tag: 'v1' }, ['release.pub']);
  const unsigned = request(registry, 'signed/app', { tag: 'v2' });
  t.is(await h.facts.cached([r]), undefined, 'nothing cached yet');
  t.deepEqual(h.requests, [], 'and nothing asked');
  const looked = await one(h, r);
  const asked = h.requests.length;
  t.true(asked > 0);
  const read = await h.facts.cached([r]);
  t.deepEqual(read?.facts.get(0), looked, 'the same facts, from the caches');
  // Until the first of them leaves its cache: the tag's (30 s), not the signature's (1 h).
  const left = (read?.until ?? 0) - Date.now();
  t.true(left > 25_000 && left <= DEFAULT_TTLS.tagMs, `${left} ms left`);
  // One miss among hits: no answer at all, and still no request.
  t.is(await h.facts.cached([r, { ...unsigned, index: 1 }]), undefined);
  t.is(h.requests.length, asked);
});
