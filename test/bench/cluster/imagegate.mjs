/**
 * imagegate for `make bench-cluster`: `imagegate serve` from dist/ on the committed
 * bundle, as deploy/base runs it (one process, --log-level=info, a 256 MiB heap), with a
 * configuration that is the bench policy (test/bench/cluster/cases.mjs): the two trusted
 * registries; denying latest and untagged images and forcing Always are its defaults.
 * With `registry`, the same plus `signatures` and `pinDigests` for the local registry.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startImagegate } from '../http.mjs';
import { TRUSTED } from './cases.mjs';
import { apply, loopbackWebhooks, servingCertificate, untilEnforcing } from './kube.mjs';

export const name = 'imagegate';

export function configFor(registry) {
  const lines = [
    `trustedRegistries: [${[...TRUSTED, ...(registry ? [registry.host] : [])].join(', ')}]`,
  ];
  if (registry) {
    lines.push(
      'pinDigests: all',
      'signatures:',
      `  - images: [${registry.host}]`,
      `    keys: [${registry.publicKeyFile}]`,
    );
  }
  return `${lines.join('\n')}\n`;
}

export async function start({ work, plane, registry }) {
  const certs = await servingCertificate(join(work, 'imagegate-certs'), 'imagegate');
  const config = join(work, 'imagegate-config.yaml');
  await writeFile(config, configFor(registry));
  const gateway = await startImagegate('imagegate', {
    tmp: work,
    cert: join(certs.dir, 'tls.crt'),
    key: join(certs.dir, 'tls.key'),
    logLevel: 'info',
    nodeArgs: ['--max-old-space-size=256'],
    args: ['--config', config, ...(registry ? ['--registry-ca', registry.caFile] : [])],
  });
  try {
    const port = new URL(gateway.base).port;
    await apply(
      plane,
      loopbackWebhooks('imagegate', {
        port,
        caPem: certs.caPem,
        validatePath: '/v1/validate',
        mutatePath: '/v1/mutate',
      }),
    );
    // With pinDigests every image is looked up, so the allowed probe must exist: a signed
    // image of the bench registry (pinDigests refuses what no registry answers for).
    await untilEnforcing(plane, 'imagegate', { proc: gateway, allowedImage: registry?.probeImage });
  } catch (error) {
    await gateway.kill();
    throw error;
  }
  return {
    pids: () => gateway.pids,
    stop: () => gateway.kill(),
    notes: [`imagegate serve --config with: ${configFor(registry).trim().replaceAll('\n', '; ')}`],
  };
}
