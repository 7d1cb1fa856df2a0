/**
 * The registry test infrastructure itself, against the real tools: pushes to each kind of
 * registry (auth none, htpasswd, token), the token server's protocol, a multi-arch index,
 * what cosign 2 and cosign 3 write where, and a registry that goes down and comes back.
 * Needs `make registry-tools`; without the tools every test is skipped and says so.
 */
import { createPrivateKey, createPublicKey, verify, X509Certificate } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import { createCa, issueCertificate } from '../../src/tls/certs.ts';
import { errorCode, tempDir } from '../helpers/gateway.ts';
import {
  generateKeyPair,
  pushImage,
  signImage,
  startRegistry,
  type TestRegistry,
  writeDockerConfigJson,
} from '../helpers/registry.ts';
import { fetchToken, https, MEDIA_TYPES, pull } from '../helpers/registry-http.ts';
import { registryTest } from '../helpers/registry-test.ts';
import { runTool, toolSandbox } from '../helpers/registry-tools.ts';

const test = await registryTest('test/registry/tools');

const BUNDLE_V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';

const json = (value: unknown, what: string): JsonObject => {
  if (!isRecord(value))
    throw new TypeError(`${what} is not a JSON object: ${JSON.stringify(value)}`);
  return value;
};
const items = (value: unknown, what: string): JsonObject[] => {
  if (!Array.isArray(value)) throw new TypeError(`${what} is not an array`);
  return value.map((item, i) => json(item, `${what}[${i}]`));
};

async function manifest(registry: TestRegistry, repo: string, reference: string) {
  const res = await pull(registry, repo, `manifests/${reference}`);
  if (res.status !== 200) throw new Error(`GET manifest ${reference}: ${res.status} ${res.body}`);
  return { ...res, manifest: json(res.json, reference) };
}

async function blob(registry: TestRegistry, repo: string, digest: string): Promise<Buffer> {
  const res = await pull(registry, repo, `blobs/${digest}`, '*/*');
  if (res.status !== 200) throw new Error(`GET blob ${digest}: ${res.status}`);
  return res.body;
}

async function tags(registry: TestRegistry, repo: string): Promise<string[]> {
  const res = await pull(registry, repo, 'tags/list', 'application/json');
  const list = json(res.json, 'tags/list').tags;
  return Array.isArray(list) ? list.map(String).sort() : [];
}

/** Pushed, then read back as a client would: the tag's digest, media type and platform. */
async function pushAndReadBack(t: ExecutionContext, registry: TestRegistry): Promise<void> {
  const image = await pushImage(registry, 'team/app', 'v1');
  const res = await manifest(registry, 'team/app', 'v1');
  t.is(res.headers['docker-content-digest'], image.digest);
  t.is(res.headers['content-type'], MEDIA_TYPES.ociManifest);
  const config = json(res.manifest.config, 'config');
  t.is(config.mediaType, 'application/vnd.oci.image.config.v1+json');
  const platform = json(
    JSON.parse((await blob(registry, 'team/app', String(config.digest))).toString()),
    'config',
  );
  t.deepEqual([platform.os, platform.architecture], ['linux', 'amd64']);
  t.deepEqual(image.platformDigests, { 'linux/amd64': image.digest });
}

test('push and pull back on a registry without auth', async (t) => {
  const registry = await startRegistry(t, { auth: 'none' });
  t.is((await https(registry, '/v2/')).status, 200);
  await pushAndReadBack(t, registry);
});

test('htpasswd: 401 with a Basic challenge, push after crane auth login, wrong password refused', async (t) => {
  const registry = await startRegistry(t, { auth: 'htpasswd' });
  const anonymous = await https(registry, '/v2/');
  t.is(anonymous.status, 401);
  t.is(anonymous.headers['www-authenticate'], 'Basic realm="imagegate-test"');
  await pushAndReadBack(t, registry);
  const wrong = `Basic ${Buffer.from(`${registry.username}:nope`).toString('base64')}`;
  t.is((await https(registry, '/v2/', { headers: { Authorization: wrong } })).status, 401);
});

test('token: the registry sends clients to the token server and accepts only its tokens', async (t) => {
  const registry = await startRegistry(t, { auth: 'token' });
  const server = registry.tokenServer;
  if (server === undefined || registry.username === undefined || registry.password === undefined) {
    return t.fail('no token server');
  }
  const challenge = await https(registry, '/v2/team/app/manifests/v1');
  t.is(challenge.status, 401);
  t.is(
    challenge.headers['www-authenticate'],
    `Bearer realm="${server.realm}",service="imagegate-test-registry",scope="repository:team/app:pull"`,
  );

  await pushAndReadBack(t, registry);
  const used = server.requests.filter((r) => r.status === 200 && r.user === registry.username);
  t.true(
    used.some((r) => r.scopes.includes('repository:team/app:push,pull')),
    JSON.stringify(server.requests),
  );

  // Bad credentials: no token, 401 with a Basic challenge; crane fails the same way.
  const credentials = { username: registry.username, password: registry.password };
  const refused = await fetchToken(registry, ['repository:team/app:pull'], {
    ...credentials,
    password: 'nope',
  });
  t.is(refused.status, 401);
  t.is(refused.headers['www-authenticate'], 'Basic realm="imagegate-test-token"');
  t.is(server.requests.at(-1)?.status, 401);
  t.is((await fetchToken(registry, ['repository:team/app:pull'], undefined)).status, 401);
  const stranger = await toolSandbox(t, registry.caFile);
  await runTool(
    registry.tools.crane,
    ['auth', 'login', registry.host, '-u', 'mallory', '--password-stdin'],
    stranger,
    {
      input: 'guess',
    },
  );
  const craneRefused = await t.throwsAsync(
    runTool(registry.tools.crane, ['digest', `${registry.host}/team/app:v1`], stranger),
  );
  t.regex(
    craneRefused?.message ?? '',
    /token\?scope=repository%3Ateam%2Fapp%3Apull&service=imagegate-test-registry: UNAUTHORIZED: bad credentials/,
  );

  // The scope is honoured: a pull token reads team/app but can't read team/other or push.
  const answer = await fetchToken(registry, ['repository:team/app:pull'], credentials);
  const body = json(answer.json, 'token answer');
  t.is(body.expires_in, 300);
  t.is(body.access_token, body.token);
  const bearer = { Authorization: `Bearer ${String(body.token)}`, Accept: MEDIA_TYPES.ociManifest };
  t.is((await https(registry, '/v2/team/app/manifests/v1', { headers: bearer })).status, 200);
  const other = await https(registry, '/v2/team/other/manifests/v1', { headers: bearer });
  t.is(other.status, 401);
  t.regex(String(other.headers['www-authenticate']), /error="insufficient_scope"/);
  const push = await https(registry, '/v2/team/app/blobs/uploads/', {
    method: 'POST',
    headers: bearer,
  });
  t.is(push.status, 401);

  // A token the token server did not sign (another CA's key, same claims) is refused.
  const ca = createCa('mallory CA');
  const forger = issueCertificate(ca, { commonName: 'mallory', usage: 'client' });
  const forged = await new SignJWT({
    access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }],
  })
    .setProtectedHeader({
      alg: 'RS256',
      x5c: [new X509Certificate(forger.cert).raw.toString('base64')],
    })
    .setIssuer(server.issuer)
    .setAudience(server.service)
    .setNotBefore('0s')
    .setExpirationTime('5m')
    .sign(createPrivateKey(forger.key));
  const rejected = await https(registry, '/v2/team/app/manifests/v1', {
    headers: { Authorization: `Bearer ${forged}`, Accept: MEDIA_TYPES.ociManifest },
  });
  t.is(rejected.status, 401);
  t.regex(String(rejected.headers['www-authenticate']), /error="invalid_token"/);
});

test('token server: what a token holds, OAuth2 refresh tokens, counted requests, told failures', async (t) => {
  const registry = await startRegistry(t, { auth: 'token', tokenExpiresIn: 120 });
  const server = registry.tokenServer;
  const { username, password } = registry;
  if (server === undefined || username === undefined || password === undefined) return t.fail();
  await pushImage(registry, 'team/app', 'v1');

  // Each GET is one request: what a client's token cache is measured by.
  const before = server.requests.length;
  const scopes = ['repository:team/app:pull,delete', 'registry:catalog:*'];
  const answer = await fetchToken(registry, scopes, { username, password });
  t.is(server.requests.length, before + 1);
  t.deepEqual(server.requests.at(-1)?.scopes, scopes);
  const token = String(json(answer.json, 'answer').token);
  const header = decodeProtectedHeader(token);
  t.is(header.alg, 'RS256');
  t.is(header.x5c?.length, 1);
  const claims = decodeJwt(token);
  t.like(claims, { iss: server.issuer, aud: server.service, sub: username });
  t.is((claims.exp ?? 0) - (claims.nbf ?? 0), 120);
  t.deepEqual(claims.access, [
    { type: 'repository', name: 'team/app', actions: ['pull', 'delete'] },
    { type: 'registry', name: 'catalog', actions: ['*'] },
  ]);

  // OAuth2: a password grant with access_type=offline gives a refresh token, which gets tokens.
  const post = (form: Record<string, string>) =>
    https({ host: new URL(server.realm).host, ca: registry.ca }, '/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ service: server.service, client_id: 'test', ...form }).toString(),
    });
  const first = await post({
    grant_type: 'password',
    username,
    password,
    access_type: 'offline',
    scope: 'repository:team/app:pull',
  });
  const refreshToken = json(first.json, 'password grant').refresh_token;
  t.is(typeof refreshToken, 'string');
  const second = await post({
    grant_type: 'refresh_token',
    refresh_token: String(refreshToken),
    scope: 'repository:team/app:pull',
  });
  const bearer = {
    Authorization: `Bearer ${String(json(second.json, 'refresh grant').access_token)}`,
  };
  const res = await https(registry, '/v2/team/app/manifests/v1', {
    headers: { ...bearer, Accept: MEDIA_TYPES.ociManifest },
  });
  t.is(res.status, 200);
  t.is((await post({ grant_type: 'refresh_token', refresh_token: 'forged' })).status, 401);

  server.failWith = 503;
  t.is((await fetchToken(registry, scopes, { username, password })).status, 503);
  server.failWith = undefined;
  t.is((await fetchToken(registry, scopes, { username, password })).status, 200);
});

test('a multi-arch index lists each platform with its own image digest', async (t) => {
  const registry = await startRegistry(t, { auth: 'none' });
  const platforms = ['linux/amd64', 'linux/arm64'];
  const image = await pushImage(registry, 'multi', 'v1', { platforms });
  t.deepEqual(Object.keys(image.platformDigests), platforms);
  const res = await manifest(registry, 'multi', 'v1');
  t.is(res.headers['docker-content-digest'], image.digest);
  t.is(res.manifest.mediaType, MEDIA_TYPES.ociIndex);
  const listed = items(res.manifest.manifests, 'manifests').map((m) => {
    const p = json(m.platform, 'platform');
    return [`${String(p.os)}/${String(p.architecture)}`, m.digest, m.mediaType];
  });
  t.deepEqual(
    listed,
    platforms.map((p) => [p, image.platformDigests[p], MEDIA_TYPES.ociManifest]),
  );
  for (const digest of Object.values(image.platformDigests)) {
    t.is((await manifest(registry, 'multi', digest)).headers['docker-content-digest'], digest);
  }
});

const fallbackTag = (digest: string) => digest.replace(':', '-');

/** Signed offline: cosign never tried a network service (the sandbox's proxy is dead). */
async function signed(
  t: ExecutionContext,
  registry: TestRegistry,
  reference: string,
  cosign: 'v2' | 'v3',
): Promise<{ publicPem: string }> {
  const dir = await tempDir(t, 'imagegate-cosign-');
  const keys = await generateKeyPair(dir);
  const { stderr } = await signImage(registry, reference, keys, { cosign });
  t.notRegex(stderr, /proxyconnect|tuf|rekor|fulcio|trusted_root/i, stderr);
  return keys;
}

/** DSSE's pre-authentication encoding: what a DSSE signature covers. */
const pae = (type: string, payload: Buffer) =>
  Buffer.concat([Buffer.from(`DSSEv1 ${type.length} ${type} ${payload.length} `), payload]);

async function checkBundle(
  t: ExecutionContext,
  registry: TestRegistry,
  repo: string,
  referrer: string,
  subject: string,
  publicPem: string,
) {
  const res = await manifest(registry, repo, referrer);
  t.is(res.manifest.artifactType, BUNDLE_V03);
  t.is(json(res.manifest.subject, 'subject').digest, subject);
  const [layer, ...more] = items(res.manifest.layers, 'layers');
  t.is(more.length, 0);
  t.is(layer?.mediaType, BUNDLE_V03);
  const bundle = json(
    JSON.parse((await blob(registry, repo, String(layer?.digest))).toString()),
    'bundle',
  );
  t.log(`cosign 3 referrer manifest:\n${res.body}\nbundle:\n${JSON.stringify(bundle, null, 2)}`);
  t.is(bundle.mediaType, BUNDLE_V03);
  const envelope = json(bundle.dsseEnvelope, 'dsseEnvelope');
  const payload = Buffer.from(String(envelope.payload), 'base64');
  const statement = json(JSON.parse(payload.toString()), 'statement');
  t.is(envelope.payloadType, 'application/vnd.in-toto+json');
  t.is(statement.predicateType, 'https://sigstore.dev/cosign/sign/v1');
  t.deepEqual(items(statement.subject, 'subject')[0]?.digest, {
    sha256: subject.slice('sha256:'.length),
  });
  const [signature] = items(envelope.signatures, 'signatures');
  const valid = verify(
    'sha256',
    pae(String(envelope.payloadType), payload),
    createPublicKey(publicPem),
    Buffer.from(String(signature?.sig), 'base64'),
  );
  t.true(valid, 'the DSSE signature verifies with the cosign public key');
}

test('cosign 2 writes the legacy sha256-<hex>.sig tag with a simple-signing payload', async (t) => {
  const registry = await startRegistry(t, { auth: 'htpasswd' });
  const image = await pushImage(registry, 'signed', 'v1');
  const keys = await signed(t, registry, image.reference, 'v2');
  t.deepEqual(await tags(registry, 'signed'), [`${fallbackTag(image.digest)}.sig`, 'v1']);
  const res = await manifest(registry, 'signed', `${fallbackTag(image.digest)}.sig`);
  const [layer, ...more] = items(res.manifest.layers, 'layers');
  t.is(more.length, 0);
  t.is(layer?.mediaType, SIMPLE_SIGNING);
  const payload = await blob(registry, 'signed', String(layer?.digest));
  const annotations = json(layer?.annotations, 'annotations');
  t.log(`cosign 2 .sig manifest:\n${res.body}\npayload:\n${payload}`);
  const critical = json(json(JSON.parse(payload.toString()), 'payload').critical, 'critical');
  t.is(json(critical.image, 'image')['docker-manifest-digest'], image.digest);
  t.is(json(critical.identity, 'identity')['docker-reference'], image.repository);
  t.is(critical.type, 'cosign container image signature');
  const signature = Buffer.from(
    String(annotations['dev.cosignproject.cosign/signature']),
    'base64',
  );
  t.true(verify('sha256', payload, createPublicKey(keys.publicPem), signature));
});

test('cosign 3 on a registry with the referrers API: listed by GET /v2/<repo>/referrers/<digest>', async (t) => {
  const registry = await startRegistry(t, { auth: 'none', referrers: true });
  const image = await pushImage(registry, 'signed', 'v1');
  const keys = await signed(t, registry, image.reference, 'v3');
  const res = await pull(registry, 'signed', `referrers/${image.digest}`, MEDIA_TYPES.ociIndex);
  t.is(res.status, 200);
  t.is(res.headers['content-type'], MEDIA_TYPES.ociIndex);
  t.log(`referrers of ${image.digest}:\n${res.body}`);
  const [referrer, ...more] = items(json(res.json, 'referrers').manifests, 'manifests');
  t.is(more.length, 0);
  t.is(referrer?.mediaType, MEDIA_TYPES.ociManifest);
  t.is(referrer?.artifactType, BUNDLE_V03);
  // No tag fallback where the API exists.
  t.deepEqual(await tags(registry, 'signed'), ['v1']);
  await checkBundle(t, registry, 'signed', String(referrer?.digest), image.digest, keys.publicPem);

  // The artifactType filter, applied and said to be.
  const path = (type: string) =>
    `referrers/${image.digest}?artifactType=${encodeURIComponent(type)}`;
  const bundles = await pull(registry, 'signed', path(BUNDLE_V03), MEDIA_TYPES.ociIndex);
  t.is(bundles.headers['oci-filters-applied'], 'artifactType');
  t.is(items(json(bundles.json, 'referrers').manifests, 'manifests').length, 1);
  const sboms = await pull(registry, 'signed', path('application/spdx+json'), MEDIA_TYPES.ociIndex);
  t.deepEqual(json(sboms.json, 'referrers').manifests, []);
});

test('rawReferrers: go-containerregistry lists cosign 3 bundles with the config media type', async (t) => {
  const registry = await startRegistry(t, { auth: 'none', referrers: true, rawReferrers: true });
  const image = await pushImage(registry, 'signed', 'v1');
  await signed(t, registry, image.reference, 'v3');
  const res = await pull(
    registry,
    'signed',
    `referrers/${image.digest}?artifactType=x`,
    MEDIA_TYPES.ociIndex,
  );
  t.is(res.headers['oci-filters-applied'], undefined);
  const [referrer] = items(json(res.json, 'referrers').manifests, 'manifests');
  t.is(referrer?.artifactType, 'application/vnd.oci.empty.v1+json');
});

test('cosign 3 on the distribution registry: no referrers API, so the sha256-<hex> tag index', async (t) => {
  const registry = await startRegistry(t, { auth: 'token' });
  const image = await pushImage(registry, 'signed', 'v1');
  const keys = await signed(t, registry, image.reference, 'v3');
  t.is(
    (await pull(registry, 'signed', `referrers/${image.digest}`, MEDIA_TYPES.ociIndex)).status,
    404,
  );
  t.deepEqual(await tags(registry, 'signed'), [fallbackTag(image.digest), 'v1']);
  const index = await manifest(registry, 'signed', fallbackTag(image.digest));
  t.log(`tag ${fallbackTag(image.digest)}:\n${index.body}`);
  t.is(index.manifest.mediaType, MEDIA_TYPES.ociIndex);
  const [referrer, ...more] = items(index.manifest.manifests, 'manifests');
  t.is(more.length, 0);
  await checkBundle(t, registry, 'signed', String(referrer?.digest), image.digest, keys.publicPem);
});

for (const referrers of [false, true]) {
  const kind = referrers ? 'oci-registry' : 'distribution registry';
  test(`stop() refuses connections; start() serves the same content on the same port (${kind})`, async (t) => {
    const registry = await startRegistry(t, { auth: 'none', referrers });
    const image = await pushImage(registry, 'kept', 'v1', {
      platforms: ['linux/amd64', 'linux/arm64'],
    });
    if (referrers) await signed(t, registry, image.reference, 'v3');
    await registry.stop();
    const down = await t.throwsAsync(https(registry, '/v2/'));
    t.is(errorCode(down), 'ECONNREFUSED');
    await registry.start();
    const res = await manifest(registry, 'kept', 'v1');
    t.is(res.headers['docker-content-digest'], image.digest);
    for (const digest of Object.values(image.platformDigests)) {
      t.is((await manifest(registry, 'kept', digest)).status, 200);
    }
    if (referrers) {
      const listed = await pull(
        registry,
        'kept',
        `referrers/${image.digest}`,
        MEDIA_TYPES.ociIndex,
      );
      t.is(items(json(listed.json, 'referrers').manifests, 'manifests').length, 1);
    }
  });
}

test('a .dockerconfigjson for the registry is what crane needs to pull', async (t) => {
  const registry = await startRegistry(t, { auth: 'htpasswd' });
  const image = await pushImage(registry, 'private', 'v1');
  const file = await writeDockerConfigJson(t, registry);
  const env = await toolSandbox(t, registry.caFile);
  const digest = ['digest', `${registry.host}/private:v1`];
  await t.throwsAsync(runTool(registry.tools.crane, digest, env), { message: /401 Unauthorized/ });
  const config = join(String(env.DOCKER_CONFIG), 'config.json');
  await mkdir(String(env.DOCKER_CONFIG), { recursive: true });
  await writeFile(config, await readFile(file));
  t.is((await runTool(registry.tools.crane, digest, env)).stdout.trim(), image.digest);
});
