import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { parse } from 'yaml';
import { imagegate } from '../helpers/cli.ts';

const BUNDLE = 'bundles/imagegate.tar.gz';

test('bundle configmap: binaryData is the bundle, byte for byte, with its revision', async (t) => {
  const result = await imagegate([
    'bundle',
    'configmap',
    '--bundle',
    BUNDLE,
    '-n',
    'policy',
    '--name',
    'b',
  ]);
  t.is(result.code, 0, result.stderr);
  const configMap = parse(result.stdout) as {
    kind: string;
    metadata: { name: string; namespace: string; annotations: Record<string, string> };
    binaryData: Record<string, string>;
  };
  t.is(configMap.kind, 'ConfigMap');
  t.is(configMap.metadata.name, 'b');
  t.is(configMap.metadata.namespace, 'policy');
  const bytes = Buffer.from(configMap.binaryData['imagegate.tar.gz'] ?? '', 'base64');
  t.true(bytes.equals(await readFile(BUNDLE)));
  const inspect = await imagegate(['bundle', 'inspect', BUNDLE, '-o', 'json']);
  const revision = (JSON.parse(inspect.stdout) as { revision: string }).revision;
  t.is(configMap.metadata.annotations['imagegate.dev/revision'], revision);
});

test('bundle configmap refuses a bundle the gateway would refuse', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imagegate-bundle-'));
  const broken = join(dir, 'broken.tar.gz');
  await writeFile(broken, (await readFile(BUNDLE)).subarray(0, 1000));
  const result = await imagegate(['bundle', 'configmap', '--bundle', broken]);
  t.is(result.code, 2);
  t.is(result.stdout, '');
  t.regex(result.stderr, /broken\.tar\.gz/);
});

test('bundle inspect: revision, entrypoints, files, signature status', async (t) => {
  const result = await imagegate(['bundle', 'inspect', BUNDLE]);
  t.is(result.code, 0, result.stderr);
  t.regex(result.stdout, /^revision: +[0-9a-f]{12}$/m);
  t.regex(
    result.stdout,
    /^entrypoints: imagegate\/facts\/decided, imagegate\/facts\/needed, imagegate\/mutate\/decision, imagegate\/validate\/decision$/m,
  );
  t.regex(result.stdout, /^signature: +unsigned$/m);
  t.regex(result.stdout, /^ {2}\/policy\.wasm \(\d+ bytes\)$/m);
});

test('bundle with no subcommand or a missing FILE is a usage error', async (t) => {
  for (const args of [['bundle'], ['bundle', 'inspect'], ['bundle', 'configmap']]) {
    const result = await imagegate(args);
    t.is(result.code, 2, args.join(' '));
    t.regex(result.stderr, /imagegate: .*bundle/);
  }
});
