import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { type CliResult, imagegate } from '../helpers/cli.ts';

const manifests = (name: string) => join('test', 'fixtures', 'manifests', name);

interface JsonReport {
  revision: string;
  summary: {
    objects: number;
    allowed: number;
    denied: number;
    skipped: number;
    unverified: number;
  };
  results: {
    origin: string;
    kind: string;
    name: string;
    verdict: string;
    reasons: string[];
    warnings: string[];
    mutations: string[];
    patch: { op: string; path: string; value?: unknown }[];
    mutated?: Record<string, unknown>;
  }[];
}

function report(result: CliResult): JsonReport {
  return JSON.parse(result.stdout) as JsonReport;
}

async function tempFile(name: string, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'imagegate-check-'));
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

test('README: untagged nginx from Docker Hub is denied for both reasons, exit 1', async (t) => {
  const result = await imagegate(['check', '-f', 'docs/examples/pod-untrusted.yaml']);
  t.is(result.code, 1, result.stderr);
  const denied = result.stdout.split('\n').filter((l) => l.trimStart().startsWith('denied:'));
  t.is(denied.length, 2, result.stdout);
  t.true(
    denied.some((l) => /not trusted/.test(l) && l.includes('"nginx"')),
    result.stdout,
  );
  t.true(
    denied.some((l) => /latest/.test(l) && l.includes('"nginx"')),
    result.stdout,
  );
  t.regex(result.stdout, /^DENIED +Pod shop\/web/m);
  t.regex(result.stdout, /1 object\(s\): 1 denied, 0 allowed, 0 skipped/);
});

test('README: the fixed pod is allowed, exit 0, its pull policy mutated to Always', async (t) => {
  const result = await imagegate([
    'check',
    '-f',
    'docs/examples/pod-fixed.yaml',
    '--output',
    'json',
  ]);
  t.is(result.code, 0, result.stderr);
  const [pod] = report(result).results;
  t.is(pod?.verdict, 'allowed');
  t.deepEqual(pod?.patch, [
    { op: 'add', path: '/spec/containers/0/imagePullPolicy', value: 'Always' },
  ]);
  const spec = pod?.mutated?.spec as { containers: { imagePullPolicy: string }[] } | undefined;
  t.is(spec?.containers[0]?.imagePullPolicy, 'Always');
});

test('a Deployment is checked through its pod template', async (t) => {
  const result = await imagegate(['check', '-f', manifests('deployment.yaml'), '-o', 'json']);
  const out = report(result);
  t.is(out.results[0]?.kind, 'Deployment');
  t.true(out.results[0]?.patch.every((op) => op.path.startsWith('/spec/template/spec/')));
  t.is(result.code, out.summary.denied > 0 ? 1 : 0);
});

test('a CronJob is checked through its job template', async (t) => {
  const result = await imagegate(['check', '-f', manifests('cronjob.yaml'), '-o', 'json']);
  const out = report(result);
  t.is(out.results[0]?.kind, 'CronJob');
  t.true(
    out.results[0]?.patch.every((op) =>
      op.path.startsWith('/spec/jobTemplate/spec/template/spec/'),
    ),
  );
});

test('init containers are checked and mutated too', async (t) => {
  const result = await imagegate([
    'check',
    '-f',
    manifests('pod-init-containers.yaml'),
    '-o',
    'json',
  ]);
  const out = report(result);
  t.true(out.results[0]?.patch.some((op) => op.path.startsWith('/spec/initContainers/')));
});

test('a compliant pod passes with nothing to change', async (t) => {
  const result = await imagegate(['check', '-f', manifests('pod-compliant.yaml'), '-o', 'json']);
  t.is(result.code, 0, result.stdout + result.stderr);
  t.deepEqual(report(result).results[0]?.patch, []);
});

test('a PVC gets the default storage class when configured', async (t) => {
  const config = await tempFile('config.yaml', 'defaultStorageClass: fast-ssd\n');
  const result = await imagegate([
    'check',
    '-f',
    manifests('pvc.yaml'),
    '--config',
    config,
    '-o',
    'json',
  ]);
  t.is(result.code, 0, result.stderr);
  const [pvc] = report(result).results;
  t.deepEqual(pvc?.patch, [{ op: 'add', path: '/spec/storageClassName', value: 'fast-ssd' }]);
});

test('multi-document files: every object, other kinds skipped', async (t) => {
  const result = await imagegate(['check', '-f', manifests('multi-document.yaml'), '-o', 'json']);
  const out = report(result);
  t.deepEqual(
    out.results.map((r) => [r.kind, r.verdict === 'skipped']),
    [
      ['Service', true],
      ['Deployment', false],
      ['ConfigMap', true],
    ],
  );
});

test('standard input and environment settings (IMAGEGATE_CONFIG)', async (t) => {
  const config = await tempFile(
    'c.yaml',
    'trustedRegistries: [docker.io/library]\ndenyLatest: false\n',
  );
  const pod =
    'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: nginx}]}\n';
  const result = await imagegate(['check', '-f', '-'], {
    stdin: pod,
    env: { IMAGEGATE_CONFIG: config },
  });
  t.is(result.code, 0, result.stdout + result.stderr);
  t.regex(result.stdout, /^ALLOWED Pod default\/p \(<stdin>#1\)/m);
});

test('warn enforcement allows with warnings, exit 0', async (t) => {
  const config = await tempFile('c.yaml', 'enforcement: warn\n');
  const result = await imagegate([
    'check',
    '-f',
    'docs/examples/pod-untrusted.yaml',
    '--config',
    config,
  ]);
  t.is(result.code, 0);
  t.is(result.stdout.split('\n').filter((l) => l.trimStart().startsWith('warning:')).length, 2);
});

test('--offline: an image that needed a signature and was not verified fails (exit 1)', async (t) => {
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({
    type: 'spki',
    format: 'pem',
  });
  const keyFile = await tempFile('release.pub', String(key));
  const config = await tempFile(
    'c.yaml',
    `trustedRegistries: [registry.example.com]\nsignatures: [{images: [registry.example.com/prod], keys: [${keyFile}]}]\n`,
  );
  const pod = (name: string, image: string) =>
    `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}}\nspec: {containers: [{name: c, image: "${image}", imagePullPolicy: Always}]}\n`;
  const manifests = await tempFile(
    'pods.yaml',
    [
      pod('signed', 'registry.example.com/prod/api:1'),
      pod('other', 'registry.example.com/dev/api:1'),
    ].join('---\n'),
  );
  const checkOffline = (...more: string[]) =>
    imagegate(['check', '-f', manifests, '--config', config, '--offline', ...more]);
  const offline = await checkOffline();
  t.is(offline.code, 1, offline.stdout + offline.stderr);
  t.regex(
    offline.stdout,
    /unverified: registry\.example\.com\/prod\/api:1: signature not verified/,
  );
  t.regex(
    offline.stdout,
    /2 object\(s\): 0 denied, 2 allowed, 0 skipped, 1 with unverified images/,
  );
  t.regex(offline.stdout, /--allow-unverified accepts that/);
  const json = await checkOffline('-o', 'json');
  t.is(json.code, 1);
  t.like(report(json).summary, { denied: 0, unverified: 1 });
  const accepted = await checkOffline('--allow-unverified');
  t.is(accepted.code, 0, accepted.stdout + accepted.stderr);
  // Nothing here needs a registry: --offline alone passes.
  const plain = await imagegate(['check', '-f', 'docs/examples/pod-fixed.yaml', '--offline']);
  t.is(plain.code, 0, plain.stdout);
});

const badInput = test.macro<[string[], RegExp]>({
  async exec(t, args, message) {
    const result = await imagegate(args);
    t.is(result.code, 2, result.stdout);
    t.regex(result.stderr, message);
    t.notRegex(result.stderr, /\n\s+at /, 'no stack trace');
  },
  title: (_, args) => `exit 2: imagegate ${args.join(' ')}`,
});

test(
  badInput,
  ['check', '-f', manifests('broken.yaml')],
  /broken\.yaml#\d+: not valid YAML or JSON/,
);
test(badInput, ['check', '-f', 'no/such/file.yaml'], /cannot read no\/such\/file\.yaml/);
test(badInput, ['check'], /check needs -f/);
test(
  badInput,
  ['check', '-f', 'docs/examples/pod-fixed.yaml', '--output', 'xml'],
  /--output must be human or json/,
);
test(
  badInput,
  ['check', '-f', 'docs/examples/pod-fixed.yaml', '--config', 'no/such.yaml'],
  /cannot read configuration no\/such\.yaml/,
);
test(
  badInput,
  ['check', '-f', 'docs/examples/pod-fixed.yaml', '--bundle', 'package.json'],
  /not a readable gzip archive/,
);
test(
  badInput,
  ['check', '-f', 'docs/examples/pod-fixed.yaml', '--frobnicate'],
  /Unknown option '--frobnicate'/,
);
test(badInput, ['frobnicate'], /unknown command "frobnicate"/);
test(
  badInput,
  ['check', '-f', 'docs/examples/pod-fixed.yaml', '--allow-unverified'],
  /--allow-unverified needs --offline/,
);

test('image volumes are checked and mutated like containers', async (t) => {
  const result = await imagegate(['check', '-f', manifests('pod-image-volume.yaml'), '-o', 'json']);
  t.is(result.code, 1, result.stderr);
  const [pod] = report(result).results;
  t.is(pod?.verdict, 'denied');
  t.deepEqual(pod?.reasons, [
    'volume "payload" (volumes[1]) image "quay.io/evil/miner:latest": registry quay.io/evil/miner is not trusted (trusted: registry.example.com, ghcr.io/acme, localhost:5000)',
    'volume "payload" (volumes[1]) image "quay.io/evil/miner:latest": tag "latest" is not allowed; pin a version tag or a digest',
  ]);
  t.deepEqual(
    pod?.patch.map((op) => op.path),
    [
      '/spec/containers/0/imagePullPolicy',
      '/spec/volumes/0/image/pullPolicy',
      '/spec/volumes/1/image/pullPolicy',
    ],
  );
});

// docs/examples/mirrors-config.yaml: Docker Hub (library/ kept), GHCR and a more specific
// organisation, a ported and an IPv6 registry, our own registry left alone, an exemption.
test('README mirrors example: every image rewritten to a valid reference, then judged', async (t) => {
  const result = await imagegate([
    'check',
    '--config',
    'docs/examples/mirrors-config.yaml',
    '-f',
    'docs/examples/pods-mirrors.yaml',
    '-o',
    'json',
  ]);
  t.is(result.code, 1, result.stderr);
  const [pod, deployment] = report(result).results;
  t.is(pod?.verdict, 'allowed');
  const spec = (pod?.mutated?.spec ?? {}) as Record<string, { image: string }[]>;
  t.deepEqual(
    [...(spec.initContainers ?? []), ...(spec.containers ?? [])].map((c) => c.image),
    [
      'harbor.example.com/local/tools/wait-for:2.1',
      'harbor.example.com/dockerhub-proxy/library/nginx:1.27.3',
      'artifactory.example.com/acme-virtual/worker:4.2',
      'harbor.example.com/ghcr-proxy/prometheus-community/exporter:0.9',
      'harbor.example.com/lab6/lab/probe:1',
      'registry.example.com/shop/api:2.3.1',
      'registry.example.com/tools/netshoot:latest',
    ],
  );
  t.deepEqual((pod as { auditAnnotations?: unknown }).auditAnnotations, {
    'exempt-images': 'registry.example.com/tools/netshoot:latest',
  });
  t.is(deployment?.verdict, 'denied');
  t.deepEqual(deployment?.reasons, [
    'container "web" (containers[0]) image "registry.example.com/shop/web:dev": tag "dev" is not allowed (disallowedTags); pin a version tag or a digest',
  ]);
});

// Prepend mode cannot write a port or an IPv6 address as a path component: such an image
// is left as it is and judged as it is, never turned into an invalid reference.
test('requireDigest: a digest with an algorithm nobody registered is refused, not counted', async (t) => {
  const config = await tempFile(
    'c.yaml',
    'trustedRegistries: [registry.example.com]\nrequireDigest: true\n',
  );
  const hex = (n: number) => '0123456789abcdef'.repeat(8).slice(0, n);
  const images = [`md5:${hex(32)}`, `sha1:${hex(40)}`, `foo:${hex(64)}`, `sha256:${hex(64)}`];
  const pod = `apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n${images
    .map(
      (d, i) =>
        `  - {name: c${i}, image: "registry.example.com/app@${d}", imagePullPolicy: Always}\n`,
    )
    .join('')}`;
  const result = await imagegate(['check', '--config', config, '-f', '-', '-o', 'json'], {
    stdin: pod,
  });
  t.is(result.code, 1);
  const [checked] = report(result).results;
  t.deepEqual(
    checked?.reasons.map((r) =>
      /^container "(c\d)".*algorithm "(\w+)" is not registered/.exec(r)?.slice(1),
    ),
    [
      ['c0', 'md5'],
      ['c1', 'sha1'],
      ['c2', 'foo'],
    ],
  );
});

test('a namespace’s mirrors replace the global ones; mirrors: {} turns them off', async (t) => {
  const config = await tempFile(
    'c.yaml',
    [
      'trustedRegistries: [harbor.example.com, harbor-eu.example.com]',
      'mirrors: {docker.io: harbor.example.com/hub, ghcr.io: harbor.example.com/ghcr}',
      'namespaces:',
      '  "eu-*": {mirrors: {docker.io: harbor-eu.example.com/hub}}',
      '  lab: {mirrors: {}}',
      '',
    ].join('\n'),
  );
  const pod = (namespace: string) =>
    `apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: ${namespace}}\nspec: {containers: [{name: hub, image: "nginx:1.27", imagePullPolicy: Always}, {name: gh, image: "ghcr.io/acme/api:1", imagePullPolicy: Always}]}\n`;
  const result = await imagegate(['check', '--config', config, '-f', '-', '-o', 'json'], {
    stdin: ['us', 'eu-1', 'lab'].map(pod).join('---\n'),
  });
  const images = report(result).results.map((r) => {
    const spec = (r.mutated?.spec ?? {}) as { containers?: { image: string }[] };
    return [r.verdict, ...(spec.containers ?? []).map((c) => c.image)];
  });
  t.deepEqual(images, [
    ['allowed', 'harbor.example.com/hub/library/nginx:1.27', 'harbor.example.com/ghcr/acme/api:1'],
    // The override names docker.io only: ghcr.io is not rewritten into a trusted registry.
    ['denied', 'harbor-eu.example.com/hub/library/nginx:1.27', 'ghcr.io/acme/api:1'],
    // Nothing rewritten, nothing mutated.
    ['denied'],
  ]);
  t.is(result.code, 1);
});

test('prepend mode leaves ported and IPv6 registries as they are', async (t) => {
  const config = await tempFile(
    'prepend.yaml',
    'trustedRegistries: [cache.example.com/docker.io, "localhost:5000"]\nrewriteRegistry: cache.example.com\nrewriteMode: prepend\n',
  );
  const pod = await tempFile(
    'pod.yaml',
    'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - {name: a, image: "nginx:1.27.3"}\n    - {name: b, image: "localhost:5000/app:1"}\n    - {name: c, image: "[::1]:5000/app:1"}\n',
  );
  const result = await imagegate(['check', '--config', config, '-f', pod, '-o', 'json']);
  const [only] = report(result).results;
  const spec = (only?.mutated?.spec ?? { containers: [] }) as { containers: { image: string }[] };
  const containers = spec.containers;
  t.deepEqual(
    containers.map((c) => c.image),
    [
      'cache.example.com/docker.io/library/nginx:1.27.3',
      'localhost:5000/app:1',
      '[::1]:5000/app:1',
    ],
  );
  t.deepEqual(only?.reasons, [
    'container "c" (containers[2]) image "[::1]:5000/app:1": registry [::1]:5000/app is not trusted (trusted: cache.example.com/docker.io, localhost:5000)',
  ]);
});
