/**
 * Images pushed with crane: one small generated layer on an empty OCI base (`crane append
 * --oci-empty-base`), its config given a platform (`crane mutate --set-platform`); for
 * several platforms, one such image each, pushed by digest, then an OCI index of them
 * (`crane index append`, which reads each platform from the image's config). crane runs
 * in the registry's sandbox (registry.env): trusting its CA, logged in to it.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tarBytes } from './bundles.ts';
import type { TestRegistry } from './registry.ts';
import { runTool } from './registry-tools.ts';

export interface PushedImage {
  /** `host/repo` */
  readonly repository: string;
  /** What the tag points at: the image manifest's, or the index's, digest. */
  readonly digest: string;
  /** platform ("linux/arm64") → its image manifest's digest; one entry for a single image. */
  readonly platformDigests: Readonly<Record<string, string>>;
  /** `host/repo@sha256:…` */
  readonly reference: string;
}

type Registry = Pick<TestRegistry, 'host' | 'env' | 'tools'>;

/** An uncompressed tar with one file whose content is unique to this call. */
async function layerTar(path: string, label: string): Promise<void> {
  const content = `${label} ${randomBytes(8).toString('hex')}\n`;
  await writeFile(
    path,
    await tarBytes([{ name: 'imagegate-test.txt', content, mtime: new Date(0) }]),
  );
}

/** `host/repo@sha256:…` printed by crane → the digest. */
function digestOf(stdout: string): string {
  const digest = /@(sha256:[0-9a-f]{64})\s*$/.exec(stdout.trim())?.[1];
  if (digest === undefined) throw new Error(`crane printed no digest: ${stdout}`);
  return digest;
}

export async function pushImage(
  registry: Registry,
  repo: string,
  tag: string,
  options: { platforms?: readonly string[] } = {},
): Promise<PushedImage> {
  const crane = (args: readonly string[]) => runTool(registry.tools.crane, args, registry.env);
  const repository = `${registry.host}/${repo}`;
  const target = `${repository}:${tag}`;
  const platforms = options.platforms ?? [];
  const work = await mkdtemp(join(tmpdir(), 'imagegate-image-'));
  try {
    const platformDigests: Record<string, string> = {};
    for (const platform of platforms.length === 0 ? ['linux/amd64'] : platforms) {
      const layer = join(work, `${platform.replaceAll('/', '-')}.tar`);
      await layerTar(layer, `${target} ${platform}`);
      // append needs a tag to push to; the final tag is moved to the index below.
      await crane(['append', '--oci-empty-base', '-f', layer, '-t', target]);
      const mutated = ['mutate', target, '--set-platform', platform];
      const out = await crane(
        platforms.length === 0 ? [...mutated, '-t', target] : [...mutated, '--repo', repository],
      );
      platformDigests[platform] = digestOf(out.stdout);
    }
    let digest = Object.values(platformDigests)[0] ?? '';
    if (platforms.length > 0) {
      const manifests = Object.values(platformDigests).flatMap((d) => ['-m', `${repository}@${d}`]);
      digest = digestOf((await crane(['index', 'append', ...manifests, '-t', target])).stdout);
    }
    return { repository, digest, platformDigests, reference: `${repository}@${digest}` };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
