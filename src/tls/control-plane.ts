/**
 * What `imagegate certs` writes for the cluster: the TLS Secret, the webhook caBundle, and
 * the API server's side (AdmissionConfiguration + kubeconfigs with a client certificate).
 * Pure: certificates in, documents out.
 */
import { stringify } from 'yaml';
import type { CertificatePair } from './certs.ts';

export interface ClusterNames {
  readonly service: string;
  readonly namespace: string;
  readonly secretName: string;
  /** Where the control plane will find the kubeconfig files (a kube-apiserver host path). */
  readonly controlPlaneDir: string;
  readonly allowTtl: number;
  readonly denyTtl: number;
  /**
   * The ImagePolicyWebhook backend URL. Default: the Service's DNS name, which only works
   * where the API server resolves cluster DNS; a control plane on the host's resolver needs
   * a reachable address (a node port, a load balancer, the ClusterIP).
   */
  readonly imagePolicyServer?: string;
}

const b64 = (text: string) => Buffer.from(text).toString('base64');

/** The names a serving certificate must carry for a Service (as API servers dial it). */
export function serviceDnsNames(service: string, namespace: string): string[] {
  return [
    service,
    `${service}.${namespace}`,
    `${service}.${namespace}.svc`,
    `${service}.${namespace}.svc.cluster.local`,
  ];
}

export function tlsSecret(
  names: ClusterNames,
  ca: CertificatePair,
  serving: CertificatePair,
): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: names.secretName,
      namespace: names.namespace,
      labels: { 'app.kubernetes.io/name': 'imagegate' },
    },
    type: 'kubernetes.io/tls',
    data: { 'tls.crt': b64(serving.cert), 'tls.key': b64(serving.key), 'ca.crt': b64(ca.cert) },
  });
}

function kubeconfig(
  clusters: readonly { name: string; server: string }[],
  users: readonly string[],
  ca: CertificatePair,
  client: CertificatePair,
): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: clusters.map((c) => ({
      name: c.name,
      cluster: { server: c.server, 'certificate-authority-data': b64(ca.cert) },
    })),
    users: users.map((name) => ({
      name,
      user: { 'client-certificate-data': b64(client.cert), 'client-key-data': b64(client.key) },
    })),
    contexts: [
      { name: 'imagegate', context: { cluster: clusters[0]?.name ?? '', user: users[0] ?? '' } },
    ],
    'current-context': 'imagegate',
  });
}

/**
 * ImagePolicyWebhook reads the first cluster as its backend. The admission webhooks pick
 * a user by the webhook's host name (exact, then *.suffix, then without :443, then *, then
 * the current context's user), which lets them present the client certificate the gateway
 * requires when it runs with --client-ca; the current context is the same user, so a `url:`
 * webhook at another address presents it too.
 */
export function controlPlaneFiles(
  names: ClusterNames,
  ca: CertificatePair,
  client: CertificatePair,
): Record<string, string> {
  const host = `${names.service}.${names.namespace}.svc`;
  const imagePolicyKubeconfig = kubeconfig(
    [
      {
        name: 'imagegate',
        server: names.imagePolicyServer ?? `https://${host}:443/v1/imagereview`,
      },
    ],
    ['kube-apiserver'],
    ca,
    client,
  );
  const webhookKubeconfig = kubeconfig(
    [{ name: 'imagegate', server: `https://${host}:443` }],
    [host, `${host}:443`],
    ca,
    client,
  );
  const webhookAdmission = {
    apiVersion: 'apiserver.config.k8s.io/v1',
    kind: 'WebhookAdmissionConfiguration',
    kubeConfigFile: `${names.controlPlaneDir}/webhook-kubeconfig.yaml`,
  };
  const admissionConfiguration = stringify(
    {
      apiVersion: 'apiserver.config.k8s.io/v1',
      kind: 'AdmissionConfiguration',
      plugins: [
        {
          name: 'ImagePolicyWebhook',
          configuration: {
            imagePolicy: {
              kubeConfigFile: `${names.controlPlaneDir}/imagepolicy-kubeconfig.yaml`,
              allowTTL: names.allowTtl,
              denyTTL: names.denyTtl,
              retryBackoff: 500,
              // Fail closed: when the gateway cannot be reached, images are refused.
              defaultAllow: false,
            },
          },
        },
        { name: 'ValidatingAdmissionWebhook', configuration: webhookAdmission },
        { name: 'MutatingAdmissionWebhook', configuration: webhookAdmission },
      ],
    },
    // Plain YAML for the API server's config loader: no &anchors for the repeated block.
    { aliasDuplicateObjects: false },
  );
  return {
    'admission-configuration.yaml': admissionConfiguration,
    'imagepolicy-kubeconfig.yaml': imagePolicyKubeconfig,
    'webhook-kubeconfig.yaml': webhookKubeconfig,
  };
}

/** ImagePolicyWebhook TTLs: 0 = the default, -1 = no cache, else 1 < ttl <= 1800 seconds. */
export function ttlProblem(ttl: number): string | undefined {
  if (!Number.isInteger(ttl)) return 'must be a whole number of seconds';
  if (ttl === 0 || ttl === -1 || (ttl > 1 && ttl <= 1800)) return undefined;
  return 'must be 0 (default), -1 (no cache) or between 2 and 1800 seconds';
}
