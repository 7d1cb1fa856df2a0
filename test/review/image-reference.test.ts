import test from 'ava';
import {
  formatImageReference,
  type ImageReference,
  parseImageReference,
  toPolicyReference,
} from '../../src/review/image-reference.ts';

const HEX = '7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa';
const SHA256 = `sha256:${HEX}`;
const SHA512 = `sha512:${HEX}${HEX}`;
const UPPER32 = HEX.slice(0, 32).toUpperCase();
const HUB = 'docker.io';

/** The expected parts; `familiar` defaults to the input, tag and digest to "". */
type ValidRow = readonly [
  input: string,
  domain: string,
  path: string,
  tag?: string,
  digest?: string,
  familiar?: string,
];

interface InvalidRow {
  readonly input: string;
  /** Every string must appear in the error: the offending part, or the rule it breaks. */
  readonly mentions: readonly string[];
}

const longPath = 'a'.repeat(234); // "registry.example.com/" + 234 = 255
const longTag = `v${'1'.repeat(127)}`; // 128, the maximum

const valid: readonly ValidRow[] = [
  // Docker Hub normalization
  ['nginx', HUB, 'library/nginx'],
  ['nginx:latest', HUB, 'library/nginx', 'latest'],
  ['nginx:1.25.3-alpine', HUB, 'library/nginx', '1.25.3-alpine'],
  ['library/nginx', HUB, 'library/nginx', '', '', 'nginx'],
  ['docker.io/nginx', HUB, 'library/nginx', '', '', 'nginx'],
  ['docker.io/library/nginx:1.25', HUB, 'library/nginx', '1.25', '', 'nginx:1.25'],
  ['bitnami/redis:7.2', HUB, 'bitnami/redis', '7.2'],
  ['docker.io/bitnami/redis', HUB, 'bitnami/redis', '', '', 'bitnami/redis'],
  ['a/b/c/d/e', HUB, 'a/b/c/d/e'],
  // docker keeps "library/" when a nested path follows it (FamiliarString)
  ['library/nginx/extra', HUB, 'library/nginx/extra'],
  ['a', HUB, 'library/a'],
  ['0/app', HUB, '0/app'],
  // legacy alias and host case
  ['index.docker.io/nginx', HUB, 'library/nginx', '', '', 'nginx'],
  ['index.docker.io/library/nginx:1.0', HUB, 'library/nginx', '1.0', '', 'nginx:1.0'],
  ['INDEX.DOCKER.IO/nginx', HUB, 'library/nginx', '', '', 'nginx'],
  ['Docker.IO/nginx', HUB, 'library/nginx', '', '', 'nginx'],
  // not aliases: runtimes contact these hosts as written
  ['registry-1.docker.io/library/nginx', 'registry-1.docker.io', 'library/nginx'],
  ['registry-1.docker.io/nginx', 'registry-1.docker.io', 'nginx'],
  ['registry.hub.docker.com/library/nginx', 'registry.hub.docker.com', 'library/nginx'],
  ['docker.io:443/nginx', 'docker.io:443', 'nginx'],
  // other registries
  ['ghcr.io/acme/app:v1.2.3', 'ghcr.io', 'acme/app', 'v1.2.3'],
  ['ghcr.io/acme/team/app', 'ghcr.io', 'acme/team/app'],
  ['registry.example.com/app', 'registry.example.com', 'app'],
  ['REGISTRY.Example.COM/app', 'registry.example.com', 'app', '', '', 'registry.example.com/app'],
  ['k8s.gcr.io/pause:3.9', 'k8s.gcr.io', 'pause', '3.9'],
  ['registry.k8s.io/kube-apiserver:v1.30.0', 'registry.k8s.io', 'kube-apiserver', 'v1.30.0'],
  ['quay.io/prometheus/node-exporter:v1.8.1', 'quay.io', 'prometheus/node-exporter', 'v1.8.1'],
  ['public.ecr.aws/nginx/nginx:1.25', 'public.ecr.aws', 'nginx/nginx', '1.25'],
  [
    '123456789012.dkr.ecr.us-east-1.amazonaws.com/app:prod',
    '123456789012.dkr.ecr.us-east-1.amazonaws.com',
    'app',
    'prod',
  ],
  ['mcr.microsoft.com/dotnet/runtime:8.0', 'mcr.microsoft.com', 'dotnet/runtime', '8.0'],
  ['xn--rgistry-cva.example/app', 'xn--rgistry-cva.example', 'app'],
  // ports are not tags
  ['registry.example.com:443/team/app:1.0', 'registry.example.com:443', 'team/app', '1.0'],
  ['localhost/app', 'localhost', 'app'],
  ['localhost:5000/app', 'localhost:5000', 'app'],
  ['localhost:5000/app:5000', 'localhost:5000', 'app', '5000'],
  ['registry:5000/app', 'registry:5000', 'app'],
  ['127.0.0.1:5000/app', '127.0.0.1:5000', 'app'],
  ['10.0.0.1/app', '10.0.0.1', 'app'],
  ['[::1]:5000/app', '[::1]:5000', 'app'],
  ['[::1]/app', '[::1]', 'app'],
  ['[2001:DB8::1]:443/app:v1', '[2001:db8::1]:443', 'app', 'v1', '', '[2001:db8::1]:443/app:v1'],
  // a single component is never a host, whatever it looks like (upstream)
  ['localhost', HUB, 'library/localhost'],
  ['localhost:5000', HUB, 'library/localhost', '5000'],
  ['registry.example.com:1.0', HUB, 'library/registry.example.com', '1.0'],
  [`registry.example.com@${SHA256}`, HUB, 'library/registry.example.com', '', SHA256],
  // upper-case first component is a host (upstream splitDockerDomain), lower-cased
  ['LOCALHOST/app', 'localhost', 'app', '', '', 'localhost/app'],
  ['LocalHost:5000/app', 'localhost:5000', 'app', '', '', 'localhost:5000/app'],
  // look-alikes resolve to the host actually written
  ['registry.example.com.evil.io/app', 'registry.example.com.evil.io', 'app'],
  ['registry.example.comevil/app', 'registry.example.comevil', 'app'],
  ['registry.example.com-evil.io/app', 'registry.example.com-evil.io', 'app'],
  ['evil.io/registry.example.com/app', 'evil.io', 'registry.example.com/app'],
  ['evil.io/docker.io/library/nginx', 'evil.io', 'docker.io/library/nginx'],
  ['foo.bar/baz', 'foo.bar', 'baz'],
  // familiar is for display only: it reads back as another host, normalized does not
  ['docker.io/example.com/app', HUB, 'example.com/app', '', '', 'example.com/app'],
  // separators
  ['foo_bar/baz__qux', HUB, 'foo_bar/baz__qux'],
  ['foo-bar/baz---qux', HUB, 'foo-bar/baz---qux'],
  ['team/my.image_name--v2', HUB, 'team/my.image_name--v2'],
  [`acme/${HEX}`, HUB, `acme/${HEX}`],
  [`${HEX}:v1`, HUB, `library/${HEX}`, 'v1'],
  // tags
  ['nginx:Latest', HUB, 'library/nginx', 'Latest'],
  ['nginx:_private', HUB, 'library/nginx', '_private'],
  ['nginx:1.0.0-rc.1_build.5', HUB, 'library/nginx', '1.0.0-rc.1_build.5'],
  [`nginx:${longTag}`, HUB, 'library/nginx', longTag],
  [`registry.example.com/${longPath}`, 'registry.example.com', longPath],
  // digests; tag@digest keeps both
  [`nginx@${SHA256}`, HUB, 'library/nginx', '', SHA256],
  [`nginx:latest@${SHA256}`, HUB, 'library/nginx', 'latest', SHA256],
  [
    `docker.io/library/nginx:1.25@${SHA256}`,
    HUB,
    'library/nginx',
    '1.25',
    SHA256,
    `nginx:1.25@${SHA256}`,
  ],
  [`registry.example.com/app@${SHA512}`, 'registry.example.com', 'app', '', SHA512],
  [`localhost:5000/app:1.0@${SHA256}`, 'localhost:5000', 'app', '1.0', SHA256],
];

const invalid: readonly InvalidRow[] = [
  { input: '', mentions: ['empty'] },
  { input: ':latest', mentions: ['no repository name'] },
  { input: ':', mentions: ['no repository name'] },
  { input: '@', mentions: ['no repository name'] },
  { input: `@${SHA256}`, mentions: ['no repository name'] },
  { input: HEX, mentions: [HEX, 'image ID'] },
  // tags
  { input: 'nginx:', mentions: ['tag is empty', 'trailing ":"'] },
  { input: 'nginx:Latest!', mentions: ['tag "Latest!" is not valid'] },
  { input: 'nginx:-dev', mentions: ['tag "-dev"'] },
  { input: 'nginx:.hidden', mentions: ['tag ".hidden"'] },
  { input: 'nginx:1.0:2.0', mentions: ['tag "1.0:2.0"'] },
  { input: 'localhost:5000:tag', mentions: ['tag "5000:tag"'] },
  { input: `nginx:${longTag}x`, mentions: ['tag "v111', 'up to 128'] },
  // upper case, which only hosts may have
  { input: 'Nginx', mentions: ['repository path "Nginx"', 'lower-case'] },
  { input: 'library/Nginx', mentions: ['repository path "library/Nginx"', 'lower-case'] },
  {
    input: 'registry.example.com/Team/App',
    mentions: ['repository path "Team/App"', 'lower-case'],
  },
  { input: 'MyRegistry/app', mentions: ['"MyRegistry"', 'upper-case'] },
  // schemes and slashes
  { input: 'https://registry.example.com/app', mentions: ['URL scheme', '"https://"'] },
  { input: 'docker://nginx', mentions: ['URL scheme', '"docker://"'] },
  { input: 'registry.example.com//app', mentions: ['"/app"', 'empty component'] },
  { input: 'a//b', mentions: ['"a//b"', 'empty component'] },
  { input: '/nginx', mentions: ['empty component'] },
  { input: 'nginx/', mentions: ['"nginx/"', 'empty component'] },
  { input: 'registry.example.com/', mentions: ['empty component'] },
  { input: 'registry.example.com/app/:v1', mentions: ['"app/"', 'empty component'] },
  // path components
  { input: '-nginx', mentions: ['component "-nginx"'] },
  { input: 'nginx-', mentions: ['component "nginx-"'] },
  { input: 'foo...bar', mentions: ['component "foo...bar"'] },
  { input: 'a___b', mentions: ['component "a___b"'] },
  { input: 'a/b_-c', mentions: ['component "b_-c"'] },
  { input: 'a/../b', mentions: ['component ".."'] },
  { input: 'nginx!', mentions: ['component "nginx!"'] },
  { input: 'nginx#v1', mentions: ['component "nginx#v1"'] },
  // hosts and ports
  { input: 'foo..bar/app', mentions: ['registry host "foo..bar"'] },
  { input: '-registry.example.com/app', mentions: ['registry host "-registry.example.com"'] },
  { input: 'registry-.example.com/app', mentions: ['registry host "registry-.example.com"'] },
  { input: 'registry_example.com/app', mentions: ['registry host "registry_example.com"'] },
  { input: 'localhost:abc/app', mentions: ['port "abc"', 'digits'] },
  { input: 'localhost:/app', mentions: ['port ""', 'digits'] },
  { input: 'registry.example.com:5000:6000/app', mentions: ['port "5000:6000"'] },
  { input: 'registry.example.com:-1/app', mentions: ['port "-1"'] },
  { input: '[::1/app', mentions: ['"[::1"', 'IPv6'] },
  { input: '[::1]x:5000/app', mentions: ['"[::1]x:5000"', 'after the IPv6'] },
  { input: '[fe80::1%eth0]:5000/app', mentions: ['"[fe80::1%eth0]"', 'IPv6'] },
  { input: '[::g]/app', mentions: ['"[::g]"', 'IPv6'] },
  { input: '[::1]:http/app', mentions: ['port "http"'] },
  // digests
  { input: 'nginx@', mentions: ['digest ""'] },
  { input: 'nginx:latest@', mentions: ['digest ""'] },
  { input: 'nginx@sha256:abc', mentions: ['"sha256:abc"', 'takes 64 lower-case hex digits'] },
  { input: `nginx@sha256:${HEX.toUpperCase()}`, mentions: ['sha256 takes 64 lower-case'] },
  { input: `nginx@sha256:${HEX}a`, mentions: ['sha256 takes 64'] },
  { input: `nginx@sha512:${HEX}`, mentions: ['sha512 takes 128'] },
  { input: `nginx@${HEX}`, mentions: ['<algorithm>:<hex>'] },
  // only the algorithms the OCI image spec registers, each with its exact length
  { input: 'nginx@md5:abc', mentions: ['"md5:abc"', 'algorithm "md5" is not registered'] },
  {
    input: `registry.example.com/app@md5:${HEX.slice(0, 32)}`,
    mentions: ['algorithm "md5" is not registered', 'sha256:<64 hex> or sha512:<128 hex>'],
  },
  { input: `registry.example.com/app@sha1:${HEX.slice(0, 40)}`, mentions: ['"sha1" is not'] },
  { input: `registry.example.com/app@foo:${HEX}`, mentions: ['algorithm "foo" is not registered'] },
  { input: `app:1@sha384:${HEX}${HEX.slice(0, 32)}`, mentions: ['"sha384" is not registered'] },
  { input: `app@blake3:${HEX}`, mentions: ['"blake3" is not registered'] },
  { input: `app@my.alg+v2:${UPPER32}`, mentions: ['"my.alg+v2" is not registered'] },
  { input: `app@SHA256:${HEX}`, mentions: ['"SHA256" is not registered'] },
  { input: `nginx@1sha:${HEX}`, mentions: ['<algorithm>:<hex>'] },
  { input: `nginx@${SHA256}@${SHA256}`, mentions: ['digest "sha256:'] },
  { input: `nginx@${SHA256}:latest`, mentions: ['digest "sha256:'] },
  { input: 'registry.example.com@sha256:abc', mentions: ['sha256 takes 64'] },
  // whitespace, control characters, look-alikes
  { input: ' nginx', mentions: ['whitespace', 'U+0020', 'index 0'] },
  { input: 'nginx ', mentions: ['U+0020', 'index 5'] },
  { input: 'nginx:latest\n', mentions: ['U+000A'] },
  { input: 'ngi\u0000nx', mentions: ['U+0000', 'index 3'] },
  { input: 'ngi\tnx', mentions: ['U+0009'] },
  { input: 'nginx\u007f', mentions: ['U+007F'] },
  { input: 'registr\u0443.example.com/app', mentions: ['non-ASCII', 'U+0443', 'index 7'] },
  { input: '\uff4eginx', mentions: ['non-ASCII', 'U+FF4E'] },
  { input: 'nginx\u200b', mentions: ['U+200B'] },
  { input: 'registry.example.com/app:lat\u0435st', mentions: ['U+0435'] },
  { input: '\u{1f433}/app', mentions: ['U+1F433'] },
  { input: 'nginx\ud800', mentions: ['U+D800'] },
  // lengths: the 255 limit applies to the normalized name
  { input: `registry.example.com/${longPath}a`, mentions: ['256 characters', 'at most 255'] },
  { input: 'a'.repeat(240), mentions: ['258 characters'] }, // "docker.io/library/" counts
  { input: 'a'.repeat(100_000), mentions: ['100000 characters'] },
];

const expected = ([input, domain, path, tag = '', digest = '', familiar = input]: ValidRow) => {
  const name = `${domain}/${path}`;
  const suffix = (tag === '' ? '' : `:${tag}`) + (digest === '' ? '' : `@${digest}`);
  const normalized = name + suffix;
  return { domain, path, name, tag, digest, normalized, familiar } satisfies ImageReference;
};

// Long rows get a short, still unique, title.
const title = (input: string): string =>
  input.length > 60
    ? `${JSON.stringify(input.slice(0, 40))}… (${input.length} chars)`
    : JSON.stringify(input);

const parsesTo = test.macro({
  exec(t, row: ValidRow) {
    const result = parseImageReference(row[0]);
    if (!result.ok) return t.fail(result.error);
    t.deepEqual(result.reference, expected(row));
  },
  title: (provided, row: ValidRow) => provided ?? `valid: ${title(row[0])}`,
});

const rejects = test.macro({
  exec(t, row: InvalidRow) {
    const result = parseImageReference(row.input);
    if (result.ok) return t.fail(`parsed as ${result.reference.normalized}`);
    for (const part of row.mentions)
      t.true(result.error.includes(part), `${result.error} ∌ ${part}`);
    t.true(result.error.length < 400, 'errors stay short, even for huge input');
  },
  title: (provided, row: InvalidRow) => provided ?? `invalid: ${title(row.input)}`,
});

const roundTrips = test.macro({
  exec(t, row: ValidRow) {
    const first = parseImageReference(row[0]);
    if (!first.ok) return t.fail(first.error);
    t.is(formatImageReference(first.reference), first.reference.normalized);
    t.deepEqual(parseImageReference(formatImageReference(first.reference)), first);
  },
  title: (provided, row: ValidRow) => provided ?? `round trip: ${title(row[0])}`,
});

for (const row of valid) test(parsesTo, row);
for (const row of invalid) test(rejects, row);
for (const row of valid) test(roundTrips, row);

test('the tables are big enough to mean something', (t) => {
  t.true(valid.length >= 60);
  t.true(invalid.length >= 40);
});

const notStrings: ReadonlyArray<readonly [value: unknown, described: string]> = [
  [undefined, 'undefined'],
  [null, 'null'],
  [42, 'a number'],
  [10n, 'a bigint'],
  [true, 'a boolean'],
  [Symbol('nginx'), 'a symbol'],
  [{ image: 'nginx' }, 'an object'],
  [['nginx'], 'an array'],
  [new String('nginx'), 'an object'],
  [() => 'nginx', 'a function'],
];

for (const [index, [value, described]] of notStrings.entries()) {
  test(`invalid: not a string #${index}: ${described}`, (t) => {
    t.deepEqual(parseImageReference(value), {
      ok: false,
      error: `image reference must be a string, not ${described}`,
    });
  });
}

// No wall-clock assertion (machines are noisy): the length guard is what keeps regexes off
// huge input, so assert that it is the reason given; shorter hostile input must still be
// refused with a reason rather than a throw.
test('hostile input is refused with a reason, never a throw', (t) => {
  const hostile = [
    'a'.repeat(100_000),
    `${'a-'.repeat(50_000)}!`,
    '@'.repeat(100_000),
    `a${'-'.repeat(2000)}!`,
    `${'a.'.repeat(1000)}!`,
    `${'a_'.repeat(1000)}/`,
    `x.io/${'a/'.repeat(1000)}`,
    `${'['.repeat(1000)}:/a`,
    `[${':'.repeat(2000)}/a`,
    `a:${'_'.repeat(2000)}`,
    `a@${'a'.repeat(900)}${'.a'.repeat(500)}`,
    `a@a:${'f'.repeat(2000)}`,
  ];
  for (const input of hostile) {
    const result = parseImageReference(input);
    t.false(result.ok, input.slice(0, 40));
    if (!result.ok) {
      t.true(result.error.length > 0);
      if (input.length > 2048) t.regex(result.error, /at most 2048 allowed/, input.slice(0, 40));
    }
  }
});

test('never throws, and every accepted reference round-trips (seeded fuzz)', (t) => {
  const alphabet = [
    'a',
    'Z',
    '0',
    '.',
    '_',
    '-',
    '/',
    ':',
    '@',
    '[',
    ']',
    'sha256:',
    HEX,
    ' ',
    'é',
  ];
  let seed = 42;
  const next = (n: number): number => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed % n;
  };
  let accepted = 0;
  for (let i = 0; i < 5000; i++) {
    let input = '';
    for (let j = next(12) + 1; j > 0; j--) input += alphabet[next(alphabet.length)] ?? '';
    const result = parseImageReference(input);
    if (!result.ok) continue;
    accepted++;
    t.deepEqual(parseImageReference(result.reference.normalized), result, input);
  }
  t.true(accepted > 100);
});

test('format is the normalized form', (t) => {
  const result = parseImageReference(`NGINX.io/app:v1@${SHA256}`.replace('NGINX', 'Mirror'));
  if (!result.ok) return t.fail(result.error);
  t.is(formatImageReference(result.reference), `mirror.io/app:v1@${SHA256}`);
});

test('parsed references are frozen', (t) => {
  const result = parseImageReference('nginx');
  if (!result.ok) return t.fail(result.error);
  t.true(Object.isFrozen(result.reference));
});

test('toPolicyReference: valid', (t) => {
  t.deepEqual(toPolicyReference(parseImageReference('nginx')), {
    valid: true,
    error: '',
    domain: 'docker.io',
    path: 'library/nginx',
    name: 'docker.io/library/nginx',
    tag: '',
    digest: '',
    normalized: 'docker.io/library/nginx',
    familiar: 'nginx',
  });
});

test('toPolicyReference: invalid keeps only the reason', (t) => {
  t.deepEqual(toPolicyReference(parseImageReference('nginx:Latest!')), {
    valid: false,
    error:
      'tag "Latest!" is not valid: up to 128 of letters, digits, "_", "." and "-", ' +
      'not starting with "." or "-"',
    domain: '',
    path: '',
    name: '',
    tag: '',
    digest: '',
    normalized: '',
    familiar: '',
  });
});

test('toPolicyReference output is plain JSON', (t) => {
  const policy = toPolicyReference(parseImageReference(`localhost:5000/app:1@${SHA256}`));
  t.deepEqual(JSON.parse(JSON.stringify(policy)), policy);
});
