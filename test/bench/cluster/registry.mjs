/**
 * Step 3 of `make bench-cluster`: registry features through the API server. One real
 * registry (CNCF distribution, TLS from a throwaway CA) holds IMAGES images pushed by
 * crane, each signed by cosign 2.6.5 (the legacy `.sig` format every verifier reads), plus
 * one unsigned image and one signed with another key. imagegate (`signatures` +
 * `pinDigests: all`) and Kyverno (`verifyImages` with the same key, `mutateDigest`) each on
 * a fresh control plane:
 *
 *   verdicts  signed → created with the digest pinned; unsigned and wrong key → refused
 *   cold      the first pod of each signed image, one at a time: every lookup and
 *             verification is paid (what a rollout of new images costs)
 *   warm      the same pods again (what every later pod of those images costs), then load
 *             at 8 concurrent clients on one image
 *
 * Registry requests are counted from the registry's access log, per phase.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { log, percentile, processCpu, ROOT, statusBytes } from '../lib.mjs';
import { NAMESPACE, podOf } from './cases.mjs';
import { kubeClient } from './client.mjs';
import { must, startLoad } from './kube.mjs';

const dist = (path) => import(join(ROOT, 'dist', path));
const HERE = join(ROOT, 'test', 'bench', 'cluster');

/** Requests the registry logged (distribution logs one "response completed" line each). */
const requestsIn = (logs) => (logs.match(/response completed/g) ?? []).length;

async function sequential(client, images, prefix) {
  const rows = [];
  for (const [i, image] of images.entries()) {
    const pod = podOf(`${prefix}-${i}`, { app: image });
    const r = await client.createPod(pod);
    rows.push(r);
  }
  const us = rows.map((r) => r.us).sort((a, b) => a - b);
  return {
    pods: rows.length,
    created: rows.filter((r) => r.status === 201).length,
    firstError: rows.find((r) => r.status !== 201)?.body.slice(0, 500),
    p50Us: percentile(us, 50),
    maxUs: us.at(-1),
    totalUs: us.reduce((s, v) => s + v, 0),
  };
}

async function measure(name, { tmp, registry, images, extra, quick }) {
  const { startControlPlane } = await dist('test/e2e/helpers/control-plane.js');
  const work = join(tmp, `${name}-registry`);
  mkdirSync(work, { recursive: true });
  const plane = await startControlPlane({ dir: join(work, 'control-plane') });
  let started;
  const client = kubeClient(plane.kubeconfig, { maxSockets: 1 });
  try {
    await must(plane, ['create', 'namespace', NAMESPACE]);
    const backend = await import(join(HERE, `${name}.mjs`));
    log(`registry: ${name}: starting with ${registry.context.host}`);
    started = await backend.start({
      plane,
      work,
      namespace: NAMESPACE,
      registry: registry.context,
    });
    const cpu = () => started.pids().reduce((s, p) => s + processCpu(p), 0);

    const verdict = async (what, image, expectAllowed) => {
      const r = await client.createPod(podOf(`verdict-${what}`, { app: image }));
      const stored = r.status === 201 ? JSON.parse(r.body).spec.containers[0].image : undefined;
      return {
        what,
        image,
        expectAllowed,
        allowed: r.status === 201,
        storedImage: stored,
        message: r.status === 201 ? '' : (JSON.parse(r.body).message ?? r.body).slice(0, 400),
      };
    };
    const verdicts = [
      await verdict('signed', extra.signedSpare, true),
      await verdict('unsigned', extra.unsigned, false),
      await verdict('other-key', extra.otherKey, false),
    ];

    const phase = async (label, fn) => {
      const before = { requests: requestsIn(registry.logs()), cpu: cpu() };
      const result = await fn();
      return {
        label,
        ...result,
        registryRequests: requestsIn(registry.logs()) - before.requests,
        backendCpuS: cpu() - before.cpu,
      };
    };
    log(`registry: ${name}: cold (${images.length} new images)`);
    const cold = await phase('cold', () => sequential(client, images, 'cold'));
    log(`registry: ${name}: warm`);
    const warm = await phase('warm', () => sequential(client, images, 'warm'));
    const warmLoad = await phase(
      'warm load',
      () =>
        startLoad(plane, {
          concurrency: 8,
          durationS: quick ? 2 : 8,
          warmupS: 1,
          prefix: 'warm-load',
          image: images[0],
        }).done,
    );
    return {
      name,
      notes: started.notes ?? [],
      verdicts,
      cold,
      warm,
      warmLoad,
      rssBytes: started.pids().reduce((s, p) => s + (statusBytes(p, 'VmRSS') || 0), 0),
    };
  } finally {
    client.close();
    await started?.stop().catch(() => {});
    await plane.stop();
  }
}

export async function runRegistryComparison({ tmp, quick, backends }) {
  const names = ['imagegate', 'kyverno'].filter((n) => backends.includes(n));
  if (names.length === 0) return undefined;
  const { startRegistry, pushImage, signImage, generateKeyPair } = await dist(
    'test/helpers/registry.js',
  );
  const { Teardowns } = await dist('test/helpers/teardown.js');
  const teardowns = new Teardowns();
  try {
    const dir = join(tmp, 'registry-keys');
    mkdirSync(join(dir, 'other'), { recursive: true });
    const registry = await startRegistry(teardowns, { auth: 'none' });
    const key = await generateKeyPair(dir);
    const otherKey = await generateKeyPair(join(dir, 'other'));
    const count = quick ? 4 : 20;
    log(`registry: pushing and signing ${count + 4} images (crane, cosign 2.6.5)`);
    const images = [];
    const pushSigned = async (repo, signer) => {
      const pushed = await pushImage(registry, repo, '1.0');
      if (signer) await signImage(registry, pushed.reference, signer, { cosign: 'v2' });
      return `${pushed.repository}:1.0`;
    };
    for (let i = 0; i < count; i++) images.push(await pushSigned(`bench/app-${i}`, key));
    const extra = {
      signedSpare: await pushSigned('bench/spare', key),
      unsigned: await pushSigned('bench/unsigned', undefined),
      otherKey: await pushSigned('bench/other-key', otherKey),
      probe: await pushSigned('bench/probe', key),
    };
    const caFile = join(dir, 'registry-ca.crt');
    writeFileSync(caFile, registry.ca);
    const context = {
      host: registry.host,
      caFile,
      publicKeyFile: key.publicKey,
      publicKeyPem: key.publicPem,
      // What a backend's start-up probe may admit (signed; not one of the measured images).
      probeImage: extra.probe,
    };
    const results = [];
    for (const name of names) {
      try {
        results.push(
          await measure(name, {
            tmp,
            registry: { context, logs: () => registry.logs() },
            images,
            extra,
            quick,
          }),
        );
      } catch (error) {
        log(`registry: ${name} failed: ${error.stack ?? error}`);
        results.push({ name, error: String(error.message ?? error).slice(0, 4000) });
      }
    }
    return {
      images: count,
      cosign: 'v2.6.5 (legacy .sig)',
      registry: 'distribution 3.1.2',
      results,
    };
  } finally {
    await teardowns.run();
  }
}
