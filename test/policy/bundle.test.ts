/** The bundle reader's limits against hostile archives (docs/SECURITY.md 1.8). */
import { gzipSync } from 'node:zlib';
import test from 'ava';
import { pack } from 'tar-stream';
import { readBundleArchive } from '../../src/policy/bundle.ts';
import { BundleError } from '../../src/policy/bundle-error.ts';
import { committedBundle } from '../helpers/bundles.ts';

async function tarOf(entries: Iterable<[string, Buffer]>): Promise<Buffer> {
  const tar = pack();
  const chunks: Buffer[] = [];
  tar.on('data', (chunk: unknown) => {
    if (Buffer.isBuffer(chunk)) chunks.push(chunk);
  });
  const done = new Promise<void>((resolve, reject) => {
    tar.on('end', resolve);
    tar.on('error', reject);
  });
  for (const [name, body] of entries) tar.entry({ name }, body);
  tar.finalize();
  await done;
  return Buffer.concat(chunks);
}

const refused = test.macro(async (t, make: () => Promise<Buffer>, message: RegExp) => {
  const error = await t.throwsAsync(async () => readBundleArchive(await make(), 'hostile.tar.gz'), {
    instanceOf: BundleError,
  });
  t.regex(error?.message ?? '', message);
});

test(
  'a decompression bomb is cut at 128 MiB unpacked',
  refused,
  async () => {
    // 200 MiB of zeros compress to about 200 KiB.
    return gzipSync(await tarOf([['/data.json', Buffer.alloc(200 * 1024 * 1024)]]));
  },
  /not a readable gzip archive: .*(larger|buffer|maxOutputLength|Cannot create a Buffer)/i,
);

test(
  'an archive over 32 MiB is refused before it is unpacked',
  refused,
  async () => Buffer.alloc(32 * 1024 * 1024 + 1),
  /larger than 33554432 bytes/,
);

test(
  'more than 10,000 entries are refused',
  refused,
  async () => {
    const entries = Array.from({ length: 10_001 }, (_, i): [string, Buffer] => [
      `/f${i}.json`,
      Buffer.from('{}'),
    ]);
    return gzipSync(await tarOf(entries));
  },
  /more than 10000 files/,
);

test(
  'the same file twice is refused (which copy would be the policy?)',
  refused,
  async () => {
    const { files } = await committedBundle();
    const wasm = files.get('policy.wasm') ?? Buffer.alloc(0);
    return gzipSync(
      await tarOf([
        ['/policy.wasm', wasm],
        ['/data.json', Buffer.from('{}')],
        ['/policy.wasm', Buffer.from('x')],
      ]),
    );
  },
  /has \/policy\.wasm twice/,
);

test('directories and symlinks in the tar are skipped: only regular files are read', async (t) => {
  const { files } = await committedBundle();
  const tar = pack();
  const chunks: Buffer[] = [];
  tar.on('data', (chunk: unknown) => {
    if (Buffer.isBuffer(chunk)) chunks.push(chunk);
  });
  const done = new Promise<void>((resolve) => tar.on('end', resolve));
  tar.entry({ name: '/rego', type: 'directory' });
  tar.entry({ name: '/data.json', type: 'symlink', linkname: '/etc/passwd' });
  for (const [name, body] of files) if (name !== 'data.json') tar.entry({ name: `/${name}` }, body);
  tar.finalize();
  await done;
  const bundle = await readBundleArchive(gzipSync(Buffer.concat(chunks)));
  t.false(bundle.files.has('data.json'), 'a symlink is not read as the data');
  t.false(bundle.files.has('rego'));
  t.deepEqual(bundle.data, {});
  t.true(bundle.files.has('policy.wasm'));
});
