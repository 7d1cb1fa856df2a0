/**
 * What the API server is given, derived from the real artefacts: the webhook
 * configurations deploy/ renders (switched to the `url:` clientConfig for a gateway on
 * loopback), the kubeconfig `imagegate certs` wrote (pointed at that port), an audit
 * policy, and a policy bundle built from rego/ by the real OPA CLI.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { isRecord } from '../../../src/shared/json.ts';
import { repoPolicyBundle } from '../../helpers/bundles.ts';
import { ROOT } from '../../helpers/cli.ts';

const run = promisify(execFile);

/** The policy configuration every e2e gateway runs with (`--config`). */
export const E2E_CONFIG = `# written by test/e2e/helpers/cluster-files.ts
trustedRegistries: [registry.example.com, mirror.example.com]
breakGlass: true
defaultStorageClass: e2e-standard
excludeNamespaces: [kube-system, e2e-excluded]
namespaces:
  # Validation runs after mutation: the rewritten images must be trusted.
  e2e-rewrite:
    rewriteRegistry: mirror.example.com
    imagePullSecret: mirror-pull
  # Everything that mutates, with the controllers: pull policy (the default), a pull
  # secret and a rewrite from Docker Hub (untrusted) to the mirror (trusted).
  e2e-controllers:
    rewriteRegistry: mirror.example.com
    rewriteIgnore: [registry.example.com]
    imagePullSecret: mirror-pull
  e2e-warn:
    enforcement: warn
  # Harbor-style proxy projects: a target with a path, a ported registry given a mirror.
  e2e-mirrors:
    trustedRegistries: [harbor.example.com]
    mirrors:
      docker.io: harbor.example.com/dockerhub-proxy
      "localhost:5000": harbor.example.com/local
  e2e-strict:
    requireDigest: true
    disallowedTags: [dev]
    exemptImages: ["registry.example.com/tools/*"]
`;

export const TRUSTED = 'registry.example.com, mirror.example.com';

/** Namespaces the scenarios use; imagegate-system is the gateway's own. */
export const NAMESPACES = [
  'e2e',
  'e2e-excluded',
  'e2e-rewrite',
  'e2e-controllers',
  'e2e-warn',
  'e2e-mirrors',
  'e2e-strict',
  'imagegate-system',
] as const;

/** Where the webhook configurations an e2e run registers come from. */
export type WebhookSource = 'kustomize' | 'chart';

const documents = (yaml: string) =>
  parseAllDocuments(yaml)
    .map((doc) => doc.toJS() as unknown)
    .filter(isRecord);

/**
 * The webhook configurations for E2E_CONFIG, which sets defaultStorageClass: so claims are
 * sent too, as deploy/overlays/default-storage-class (the pinned kustomize) and the chart
 * with that key (the pinned Helm) render them.
 */
async function renderedWebhooks(source: WebhookSource): Promise<unknown[]> {
  const tool = (name: string) => join(ROOT, '.tools', 'bin', name);
  if (source === 'chart') {
    const { stdout } = await run(
      tool('helm'),
      [
        'template',
        'imagegate',
        join(ROOT, 'deploy', 'helm', 'imagegate'),
        '-n',
        'imagegate-system',
        '--set',
        'config.defaultStorageClass=e2e-standard',
        '--show-only',
        'templates/webhooks.yaml',
      ],
      { maxBuffer: 8 << 20 },
    );
    return documents(stdout);
  }
  const { stdout } = await run(
    tool('kustomize'),
    ['build', join(ROOT, 'deploy', 'overlays', 'default-storage-class')],
    { maxBuffer: 8 << 20 },
  );
  return documents(stdout).filter((o) => String(o.kind).endsWith('WebhookConfiguration'));
}

/**
 * deploy/'s (or the chart's) Validating- and MutatingWebhookConfiguration with
 * `clientConfig.url` on 127.0.0.1:port and the CA's caBundle; rules, selectors and failure
 * policy unchanged.
 */
export async function webhookConfigurations(
  port: number,
  caPem: string,
  source: WebhookSource = 'kustomize',
): Promise<string> {
  const configs = await renderedWebhooks(source);
  const written: string[] = [];
  for (const config of configs) {
    const webhooks = isRecord(config) ? config.webhooks : undefined;
    if (!isRecord(config) || !Array.isArray(webhooks))
      throw new TypeError(`${source}: no webhooks`);
    for (const webhook of webhooks) {
      if (!isRecord(webhook) || !isRecord(webhook.clientConfig)) {
        throw new TypeError(`${source}: a webhook without clientConfig`);
      }
      const service = webhook.clientConfig.service;
      const path = isRecord(service) ? service.path : undefined;
      if (typeof path !== 'string') throw new TypeError(`${source}: a webhook without a path`);
      webhook.clientConfig = {
        url: `https://127.0.0.1:${port}${path}`,
        caBundle: Buffer.from(caPem).toString('base64'),
      };
    }
    written.push(stringify(config));
  }
  return written.join('---\n');
}

/**
 * `certs` points ImagePolicyWebhook at the Service's DNS name, which a cluster resolves;
 * on loopback the gateway is at 127.0.0.1 (the serving certificate has that IP SAN).
 */
/** The static webhook manifests certs wrote (KEP-5793), pointed at the gateway on loopback. */
export async function pointStaticWebhooksAt(certs: string, port: number): Promise<void> {
  for (const folder of ['validating', 'mutating']) {
    const file = join(certs, 'static', folder, 'imagegate.static.k8s.io.yaml');
    const text = await readFile(file, 'utf8');
    await writeFile(
      file,
      text.replaceAll(/https:\/\/[^/\s]+\/v1\//g, `https://127.0.0.1:${port}/v1/`),
    );
  }
}

export async function pointImagePolicyAt(kubeconfigFile: string, port: number): Promise<void> {
  const kubeconfig: unknown = parse(await readFile(kubeconfigFile, 'utf8'));
  const clusters = isRecord(kubeconfig) ? kubeconfig.clusters : undefined;
  const first: unknown = Array.isArray(clusters) ? clusters[0] : undefined;
  const cluster = isRecord(first) ? first.cluster : undefined;
  if (!isRecord(cluster)) throw new TypeError(`${kubeconfigFile}: no cluster`);
  cluster.server = `https://127.0.0.1:${port}/v1/imagereview`;
  await writeFile(kubeconfigFile, stringify(kubeconfig), { mode: 0o600 });
}

/** Metadata-level events for pods: enough for the admission audit annotations. */
export const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    resources: [{group: "", resources: [pods, pods/ephemeralcontainers]}]
  - level: None
`;

/** The repo's policies (rego/, tests left out) with `change` applied to data.json's config. */
export const policyBundle = (change: Record<string, unknown>) => repoPolicyBundle(change);
