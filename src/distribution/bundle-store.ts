/**
 * The last good bundle of a remote source, kept on disk (`--bundle-persist-dir`, a writable
 * volume) so that a gateway restarted while the registry or bundle server is down still
 * serves the policy it served before — as OPA's `persist: true` does.
 *
 * Two files per source: the archive exactly as fetched (`bundle.tar.gz`, so its signature
 * is verified again when it is read back) and what was known of it (`bundle.json`: source,
 * revision, the manifest digest or ETag, when it was fetched and activated). Each is written
 * to a temporary name and renamed, so a crash leaves the old pair or the new one. Written
 * only after the bundle verified, loaded and passed its smoke evaluation; read back only
 * for the same source (a gateway moved to another repository never serves the old one's).
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describeThrown } from '../shared/describe-thrown.ts';
import { isRecord, stringField } from '../shared/json.ts';

export interface PersistedMeta {
  /** The --bundle value it came from (`oci://…`, `https://…`). */
  readonly source: string;
  readonly revision: string;
  /** The OCI manifest digest, or the bundle service's ETag. */
  readonly version: string;
  /** SHA-256 of the archive: a file that does not match is not used. */
  readonly sha256: string;
  readonly fetchedAt: string;
  readonly activatedAt: string;
}

export interface Persisted {
  readonly archive: Buffer;
  readonly meta: PersistedMeta;
}

const ARCHIVE = 'bundle.tar.gz';
const META = 'bundle.json';

/** The directory for one source: sources never overwrite each other's last good bundle. */
function dirFor(root: string, source: string): string {
  return join(root, createHash('sha256').update(source).digest('hex').slice(0, 16));
}

export async function saveBundle(
  root: string,
  archive: Buffer,
  meta: Omit<PersistedMeta, 'sha256'>,
): Promise<void> {
  const dir = dirFor(root, meta.source);
  await mkdir(dir, { recursive: true });
  const sha256 = createHash('sha256').update(archive).digest('hex');
  const write = async (name: string, data: string | Buffer) => {
    const temporary = join(dir, `.${name}.${process.pid}.tmp`);
    await writeFile(temporary, data, { mode: 0o600 });
    await rename(temporary, join(dir, name));
  };
  // The archive first: a metadata file always describes the archive beside it.
  await write(ARCHIVE, archive);
  await write(META, `${JSON.stringify({ ...meta, sha256 }, null, 2)}\n`);
}

/** The last good bundle of `source`, or undefined with why not (nothing kept, or unusable). */
export async function loadPersisted(
  root: string,
  source: string,
): Promise<Persisted | { readonly missing: string }> {
  const dir = dirFor(root, source);
  let text: string;
  let archive: Buffer;
  try {
    text = await readFile(join(dir, META), 'utf8');
    archive = await readFile(join(dir, ARCHIVE));
  } catch (error) {
    return { missing: `no bundle kept in ${dir}: ${describeThrown(error)}` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { missing: `${join(dir, META)} is not JSON` };
  }
  if (!isRecord(parsed)) return { missing: `${join(dir, META)} is not an object` };
  const meta: PersistedMeta = {
    source: stringField(parsed, 'source'),
    revision: stringField(parsed, 'revision'),
    version: stringField(parsed, 'version'),
    sha256: stringField(parsed, 'sha256'),
    fetchedAt: stringField(parsed, 'fetchedAt'),
    activatedAt: stringField(parsed, 'activatedAt'),
  };
  if (meta.source !== source) {
    return { missing: `${dir} holds a bundle of ${meta.source}, not ${source}` };
  }
  if (createHash('sha256').update(archive).digest('hex') !== meta.sha256) {
    return { missing: `${join(dir, ARCHIVE)} does not match its recorded SHA-256` };
  }
  return { archive, meta };
}
