/**
 * Reads an OPA bundle (`opa build -t wasm -b`): a gzipped tar whose entries carry a
 * leading "/" — `/.manifest`, `/policy.wasm`, `/data.json`, the Rego sources and, when
 * signed, `/.signatures.json`. Everything in it is untrusted until narrowed here.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { extract } from 'tar-stream';
import { describeThrown } from '../shared/describe-thrown.ts';
import { arrayField, isRecord, type JsonObject, stringField } from '../shared/json.ts';
import { BundleError } from './bundle-error.ts';

/** Generous for policies, small enough that a hostile archive cannot exhaust memory. */
const MAX_ARCHIVE_BYTES = 32 * 1024 * 1024;
const MAX_UNPACKED_BYTES = 128 * 1024 * 1024;
const MAX_ENTRIES = 10_000;

export interface WasmEntrypoint {
  readonly entrypoint: string;
  readonly module: string;
}

export interface Bundle {
  readonly revision: string;
  readonly roots: readonly string[];
  readonly manifest: JsonObject;
  readonly wasm: Uint8Array;
  readonly data: JsonObject;
  readonly entrypoints: readonly WasmEntrypoint[];
  /** Every file, keyed by its name without the leading "/". */
  readonly files: ReadonlyMap<string, Buffer>;
  /** SHA-256 of the archive bytes: what reloads compare. */
  readonly digest: string;
  readonly source: string;
}

export async function readBundleFile(path: string): Promise<Bundle> {
  const file = await resolveBundlePath(path);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new BundleError(`cannot read bundle ${file}: ${describeThrown(error)}`, { cause: error });
  }
  return readBundleArchive(bytes, file);
}

/** A directory (a mounted ConfigMap) must hold exactly one `*.tar.gz`. */
export async function resolveBundlePath(path: string): Promise<string> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (error) {
    throw new BundleError(`cannot read bundle ${path}: ${describeThrown(error)}`, { cause: error });
  }
  if (!info.isDirectory()) return path;
  const names = (await readdir(path)).filter((n) => !n.startsWith('.') && n.endsWith('.tar.gz'));
  const [only, ...rest] = names.sort();
  if (only === undefined) throw new BundleError(`no *.tar.gz bundle in directory ${path}`);
  if (rest.length > 0) {
    throw new BundleError(`more than one bundle in directory ${path}: ${names.join(', ')}`);
  }
  return join(path, only);
}

export async function readBundleArchive(bytes: Buffer, source = '<memory>'): Promise<Bundle> {
  if (bytes.length > MAX_ARCHIVE_BYTES) {
    throw new BundleError(`bundle ${source} is larger than ${MAX_ARCHIVE_BYTES} bytes`);
  }
  let tar: Buffer;
  try {
    tar = gunzipSync(bytes, { maxOutputLength: MAX_UNPACKED_BYTES });
  } catch (error) {
    throw new BundleError(
      `bundle ${source} is not a readable gzip archive: ${describeThrown(error)}`,
      {
        cause: error,
      },
    );
  }
  const files = await untar(tar, source);
  const manifest = parseJsonFile(files, '.manifest', source) ?? {};
  const wasmEntries = (arrayField(manifest, 'wasm') ?? []).flatMap((entry) =>
    isRecord(entry)
      ? [{ entrypoint: stringField(entry, 'entrypoint'), module: stringField(entry, 'module') }]
      : [],
  );
  const modules = new Set(wasmEntries.map((e) => e.module.replace(/^\//, '')));
  if (modules.size > 1) {
    throw new BundleError(`bundle ${source} has several wasm modules; imagegate loads one`);
  }
  const moduleName = [...modules][0] ?? 'policy.wasm';
  const wasm = files.get(moduleName);
  if (wasm === undefined) throw new BundleError(`bundle ${source} has no /${moduleName}`);
  const rootsField = arrayField(manifest, 'roots');
  return {
    revision: stringField(manifest, 'revision'),
    roots: (rootsField ?? ['']).filter((r): r is string => typeof r === 'string'),
    manifest,
    wasm,
    data: parseJsonFile(files, 'data.json', source) ?? {},
    entrypoints: wasmEntries,
    files,
    digest: createHash('sha256').update(bytes).digest('hex'),
    source,
  };
}

function parseJsonFile(
  files: ReadonlyMap<string, Buffer>,
  name: string,
  source: string,
): JsonObject | undefined {
  const bytes = files.get(name);
  if (bytes === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new BundleError(
      `bundle ${source}: /${name} is not valid JSON: ${describeThrown(error)}`,
      {
        cause: error,
      },
    );
  }
  if (!isRecord(parsed)) throw new BundleError(`bundle ${source}: /${name} is not a JSON object`);
  return parsed;
}

async function untar(tar: Buffer, source: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const extractor = extract();
  const done = new Promise<void>((resolve, reject) => {
    extractor.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: unknown) => {
        if (Buffer.isBuffer(chunk)) chunks.push(chunk);
      });
      stream.on('error', reject);
      stream.on('end', () => {
        if (header.type === 'file') {
          const name = header.name.replace(/^\.?\//, '');
          if (files.has(name)) {
            reject(new BundleError(`bundle ${source} has /${name} twice`));
            return;
          }
          if (files.size >= MAX_ENTRIES) {
            reject(new BundleError(`bundle ${source} has more than ${MAX_ENTRIES} files`));
            return;
          }
          files.set(name, Buffer.concat(chunks));
        }
        next();
      });
    });
    extractor.on('finish', resolve);
    extractor.on('error', reject);
  });
  Readable.from([tar]).pipe(extractor);
  try {
    await done;
  } catch (error) {
    if (error instanceof BundleError) throw error;
    throw new BundleError(
      `bundle ${source} is not a readable tar archive: ${describeThrown(error)}`,
      {
        cause: error,
      },
    );
  }
  return files;
}
