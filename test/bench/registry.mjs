/**
 * Registry facts (pinDigests, signatures) against the real distribution registry from
 * `make registry-tools`, images pushed by crane and signed by cosign 3:
 *
 *   warm    the same reviews with the features off and on (warm caches), each over
 *           HTTPS with 64 connections: the ratio is what pinning and signatures cost once
 *           their facts are cached
 *   cold    one cache miss (tag resolved, signature found and verified) against the
 *           registry's own round trip (a HEAD of the manifest on a kept-alive connection)
 *   shared  64 concurrent reviews of a tag nothing has resolved: how many registry
 *           requests they make (imagegate_registry_requests_total before and after)
 *   split   in-process, the thread's work per warm review off and on, and how much of the
 *           difference is the policy's own evaluation with the facts on the images (the
 *           decision entrypoint alone) and how much the facts step around it
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { load, startImagegate } from './http.mjs';
import { httpJson, httpsJson, log, percentile, podCreateReview, ROOT } from './lib.mjs';

const dist = (path) => import(join(ROOT, 'dist', path));

function podReview(images, uid = '00000000-0000-4000-8000-00000000000a') {
  const containers = images.map((image, i) => ({
    name: `c${i}`,
    image,
    imagePullPolicy: 'Always',
  }));
  return podCreateReview(containers, { uid, name: 'api' });
}

async function registryRequests(health) {
  const text = (await httpJson(`${health}/metrics`)).text ?? '';
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('imagegate_registry_requests_total{'))
      total += Number(line.split(' ').at(-1));
  }
  return total;
}

const p50 = (values) =>
  percentile(
    [...values].sort((a, b) => a - b),
    50,
  );

export async function runRegistry({ tmp, tls, quick }) {
  const { Teardowns } = await dist('test/helpers/teardown.js');
  const { startRegistry, pushImage, signImage, generateKeyPair } = await dist(
    'test/helpers/registry.js',
  );
  const teardowns = new Teardowns();
  const gateways = {};
  teardowns.teardown(async () => {
    for (const gateway of Object.values(gateways)) await gateway.kill();
  });
  const dir = join(tmp, 'registry-bench');
  mkdirSync(dir, { recursive: true });
  try {
    const registry = await startRegistry(teardowns, { auth: 'none' });
    const key = await generateKeyPair(dir);
    const images = [];
    for (const repo of ['prod/api', 'prod/worker', 'prod/proxy']) {
      const image = await pushImage(registry, repo, 'v1');
      await signImage(registry, image.reference, key, { cosign: 'v3' });
      images.push(image);
    }
    const caFile = join(dir, 'registry-ca.crt');
    writeFileSync(caFile, registry.ca);
    const configs = {
      off: `trustedRegistries: ["${registry.host}"]\n`,
      on: `trustedRegistries: ["${registry.host}"]\npinDigests: pods\nsignatures: [{images: ["${registry.host}/prod"], keys: [${key.publicKey}]}]\n`,
    };
    const bodies = {
      // What each webhook sees: tags before mutation, pinned references after it.
      mutate: podReview(images.map((i) => `${i.repository}:v1`)),
      validate: podReview(images.map((i) => `${i.repository}:v1@${i.digest}`)),
    };
    for (const [name, body] of Object.entries(bodies)) {
      writeFileSync(join(dir, `${name}.json`), JSON.stringify(body));
    }
    const plan = quick ? { warmup: 0.5, duration: 1 } : { warmup: 2, duration: 6 };
    const warm = [];
    for (const [mode, config] of Object.entries(configs)) {
      writeFileSync(join(dir, `${mode}.yaml`), config);
      gateways[mode] = await startImagegate(`imagegate-registry-${mode}`, {
        tmp,
        cert: tls.certFile,
        key: tls.keyFile,
        logLevel: 'warn',
        args: ['--config', join(dir, `${mode}.yaml`), '--registry-ca', caFile],
      });
    }
    for (const endpoint of ['mutate', 'validate']) {
      for (const mode of ['off', 'on']) {
        const gateway = gateways[mode];
        // One review first: its facts are cached for the measured ones.
        await httpsJson(gateway.url(endpoint), {
          ca: tls.ca,
          method: 'POST',
          body: JSON.stringify(bodies[endpoint]),
        });
        log(`registry: ${endpoint}, features ${mode}, 64 connections`);
        const result = await load({
          url: gateway.url(endpoint),
          body: join(dir, `${endpoint}.json`),
          connections: 64,
          ...plan,
          pids: gateway.pids,
        });
        warm.push({ ...result, endpoint, features: mode });
      }
    }

    // 64 concurrent reviews of a tag nothing has resolved.
    const fresh = await pushImage(registry, 'prod/api', 'v2');
    await signImage(registry, fresh.reference, key, { cosign: 'v3' });
    const before = await registryRequests(gateways.on.health);
    const answers = await Promise.all(
      Array.from({ length: 64 }, (_, i) =>
        httpsJson(gateways.on.url('mutate'), {
          ca: tls.ca,
          method: 'POST',
          body: JSON.stringify(
            podReview(
              [`${fresh.repository}:v2`],
              `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
            ),
          ),
        }),
      ),
    );
    const pinnedAll = answers.every((a) =>
      Buffer.from(a.json?.response?.patch ?? '', 'base64')
        .toString()
        .includes(fresh.digest),
    );
    const shared = {
      reviews: 64,
      pinnedAll,
      registryRequests: (await registryRequests(gateways.on.health)) - before,
    };
    for (const gateway of Object.values(gateways)) await gateway.kill();

    // A cold lookup in-process against the registry's own round trip.
    const { addressPolicy } = await dist('src/registry/addresses.js');
    const { RegistryClient } = await dist('src/registry/client.js');
    const { RegistryHttp } = await dist('src/registry/http.js');
    const { FactSource } = await dist('src/registry/facts.js');
    const { loadKey } = await dist('src/registry/keys.js');
    const { keysOnly } = await dist('src/registry/sigstore/verification.js');
    const policy = addressPolicy([registry.host]);
    const http = new RegistryHttp({
      policy: () => policy,
      ca: [registry.ca],
      requestTimeoutMs: 2000,
    });
    const client = new RegistryClient({ http, credentials: () => new Map() });
    const signer = await loadKey(key.publicKey);
    // The entry the facts request names: the key, no trust root (as configs.on says).
    const verification = () => keysOnly('k', [signer]);
    const rounds = quick ? 10 : 60;
    const rtt = [];
    for (let i = 0; i < rounds; i++) {
      const started = performance.now();
      await client.resolve(registry.host, 'prod/api', 'v1', AbortSignal.timeout(2000));
      rtt.push(performance.now() - started);
    }
    const cold = { tag: [], signature: [] };
    for (let i = 0; i < rounds; i++) {
      // A fresh cache over the same warm connections: one miss of each kind.
      const facts = new FactSource({ client, policy: () => policy, verification });
      const request = {
        index: 0,
        registry: registry.host,
        repository: 'prod/api',
        tag: 'v1',
        digest: '',
        verification: 'k',
      };
      const started = performance.now();
      const got = (await facts.gather([{ ...request, verification: '' }], 3000)).get(0);
      cold.tag.push(performance.now() - started);
      if (got?.digest === undefined) throw new Error(`cold lookup failed: ${JSON.stringify(got)}`);
      const again = new FactSource({ client, policy: () => policy, verification });
      const signedAt = performance.now();
      const checked = (await again.gather([request], 3000)).get(0);
      cold.signature.push(performance.now() - signedAt);
      if (checked?.signature?.verified !== true)
        throw new Error(`verification failed: ${JSON.stringify(checked)}`);
    }
    const split = await splitWarm({ dir, client, policy, quick });
    await http.close();
    return {
      warm,
      shared,
      split,
      cold: {
        rounds,
        registryRttMs: p50(rtt),
        tagMs: p50(cold.tag),
        signatureMs: p50(cold.signature),
      },
    };
  } finally {
    await teardowns.run();
  }
}

/**
 * Where the warm on/off difference goes, in-process on this process's one thread (what an
 * evaluation thread does per review): the review off and on (facts gathered once from the
 * registry, then served as a thread's memo serves them), and the decision entrypoint alone
 * off and on (facts already on the images): the policy's own share of the difference.
 * Medians of interleaved rounds of CPU time.
 */
async function splitWarm({ dir, client, policy, quick }) {
  const { loadPolicy } = await dist('src/policy/loader.js');
  const { reviewBytes } = await dist('src/server/review-core.js');
  const { attachFacts, factsStep, LookupMemo } = await dist('src/server/facts-step.js');
  const { parseAdmissionReview } = await dist('src/review/admission-review.js');
  const { admissionInput } = await dist('src/review/policy-input.js');
  const { FactSource } = await dist('src/registry/facts.js');
  const { defaultBundlePath } = await dist('src/shared/paths.js');
  const bundle = defaultBundlePath();
  const off = (await loadPolicy({ bundle, config: join(dir, 'off.yaml') })).engine;
  const on = (await loadPolicy({ bundle, config: join(dir, 'on.yaml') })).engine;
  const source = new FactSource({
    client,
    policy: () => policy,
    verification: (id) => {
      const entry = on.verifications.get(id);
      if (entry === undefined) throw new Error(`no signatures entry ${id}`);
      return entry;
    },
  });
  const [rounds, per] = quick ? [3, 200] : [15, 1000];
  const cpuUs = () => {
    const { user, system } = process.cpuUsage();
    return user + system;
  };
  const result = {};
  for (const endpoint of ['mutate', 'validate']) {
    const bytes = readFileSync(join(dir, `${endpoint}.json`));
    const parsed = parseAdmissionReview(JSON.parse(bytes.toString('utf8')));
    const input = admissionInput(parsed.apiVersion, parsed.request);
    const lookups = on.decided(input, endpoint).lookups;
    const gathered = await source.gather(lookups, 3000);
    const warm = async (requests) => ({
      facts: new Map(requests.map((r) => [r.index, gathered.get(r.index)])),
      until: Date.now() + 3_600_000,
    });
    const step = factsStep(warm, new LookupMemo());
    const withFacts = attachFacts(input, gathered);
    const quiet = { decisionLines: false };
    const variants = {
      reviewOff: () => reviewBytes(off, endpoint, bytes, undefined, quiet),
      reviewOn: () => reviewBytes(on, endpoint, bytes, step, quiet),
      decisionOff: () => off.decision(input, endpoint),
      decisionOn: () => on.decision(withFacts, endpoint),
    };
    const times = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
    for (const run of Object.values(variants)) for (let i = 0; i < per; i++) await run();
    for (let round = 0; round < rounds; round++) {
      for (const [name, run] of Object.entries(variants)) {
        const started = cpuUs();
        for (let i = 0; i < per; i++) await run();
        times[name].push((cpuUs() - started) / per);
      }
    }
    result[endpoint] = {
      lookups: lookups.length,
      ...Object.fromEntries(Object.entries(times).map(([k, v]) => [`${k}Us`, p50(v)])),
    };
  }
  return { rounds, per, ...result };
}
