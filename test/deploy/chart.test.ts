/**
 * The Helm chart and the kustomize base never drift: rendered with the same choices they
 * hold the same objects, compared as objects (embedded YAML parsed too), not as text. Only
 * Helm's own bookkeeping labels are left out of the comparison.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { parse, parseAllDocuments } from 'yaml';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import { packageRoot } from '../../src/shared/paths.ts';

const run = promisify(execFile);
const decode = (b64: unknown) => Buffer.from(String(b64).replace(/\s/g, ''), 'base64').toString();
const ROOT = packageRoot();
const TOOLS = join(ROOT, '.tools', 'bin');
const CHART = join(ROOT, 'deploy', 'helm', 'imagegate');
const HELM_LABELS = ['helm.sh/chart', 'app.kubernetes.io/managed-by', 'app.kubernetes.io/instance'];

async function tool(name: string, args: string[]): Promise<string> {
  const binary = join(TOOLS, name);
  if (!existsSync(binary)) throw new Error(`${binary} is missing: run \`make deps\``);
  return (await run(binary, args, { cwd: ROOT, maxBuffer: 32 << 20 })).stdout;
}

/** Objects by kind/namespace/name, normalized for comparison. */
function objects(yaml: string): Map<string, JsonObject> {
  const found = new Map<string, JsonObject>();
  for (const doc of parseAllDocuments(yaml)) {
    const value: unknown = doc.toJS();
    if (!isRecord(value)) continue;
    const metadata = isRecord(value.metadata) ? value.metadata : {};
    if (isRecord(metadata.labels)) {
      for (const label of HELM_LABELS) delete metadata.labels[label];
    }
    // A configuration file is compared by what it says, not how it is written; base64 by
    // the bytes it carries (kustomize wraps its lines, Helm does not).
    if (value.kind === 'ConfigMap' && isRecord(value.data)) {
      for (const [key, text] of Object.entries(value.data)) {
        if (key.endsWith('.yaml') && typeof text === 'string') value.data[key] = parse(text);
      }
    }
    if (value.kind === 'Secret' && isRecord(value.data)) {
      for (const [key, b64] of Object.entries(value.data)) value.data[key] = decode(b64);
    }
    if (String(value.kind).endsWith('WebhookConfiguration') && Array.isArray(value.webhooks)) {
      for (const webhook of value.webhooks) {
        const client = isRecord(webhook) ? webhook.clientConfig : undefined;
        if (isRecord(client) && 'caBundle' in client) client.caBundle = decode(client.caBundle);
      }
    }
    found.set(`${value.kind}/${metadata.namespace ?? ''}/${metadata.name}`, value);
  }
  return found;
}

const chart = async (...args: string[]) =>
  objects(await tool('helm', ['template', 'imagegate', CHART, '-n', 'imagegate-system', ...args]));
const kustomize = async (dir: string) => objects(await tool('kustomize', ['build', dir]));

const same = test.macro(async (t, dir: string, args: string[]) => {
  const [fromChart, fromKustomize] = await Promise.all([chart(...args), kustomize(dir)]);
  t.deepEqual([...fromChart.keys()].sort(), [...fromKustomize.keys()].sort(), 'the same objects');
  for (const [key, object] of fromKustomize) t.deepEqual(fromChart.get(key), object, key);
});

test('the chart with its default values renders what deploy/base does', same, 'deploy/base', []);
test(
  'the chart with tls.mode cert-manager renders what deploy/overlays/cert-manager does',
  same,
  'deploy/overlays/cert-manager',
  ['-f', join(CHART, 'ci', 'cert-manager-values.yaml')],
);
for (const overlay of ['bundle-oci', 'bundle-service', 'collector', 'monitoring']) {
  test(
    `the chart with ci/${overlay}-values.yaml renders what deploy/overlays/${overlay} does`,
    same,
    `deploy/overlays/${overlay}`,
    ['-f', join(CHART, 'ci', `${overlay}-values.yaml`)],
  );
}
test(
  'the chart with networkPolicy.enabled renders what deploy/overlays/network-policy does',
  same,
  'deploy/overlays/network-policy',
  ['--set', 'networkPolicy.enabled=true'],
);

test(
  'the chart with registry facts on renders what deploy/overlays/registry-facts does',
  same,
  'deploy/overlays/registry-facts',
  ['-f', join(CHART, 'ci', 'registry-facts-values.yaml')],
);

test(
  'the chart with a registry on a private network renders what deploy/overlays/registry-private-network does',
  same,
  'deploy/overlays/registry-private-network',
  ['-f', join(CHART, 'ci', 'registry-private-network-values.yaml')],
);

test(
  'the chart with audit.enabled renders what deploy/overlays/audit does',
  same,
  'deploy/overlays/audit',
  ['-f', join(CHART, 'ci', 'audit-values.yaml')],
);

test(
  'the chart with excludedNamespaces renders what deploy/overlays/excluded-namespaces does',
  same,
  'deploy/overlays/excluded-namespaces',
  ['-f', join(CHART, 'ci', 'excluded-namespaces-values.yaml')],
);

test(
  'the chart with defaultStorageClass renders what deploy/overlays/default-storage-class does',
  same,
  'deploy/overlays/default-storage-class',
  ['-f', join(CHART, 'ci', 'default-storage-class-values.yaml')],
);

test(
  'the chart with audit and networkPolicy renders what deploy/overlays/audit-network-policy does',
  same,
  'deploy/overlays/audit-network-policy',
  ['-f', join(CHART, 'ci', 'audit-network-policy-values.yaml')],
);

/** What each webhook configuration sends: its rules' resources, flattened. */
const sent = (objects: Map<string, JsonObject>) =>
  Object.fromEntries(
    ['Validating', 'Mutating'].map((kind) => {
      const config = objects.get(`${kind}WebhookConfiguration//imagegate`);
      const webhook = JSON.parse(JSON.stringify(config)).webhooks[0];
      return [
        kind,
        {
          resources: (webhook.rules as { resources: string[] }[]).flatMap((r) => r.resources),
          excluded: webhook.namespaceSelector.matchExpressions[0].values as string[],
        },
      ];
    }),
  );

test('claims go to the mutating webhook only where defaultStorageClass is set', async (t) => {
  for (const objects of [await chart(), await kustomize('deploy/base')]) {
    const { Validating, Mutating } = sent(objects);
    t.false(Validating?.resources.includes('persistentvolumeclaims'));
    t.false(Mutating?.resources.includes('persistentvolumeclaims'));
  }
  // At the top, or in one namespace's override: claims are sent, to the mutating webhook.
  for (const args of [
    ['--set', 'config.defaultStorageClass=standard'],
    ['--set', 'config.namespaces.data.defaultStorageClass=fast'],
  ]) {
    const { Validating, Mutating } = sent(await chart(...args));
    t.false(Validating?.resources.includes('persistentvolumeclaims'), args.join(' '));
    t.true(Mutating?.resources.includes('persistentvolumeclaims'), args.join(' '));
  }
});

test('the namespaces the webhooks never see: the defaults, and always the release’s own', async (t) => {
  const defaults = [
    'imagegate-system',
    'kube-system',
    'calico-system',
    'tigera-operator',
    'kube-flannel',
    'cilium',
  ];
  for (const objects of [await chart(), await kustomize('deploy/base')]) {
    const { Validating, Mutating } = sent(objects);
    t.deepEqual(Validating?.excluded, defaults);
    t.deepEqual(Mutating?.excluded, defaults);
  }
  const other = await objects(
    await tool('helm', [
      'template',
      'imagegate',
      CHART,
      '-n',
      'gate',
      '--set',
      'namespace.name=gate',
      '--set',
      'webhooks.excludedNamespaces={kube-system,gate,longhorn-system}',
    ]),
  );
  t.deepEqual(sent(other).Validating?.excluded, ['gate', 'kube-system', 'longhorn-system']);
});

test('the audit’s own egress is the API server; registries only with registry facts', async (t) => {
  const policy = (objects: Map<string, JsonObject>, name: string) =>
    JSON.parse(JSON.stringify(objects.get(`NetworkPolicy/imagegate-system/${name}`) ?? null));
  const on = ['--set', 'audit.enabled=true', '--set', 'networkPolicy.enabled=true'];
  const plain = await chart(...on);
  const audit = policy(plain, 'imagegate-audit');
  t.deepEqual(audit.spec.podSelector.matchLabels, {
    'app.kubernetes.io/name': 'imagegate',
    'app.kubernetes.io/component': 'audit',
  });
  t.deepEqual(
    audit.spec.egress.flatMap((r: { ports: { port: number }[] }) => r.ports.map((p) => p.port)),
    [443, 6443],
  );
  t.is(policy(plain, 'imagegate-registry-egress'), null);
  t.is(policy(await chart('--set', 'audit.enabled=true'), 'imagegate-audit'), null);
  const facts = await chart(...on, '--set', 'config.pinDigests=pods');
  t.deepEqual(policy(facts, 'imagegate-registry-egress').spec.podSelector.matchExpressions, [
    { key: 'app.kubernetes.io/component', operator: 'In', values: ['gateway', 'audit'] },
  ]);
});

test('registry egress opens only when pinDigests or signatures are on', async (t) => {
  const egress = 'NetworkPolicy/imagegate-system/imagegate-registry-egress';
  t.false((await chart('--set', 'networkPolicy.enabled=true')).has(egress));
  t.true(
    (await chart('--set', 'networkPolicy.enabled=true', '--set', 'config.pinDigests=all')).has(
      egress,
    ),
  );
  // In one namespace's override only: still on.
  const override = await chart(
    '--set',
    'networkPolicy.enabled=true',
    '--set',
    'config.namespaces.prod.pinDigests=pods',
  );
  t.true(override.has(egress));
  const args = JSON.parse(JSON.stringify(override.get('Deployment/imagegate-system/imagegate')))
    .spec.template.spec.containers[0].args as string[];
  t.true(args.includes('--registry-budget-ms=3000'));
});

test('every option on: each shows in what the chart renders', async (t) => {
  const all = await chart('-f', join(CHART, 'ci', 'all-options-values.yaml'));
  t.false(all.has('Namespace//imagegate-system'), 'namespace.create: false');
  t.true(all.has('NetworkPolicy/imagegate-system/imagegate'));
  t.true(all.has('ConfigMap/imagegate-system/imagegate-bundle'));
  t.true(all.has('Secret/imagegate-system/imagegate-control-plane'));
  const deployment = all.get('Deployment/imagegate-system/imagegate');
  const container = JSON.parse(JSON.stringify(deployment)).spec.template.spec.containers[0];
  t.regex(container.image, /@sha256:0123/);
  t.true(container.args.includes('--workers=2'));
  t.true(container.args.includes('--client-ca=/etc/imagegate/tls/ca.crt'));
  t.true(container.args.includes('--watch-interval-ms=1000'));
  const config = all.get('ConfigMap/imagegate-system/imagegate-config')?.data;
  const file = isRecord(config) ? config['config.yaml'] : undefined;
  t.like(file, {
    mirrors: { 'docker.io': 'harbor.example.com/dockerhub-proxy' },
    maxImages: 10000,
    disallowedTags: ['dev', 'main'],
  });
});

test('values the chart cannot render are refused with the reason', async (t) => {
  const refused = async (args: string[], message: RegExp) => {
    const error = await t.throwsAsync(() => chart(...args));
    t.regex(String((error as { stderr?: unknown } | undefined)?.stderr ?? error), message);
  };
  await refused(
    ['--set', 'tls.mode=selfsigned'],
    /tls.mode must be values, existing or cert-manager/,
  );
  await refused(
    ['--set', 'tls.mode=existing'],
    /tls.caBundle .* is required with tls.mode existing/,
  );
  await refused(
    ['--set', 'webhooks.failurePolicy=Never'],
    /webhooks.failurePolicy must be Fail or Ignore/,
  );
  await refused(['--set', 'webhooks.timeoutSeconds=60'], /timeoutSeconds must be from 1 to 30/);
  await refused(['--set', 'bundle.create=true'], /bundle.create needs bundle.archiveBase64/);
  await refused(
    ['--set', 'config.pinDigests=pods', '--set', 'registryFacts.budgetMs=4000'],
    /registryFacts.budgetMs \(4000\) must leave 2 s of webhooks.timeoutSeconds \(5 s\)/,
  );
  await refused(
    ['--set', 'registryFacts.enabled=true', '--set', 'registryFacts.timeoutMs=5000'],
    /registryFacts.timeoutMs must not be above registryFacts.budgetMs/,
  );
  await refused(['--set', 'imagePolicyWebhook.enabled=true'], /imagePolicyWebhook.clientCert/);
  await refused(['--set', 'bundle.source=s3'], /bundle.source must be configMap, oci or http/);
  await refused(['--set', 'bundle.source=oci'], /bundle.source oci needs bundle.oci.reference/);
  await refused(
    ['--set', 'bundle.source=http', '--set', 'bundle.http.url=http://bundles.example.com/b.tar.gz'],
    /bundle.source http needs bundle.http.url \(https:/,
  );
  await refused(
    ['--set', 'collector.url=https://collector.example.com'],
    /collector.url: turn on collector.decisionLogs or collector.status/,
  );
});
