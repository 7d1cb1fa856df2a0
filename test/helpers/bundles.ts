/** Bundles for tests: the committed one, repacked variants, and small ones built by real OPA. */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { type Bundle, readBundleArchive } from '../../src/policy/bundle.ts';
import { isRecord } from '../../src/shared/json.ts';
import { defaultBundlePath, packageRoot } from '../../src/shared/paths.ts';

const run = promisify(execFile);

export const OPA = join(packageRoot(), '.tools', 'bin', 'opa');

export async function committedBundleBytes(): Promise<Buffer> {
  return readFile(defaultBundlePath());
}

export async function committedBundle(): Promise<Bundle> {
  return readBundleArchive(await committedBundleBytes(), 'bundles/imagegate.tar.gz');
}

/** An uncompressed tar of the given entries (tar-stream's headers and contents). */
export async function tarBytes(
  entries: readonly {
    readonly name: string;
    readonly content: Buffer | string;
    readonly mtime?: Date;
  }[],
): Promise<Buffer> {
  const tar = pack();
  const chunks: Buffer[] = [];
  tar.on('data', (chunk: unknown) => {
    if (Buffer.isBuffer(chunk)) chunks.push(chunk);
  });
  const done = new Promise<void>((resolve, reject) => {
    tar.on('end', resolve);
    tar.on('error', reject);
  });
  for (const { name, content, mtime } of entries) {
    tar.entry({ name, ...(mtime === undefined ? {} : { mtime }) }, content);
  }
  tar.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** A gzipped tar with the given files, names written with OPA's leading "/". */
export async function packBundle(files: ReadonlyMap<string, Buffer | string>): Promise<Buffer> {
  return gzipSync(
    await tarBytes([...files].map(([name, content]) => ({ name: `/${name}`, content }))),
  );
}

/** Builds a wasm bundle from Rego sources with the project's pinned OPA CLI. */
export async function buildBundle(
  sources: Record<string, string>,
  entrypoints: readonly string[],
): Promise<Buffer> {
  if (!existsSync(OPA)) throw new Error(`${OPA} is missing: run \`make deps\``);
  const dir = await mkdtemp(join(tmpdir(), 'imagegate-bundle-'));
  const src = join(dir, 'src');
  await run('mkdir', ['-p', src]);
  for (const [name, text] of Object.entries(sources)) await writeFile(join(src, name), text);
  const out = join(dir, 'bundle.tar.gz');
  try {
    await run(OPA, [
      'build',
      '-t',
      'wasm',
      '-b',
      src,
      ...entrypoints.flatMap((e) => ['-e', e]),
      '--revision',
      'test',
      '-o',
      out,
    ]);
    return await readFile(out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export const ENTRYPOINTS = ['imagegate/validate/decision', 'imagegate/mutate/decision'] as const;
/** The repo's policies have the optional facts entrypoints too (registry facts). */
export const REPO_ENTRYPOINTS = [
  ...ENTRYPOINTS,
  'imagegate/facts/needed',
  'imagegate/facts/decided',
] as const;

/**
 * The repo's policies (every .rego file under rego/imagegate but the tests) with `change` merged
 * over data.json's configuration, built by the real OPA CLI.
 */
export async function repoPolicyBundle(
  change: Record<string, unknown>,
  options: {
    readonly entrypoints?: readonly string[];
    /** Changes a source before it is built (file name under rego/imagegate, its text). */
    readonly edit?: (file: string, text: string) => string;
  } = {},
): Promise<Buffer> {
  const rego = join(packageRoot(), 'rego');
  const data: unknown = JSON.parse(await readFile(join(rego, 'data.json'), 'utf8'));
  const config = isRecord(data) && isRecord(data.imagegate) ? data.imagegate.config : undefined;
  if (!isRecord(data) || !isRecord(data.imagegate) || !isRecord(config)) {
    throw new TypeError('rego/data.json has no imagegate.config');
  }
  data.imagegate.config = { ...config, ...change };
  const sources: Record<string, string> = { 'data.json': JSON.stringify(data) };
  for (const file of await readdir(join(rego, 'imagegate'), { recursive: true })) {
    if (!file.endsWith('.rego') || file.endsWith('_test.rego')) continue;
    const text = await readFile(join(rego, 'imagegate', file), 'utf8');
    sources[file.replaceAll('/', '_')] = options.edit?.(file, text) ?? text;
  }
  return buildBundle(sources, options.entrypoints ?? REPO_ENTRYPOINTS);
}
