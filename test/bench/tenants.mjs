/**
 * One tenant's review with 3,000 distinct tags beside another tenant's benign reviews, on
 * a registry that takes 20 ms per answer (the real distribution registry behind the fault
 * proxy's `slow` mode), with pinDigests and signatures on:
 *
 *   alone    benign Pods (namespace shop), one fresh tag each: mutate (the tag pinned) and
 *            validate (the signature verified), one after the other
 *   beside   the same, while another namespace (ci) sends a Pod of 3,000 distinct tags
 *            again and again (maxLookups raised to 4,096 so that it is queued, not refused)
 *   refused  with the default maxLookups (256) the 3,000-tag Pod is refused before any
 *            lookup: how long that answer takes
 *
 * The ratio of the benign p50s is what the fair queues buy (docs/registries.md); on main
 * 4cf58ec (first come, first served) the benign Pod missed its 3 s budget.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startImagegate } from './http.mjs';
import { httpsJson, log, percentile, podCreateReview, ROOT } from './lib.mjs';

const dist = (path) => import(join(ROOT, 'dist', path));

/** A Pod CREATE in `namespace` with one container per image, pulled Always. */
const pod = (namespace, images, uid) =>
  podCreateReview(
    images.map((image, i) => ({ name: `c${i}`, image, imagePullPolicy: 'Always' })),
    { uid, name: 'app', namespace },
  );

const uid = (n) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
const p50 = (values) =>
  percentile(
    [...values].sort((a, b) => a - b),
    50,
  );

export async function runTenants({ tmp, tls, quick }) {
  const { Teardowns } = await dist('test/helpers/teardown.js');
  const { startRegistry, pushImage, signImage, generateKeyPair } = await dist(
    'test/helpers/registry.js',
  );
  const { runTool } = await dist('test/helpers/registry-tools.js');
  const { startFaultProxy } = await dist('test/helpers/fault-proxy.js');
  const teardowns = new Teardowns();
  const gateways = [];
  teardowns.teardown(async () => {
    for (const gateway of gateways) await gateway.kill();
  });
  const dir = join(tmp, 'tenants-bench');
  mkdirSync(dir, { recursive: true });
  const benign = quick ? 8 : 30;
  const hostileTags = 3000;
  try {
    const registry = await startRegistry(teardowns, { auth: 'none' });
    const key = await generateKeyPair(dir);
    const image = await pushImage(registry, 'prod/api', 'v1');
    await signImage(registry, image.reference, key, { cosign: 'v3' });
    // Fresh tags of the signed image, one per benign review: each a cache miss.
    log(`tenants: tagging ${2 * benign} benign tags`);
    for (const phase of ['a', 'b']) {
      for (let i = 0; i < benign; i++) {
        await runTool(
          registry.tools.crane,
          ['tag', `${registry.host}/prod/api:v1`, `${phase}${i}`],
          registry.env,
        );
      }
    }
    const proxy = await startFaultProxy(teardowns, registry);
    proxy.set({ kind: 'slow', delayMs: 20 });
    const caFile = join(dir, 'proxy-ca.crt');
    writeFileSync(caFile, proxy.ca);
    const config = (extra) =>
      [
        `trustedRegistries: ["${proxy.host}"]`,
        'pinDigests: pods',
        `signatures: [{images: ["${proxy.host}/prod"], keys: [${key.publicKey}]}]`,
        extra,
      ].join('\n');
    const start = async (name, extra) => {
      const file = join(dir, `${name}.yaml`);
      writeFileSync(file, config(extra));
      const gateway = await startImagegate(`imagegate-tenants-${name}`, {
        tmp,
        cert: tls.certFile,
        key: tls.keyFile,
        logLevel: 'warn',
        args: ['--config', file, '--registry-ca', caFile],
      });
      gateways.push(gateway);
      return gateway;
    };
    const post = (gateway, endpoint, body) =>
      httpsJson(gateway.url(endpoint), { ca: tls.ca, method: 'POST', body: JSON.stringify(body) });

    /** One benign Pod, pinned then verified: its time, and whether both came out right. */
    const benignReview = async (gateway, tag, n) => {
      const started = performance.now();
      const review = pod('shop', [`${proxy.host}/prod/api:${tag}`], uid(n));
      const mutated = await post(gateway, 'mutate', review);
      const patch = JSON.parse(
        Buffer.from(mutated.json?.response?.patch ?? 'W10=', 'base64').toString(),
      );
      const pinned = patch.find((op) => String(op.path).endsWith('/image'))?.value;
      const validated = await post(
        gateway,
        'validate',
        pod('shop', [pinned ?? `${proxy.host}/prod/api:${tag}`], uid(n)),
      );
      return {
        ms: performance.now() - started,
        pinned: pinned === `${proxy.host}/prod/api:${tag}@${image.digest}`,
        verified: validated.json?.response?.allowed === true,
        message: validated.json?.response?.status?.message ?? '',
      };
    };

    const gateway = await start('fair', 'maxLookups: 4096');
    // The signature of the one digest is cached by the first: what is measured is pinning,
    // the lookups that queue, and the verification it is checked against.
    await benignReview(gateway, 'v1', 0);
    log(`tenants: ${benign} benign reviews alone`);
    const alone = [];
    for (let i = 0; i < benign; i++) alone.push(await benignReview(gateway, `a${i}`, i + 1));

    log(`tenants: ${benign} benign reviews beside a ${hostileTags}-tag review, again and again`);
    const hostileBody = pod(
      'ci',
      Array.from({ length: hostileTags }, (_, i) => `${proxy.host}/prod/flood:h${i}`),
      uid(9999),
    );
    let flooding = true;
    const hostile = { sent: 0, msEach: [] };
    const flood = (async () => {
      while (flooding) {
        const started = performance.now();
        await post(gateway, 'mutate', hostileBody);
        hostile.sent++;
        hostile.msEach.push(performance.now() - started);
      }
    })();
    // Let the flood fill the queue first.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const beside = [];
    for (let i = 0; i < benign; i++) beside.push(await benignReview(gateway, `b${i}`, 100 + i));
    flooding = false;
    await flood;

    log('tenants: the same Pod with the default maxLookups');
    const bounded = await start('bounded', '');
    const refusedAt = performance.now();
    const refused = await post(bounded, 'mutate', hostileBody);
    const refusal = {
      ms: performance.now() - refusedAt,
      message: refused.json?.response?.status?.message ?? '',
    };

    const ok = (runs) => runs.every((r) => r.pinned && r.verified);
    return {
      benign,
      hostileTags,
      registryDelayMs: 20,
      alone: { p50Ms: p50(alone.map((r) => r.ms)), allPinnedAndVerified: ok(alone) },
      beside: {
        p50Ms: p50(beside.map((r) => r.ms)),
        allPinnedAndVerified: ok(beside),
        failures: beside.filter((r) => !(r.pinned && r.verified)).map((r) => r.message),
      },
      hostile: { reviews: hostile.sent, p50Ms: p50(hostile.msEach) },
      refusal,
    };
  } finally {
    await teardowns.run();
  }
}
