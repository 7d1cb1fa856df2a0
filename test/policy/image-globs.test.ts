/**
 * The glob language of `signatures` and `exemptImages`, and the load-time warning for a
 * `signatures` glob that leaves deeper repositories without a signature requirement:
 * the pure check, the configuration parser, and the gateway's log and /readyz.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { parseConfig } from '../../src/policy/config.ts';
import { ConfigError } from '../../src/policy/config-error.ts';
import { configWarnings, globProblem } from '../../src/policy/image-globs.ts';
import { record, startTestGateway, strings, tempDir, writeConfig } from '../helpers/gateway.ts';

const entry = (...images: string[]) => ({ images, keys: ['/keys/release.pub'] });

const warns = test.macro<[sources: string[][], expected: RegExp[]]>({
  exec(t, sources, expected) {
    const warnings = configWarnings({ signatures: sources.map((s) => entry(...s)) });
    t.is(warnings.length, expected.length, warnings.join('\n'));
    for (const [i, pattern] of expected.entries()) t.regex(warnings[i] ?? '', pattern);
  },
  title: (_, sources, expected) =>
    `${JSON.stringify(sources)}: ${expected.length === 0 ? 'no warning' : `${expected.length} warning(s)`}`,
});

test(
  warns,
  [['registry.example.com/prod/*']],
  [
    /^signatures\[0\]\.images\[0\]: "registry\.example\.com\/prod\/\*" matches whole repositories only: deeper ones such as registry\.example\.com\/prod\/x\/y need no signature; add "registry\.example\.com\/prod\/\*\/\*\*"/,
  ],
);
test(warns, [['registry.example.com/*/tools']], [/registry\.example\.com\/x\/tools\/y/]);
test(warns, [['registry.example.com/prod/**']], []);
test(warns, [['registry.example.com/prod']], []);
// Another source requires it of everything below the glob's matches.
test(warns, [['registry.example.com/prod/*'], ['registry.example.com/prod']], []);
test(warns, [['registry.example.com/prod/*', 'registry.example.com']], []);
test(warns, [['registry.example.com/prod/*', 'registry.example.com/prod/*/**']], []);
test(
  warns,
  [['registry.example.com/prod/*', 'registry.example.com/production']],
  [/signatures\[0\]\.images\[0\]/],
);

test('namespace overrides are looked at on their own (they replace the list)', (t) => {
  const warnings = configWarnings({
    signatures: [entry('registry.example.com/prod')],
    namespaces: { 'team-*': { signatures: [entry('registry.example.com/teams/*')] } },
  });
  t.is(warnings.length, 1);
  t.regex(warnings[0] ?? '', /^namespaces\["team-\*"\]\.signatures\[0\]\.images\[0\]: /);
});

test('one language: *, ** (whole components) and ?; nothing else is a wildcard', (t) => {
  for (const ok of [
    'registry.example.com/prod/*',
    'registry.example.com/**/tools',
    'registry.example.com/team-?/app',
    'docker.io/library/busybox:*',
  ])
    t.is(globProblem(ok), undefined, ok);
  t.regex(
    globProblem('registry.example.com/{prod,dev}/*') ?? '',
    /has "\{": globs here have only \*, \*\* and \?/,
  );
  t.regex(globProblem('registry.example.com/team-[ab]/app') ?? '', /has "\["/);
  t.regex(
    globProblem('registry.example.com/prod**') ?? '',
    /\*\* stands for whole path components/,
  );
});

test('the configuration refuses what the language does not have, in both keys', (t) => {
  t.throws(() => parseConfig('exemptImages: ["registry.example.com/{a,b}/*"]\n', 'c.yaml'), {
    instanceOf: ConfigError,
    message: /exemptImages\[0\]: .*globs here have only/,
  });
  t.throws(
    () =>
      parseConfig(
        'signatures: [{images: ["registry.example.com/prod**"], keys: [/k.pub]}]\n',
        'c.yaml',
      ),
    { instanceOf: ConfigError, message: /signatures\[0\]\.images\[0\]: .*whole path components/ },
  );
});

test('the gateway logs the warning and shows it in /readyz', async (t) => {
  const dir = await tempDir(t);
  const key = join(dir, 'release.pub');
  await writeFile(
    key,
    String(
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({
        type: 'spki',
        format: 'pem',
      }),
    ),
  );
  const config = await writeConfig(
    t,
    `signatures: [{images: ["registry.example.com/prod/*"], keys: [${key}]}]\n`,
  );
  const gw = await startTestGateway(t, { config });
  const ready = await gw.health('/readyz');
  t.is(ready.status, 200);
  const warnings = strings(
    record(record(ready.body, '/readyz').config, 'config').warnings,
    'warnings',
  );
  t.is(warnings.length, 1);
  t.regex(warnings[0] ?? '', /"registry\.example\.com\/prod\/\*" matches whole repositories only/);
  const logged = gw.logs.messages('configuration warning');
  t.deepEqual(
    logged.map((l) => l.warning),
    warnings,
  );
  t.is(logged[0]?.level, 40);
});
