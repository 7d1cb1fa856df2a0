/**
 * One end-to-end environment per test file: `imagegate certs`, `imagegate serve` on a
 * mounted ConfigMap bundle, a real kube-apiserver given what certs wrote, and the webhook
 * configurations from deploy/base registered through kubectl. Started in `test.before`,
 * closed in `test.after.always`; whatever started before a failure is stopped again.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isRecord, type JsonObject, stringField } from '../../../src/shared/json.ts';
import { committedBundleBytes } from '../../helpers/bundles.ts';
import { imagegate } from '../../helpers/cli.ts';
import { kubeletSwap, mountConfigMap } from '../../helpers/configmap.ts';
import { type Teardown, Teardowns } from '../../helpers/gateway.ts';
import {
  AUDIT_POLICY,
  E2E_CONFIG,
  NAMESPACES,
  pointImagePolicyAt,
  pointStaticWebhooksAt,
  type WebhookSource,
  webhookConfigurations,
} from './cluster-files.ts';
import { type ControlPlane, cleanEnv, startControlPlane } from './control-plane.ts';
import { type GatewayProcess, startGatewayProcess } from './gateway-process.ts';
import { Kubectl, pod } from './kubectl.ts';
import { type BedNode, type NodeOptions, startNode } from './node.ts';
import { eventually } from './poll.ts';

export interface E2eOptions {
  /** Enable ImagePolicyWebhook (a startup flag: it needs its own control plane). */
  readonly imagePolicyWebhook: boolean;
  /** Whose webhook configurations to register: deploy/base's (default) or the chart's. */
  readonly webhooks?: WebhookSource;
  /**
   * Runs before the gateway starts (registries the configuration must name, say): more
   * namespace overrides for its configuration (YAML under `namespaces:`, indented two
   * spaces), more `imagegate serve` flags, more namespaces to create.
   */
  readonly before?: (work: string, teardown: Teardown) => Promise<GatewayExtras>;
  /**
   * A real node (test/e2e/node.sh: containerd, kubelet, kube-scheduler): pods are
   * scheduled, pulled and run. Only inside test/e2e/isolate.sh, as `make e2e` runs.
   */
  readonly node?: NodeOptions;
  /**
   * Start the API server with the static webhook manifests `imagegate certs` writes
   * (KEP-5793, Kubernetes 1.37+) and register no webhook objects: the gateway judges from
   * the API server's first request.
   */
  readonly staticWebhooks?: boolean;
}

export interface GatewayExtras {
  /** More top-level configuration keys (YAML, not indented), e.g. trustRoots. */
  readonly topLevel?: string;
  readonly namespaceOverrides?: string;
  readonly args?: readonly string[];
  readonly namespaces?: readonly string[];
}

export interface E2e {
  readonly kubectl: Kubectl;
  /** The admin kubeconfig kubectl uses (for other clients of the API server). */
  readonly kubeconfig: string;
  readonly gateway: GatewayProcess;
  /** etcd, kube-apiserver and kube-controller-manager, for tests that take the API away. */
  readonly controlPlane: ControlPlane;
  /** Where certs, config, logs and the control plane's files are. */
  readonly work: string;
  /** The Kubernetes version of the control plane (IMAGEGATE_K8S_VERSION picks it). */
  readonly version: string;
  /** The node, when the options asked for one. */
  readonly node?: BedNode;
  /** Puts a bundle into the watched ConfigMap directory as kubelet does. */
  swapBundle(bundle: Buffer): Promise<void>;
  /**
   * Deletes the webhook configurations (what exists then was made without imagegate, as
   * in a cluster that installs it later), or registers them again and waits until the
   * API server calls them.
   */
  unregisterWebhooks(): Promise<void>;
  registerWebhooks(): Promise<void>;
  /** The audit annotations of the pod's CREATE, once the audit log has the event. */
  auditAnnotations(namespace: string, name: string): Promise<Record<string, string>>;
  /** Stops everything; keeps the files (and says where) when `keep`. */
  close(keep: boolean): Promise<string | undefined>;
}

export async function startE2e(options: E2eOptions): Promise<E2e> {
  const work = await mkdtemp(join(tmpdir(), 'imagegate-e2e-'));
  const cleanup = new Teardowns();
  try {
    return await start(work, options, cleanup);
  } catch (error) {
    await cleanup.run();
    throw new Error(`e2e setup failed; files kept in ${work}`, { cause: error });
  }
}

async function start(work: string, options: E2eOptions, cleanup: Teardowns): Promise<E2e> {
  const certs = join(work, 'certs');
  const made = await imagegate([
    'certs',
    `--out=${certs}`,
    '--ip=127.0.0.1',
    `--control-plane-dir=${certs}`,
    // No ImagePolicyWebhook cache: a swapped bundle or a stopped gateway shows at once.
    '--allow-ttl=-1',
    '--deny-ttl=-1',
  ]);
  if (made.code !== 0) throw new Error(`imagegate certs: ${made.stderr}`);

  const extras = (await options.before?.(work, cleanup)) ?? {};
  const config = join(work, 'config.yaml');
  await writeFile(config, (extras.topLevel ?? '') + E2E_CONFIG + (extras.namespaceOverrides ?? ''));
  const mount = await mountConfigMap(await committedBundleBytes());
  cleanup.teardown(() => rm(mount, { recursive: true, force: true }));

  const gateway = await startGatewayProcess(
    [
      `--tls-cert=${join(certs, 'tls.crt')}`,
      `--tls-key=${join(certs, 'tls.key')}`,
      `--client-ca=${join(certs, 'ca.crt')}`,
      `--bundle=${mount}`,
      `--config=${config}`,
      '--watch-interval-ms=200',
      ...(extras.args ?? []),
    ],
    work,
  );
  cleanup.teardown(async () => {
    await gateway.stop();
  });

  await pointImagePolicyAt(join(certs, 'imagepolicy-kubeconfig.yaml'), gateway.port);
  const staticWebhooks = options.staticWebhooks === true;
  if (staticWebhooks) await pointStaticWebhooksAt(certs, gateway.port);
  const admissionConfig = join(
    certs,
    staticWebhooks ? 'admission-configuration-static.yaml' : 'admission-configuration.yaml',
  );
  await writeFile(join(work, 'audit-policy.yaml'), AUDIT_POLICY);
  const auditLog = join(work, 'audit.log');
  const controlPlane = await startControlPlane({
    dir: join(work, 'control-plane'),
    ...(options.imagePolicyWebhook ? { admissionConfig } : {}),
    apiserverArgs: [
      `--audit-policy-file=${join(work, 'audit-policy.yaml')}`,
      `--audit-log-path=${auditLog}`,
      // Without ImagePolicyWebhook the same file still gives the admission webhooks the
      // client certificate the gateway requires (--client-ca).
      ...(options.imagePolicyWebhook ? [] : [`--admission-control-config-file=${admissionConfig}`]),
    ],
  });
  cleanup.teardown(() => controlPlane.stop());
  let node: BedNode | undefined;
  if (options.node !== undefined) {
    node = await startNode(
      controlPlane.dir,
      { ...cleanEnv(), IMAGEGATE_E2E_CGROUP_ROOT: process.env.IMAGEGATE_E2E_CGROUP_ROOT ?? '' },
      options.node,
    );
    const started = node;
    cleanup.teardown(() => started.stop());
  }

  await mkdir(join(work, 'kube-cache'));
  const kubectl = new Kubectl(
    controlPlane.kubectl,
    controlPlane.kubeconfig,
    join(work, 'kube-cache'),
  );
  for (const namespace of [...NAMESPACES, ...(extras.namespaces ?? [])]) {
    await kubectl.must(['create', 'namespace', namespace]);
  }
  const ca = await readFile(join(certs, 'ca.crt'), 'utf8');
  const registerWebhooks = async () => {
    await kubectl.must(
      ['apply', '-f', '-'],
      await webhookConfigurations(gateway.port, ca, options.webhooks),
    );
    await webhooksInEffect(kubectl);
  };
  if (!staticWebhooks) await registerWebhooks();

  return {
    kubectl,
    kubeconfig: controlPlane.kubeconfig,
    gateway,
    controlPlane,
    work,
    version: controlPlane.version,
    ...(node === undefined ? {} : { node }),
    swapBundle: (bundle) => kubeletSwap(mount, bundle),
    registerWebhooks,
    unregisterWebhooks: async () => {
      await kubectl.must([
        'delete',
        'validatingwebhookconfiguration,mutatingwebhookconfiguration',
        'imagegate',
      ]);
      // Static webhooks go on judging: only the objects' absence can be waited for.
      if (!staticWebhooks) await webhooksGone(kubectl);
    },
    auditAnnotations: (namespace, name) => auditAnnotations(auditLog, namespace, name),
    close: async (keep) => {
      await cleanup.run();
      if (keep) return work;
      await rm(work, { recursive: true, force: true });
      return undefined;
    },
  };
}

/**
 * Webhook configurations take effect a moment after they are stored. Probe with objects
 * ImagePolicyWebhook never sees (Deployments), so this works with it enabled too.
 */
async function webhooksInEffect(kubectl: Kubectl): Promise<void> {
  const deployment = (name: string, image: string): JsonObject => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'e2e' },
    spec: {
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: pod('e2e', name, { containers: [{ name, image }] }).spec,
      },
    },
  });
  await eventually('the validating webhook to deny', async () => {
    const r = await kubectl.create(deployment('probe', 'nginx:1.27'), '--dry-run=server');
    return r.code !== 0 && r.stderr.includes('admission webhook "validate.imagegate');
  });
  await eventually('the mutating webhook to set imagePullPolicy', async () => {
    const r = await kubectl.create(
      deployment('probe', 'registry.example.com/app:1.0'),
      '--dry-run=server',
      '-o=jsonpath={.spec.template.spec.containers[0].imagePullPolicy}',
    );
    return r.code === 0 && r.stdout === 'Always';
  });
}

/** Deleted webhook configurations stop being called a moment later, too. */
async function webhooksGone(kubectl: Kubectl): Promise<void> {
  const probe = pod('e2e', 'probe', { containers: [{ name: 'probe', image: 'nginx:1.27' }] });
  await eventually('the webhooks to be gone', async () => {
    const r = await kubectl.create(
      probe,
      '--dry-run=server',
      '-o=jsonpath={.spec.containers[0].imagePullPolicy}',
    );
    return r.code === 0 && r.stdout === 'IfNotPresent';
  });
}

async function auditAnnotations(
  file: string,
  namespace: string,
  name: string,
): Promise<Record<string, string>> {
  let found: Record<string, string> | undefined;
  await eventually(`the audit event for pod ${namespace}/${name}`, async () => {
    const text = await readFile(file, 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      if (!line.includes(`"name":"${name}"`)) continue;
      const event = parseLine(line);
      if (!isRecord(event) || !isRecord(event.objectRef)) continue;
      const ref = event.objectRef;
      const matches =
        stringField(event, 'verb') === 'create' &&
        stringField(event, 'stage') === 'ResponseComplete' &&
        stringField(ref, 'resource') === 'pods' &&
        stringField(ref, 'subresource') === '' &&
        stringField(ref, 'namespace') === namespace &&
        stringField(ref, 'name') === name;
      if (!matches) continue;
      const annotations = isRecord(event.annotations) ? event.annotations : {};
      found = Object.fromEntries(
        Object.entries(annotations).filter((e): e is [string, string] => typeof e[1] === 'string'),
      );
      return true;
    }
    return false;
  });
  return found ?? {};
}

/** A JSON line, or undefined for one the API server is still writing. */
function parseLine(line: string): unknown {
  try {
    return JSON.parse(line) as unknown;
  } catch {
    return undefined;
  }
}
