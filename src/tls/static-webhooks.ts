/**
 * Static admission manifests (KEP-5793, "manifest-based admission control config"): the
 * gateway's validating and mutating webhook configurations as files kube-apiserver loads
 * at start from each plugin's `staticManifestsDir` — enforced from the first request, before
 * any API object exists, and beyond the reach of anyone who can delete webhook objects.
 *
 * What the API server requires of them (k8s.io/apiserver v0.37.2, admission/plugin/manifest
 * and webhook/manifest/loader): names ending in `.static.k8s.io`, `clientConfig.url` (a
 * `service` reference is refused), one kind per plugin's folder. The feature gate
 * `ManifestBasedAdmissionControlConfig` is beta and on by default in 1.37, alpha (off) in
 * 1.36, absent in 1.35 — whose API server refuses the `staticManifestsDir` field, hence a
 * separate AdmissionConfiguration for it.
 *
 * The webhooks say what deploy/base's do (test/tls/static-webhooks.test.ts compares them).
 */
import { stringify } from 'yaml';
import type { CertificatePair } from './certs.ts';
import type { ClusterNames } from './control-plane.ts';

export const STATIC_SUFFIX = '.static.k8s.io';
export const STATIC_NAME = `imagegate${STATIC_SUFFIX}`;

const b64 = (text: string) => Buffer.from(text).toString('base64');

/** Pods, their ephemeral containers and every pod template (src/review/workloads.ts). */
const RULES = [
  {
    apiGroups: [''],
    apiVersions: ['v1'],
    resources: ['pods', 'pods/ephemeralcontainers', 'replicationcontrollers'],
    operations: ['CREATE', 'UPDATE'],
    scope: 'Namespaced',
  },
  {
    apiGroups: ['apps'],
    apiVersions: ['v1'],
    resources: ['deployments', 'replicasets', 'statefulsets', 'daemonsets'],
    operations: ['CREATE', 'UPDATE'],
    scope: 'Namespaced',
  },
  {
    apiGroups: ['batch'],
    apiVersions: ['v1'],
    resources: ['jobs', 'cronjobs'],
    operations: ['CREATE', 'UPDATE'],
    scope: 'Namespaced',
  },
];

/** The namespaces the webhooks never see (README, "Namespaces the webhooks never see"). */
export const EXCLUDED_NAMESPACES = [
  'imagegate-system',
  'kube-system',
  'calico-system',
  'tigera-operator',
  'kube-flannel',
  'cilium',
];

function webhook(name: string, url: string, ca: CertificatePair) {
  return {
    name,
    admissionReviewVersions: ['v1', 'v1beta1'],
    clientConfig: { url, caBundle: b64(ca.cert) },
    rules: RULES,
    matchPolicy: 'Equivalent',
    namespaceSelector: {
      matchExpressions: [
        { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: EXCLUDED_NAMESPACES },
      ],
    },
    failurePolicy: 'Fail',
    sideEffects: 'None',
    timeoutSeconds: 5,
  };
}

/**
 * The files, by path relative to certs' output: a folder per plugin and the
 * AdmissionConfiguration that names them. `webhookUrl`: where the API server reaches the
 * gateway (default the Service's DNS name, as for ImagePolicyWebhook).
 */
export function staticWebhookFiles(
  names: ClusterNames,
  ca: CertificatePair,
  webhookUrl?: string,
): Record<string, string> {
  const base = (webhookUrl ?? `https://${names.service}.${names.namespace}.svc:443`).replace(
    /\/+$/,
    '',
  );
  const labels = { 'app.kubernetes.io/name': 'imagegate' };
  const validating = {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name: STATIC_NAME, labels },
    webhooks: [webhook(`validate.imagegate${STATIC_SUFFIX}`, `${base}/v1/validate`, ca)],
  };
  const mutating = {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: STATIC_NAME, labels },
    webhooks: [
      {
        ...webhook(`mutate.imagegate${STATIC_SUFFIX}`, `${base}/v1/mutate`, ca),
        reinvocationPolicy: 'IfNeeded',
      },
    ],
  };
  const dir = names.controlPlaneDir;
  const plugin = (name: string, folder: string) => ({
    name,
    configuration: {
      apiVersion: 'apiserver.config.k8s.io/v1',
      kind: 'WebhookAdmissionConfiguration',
      kubeConfigFile: `${dir}/webhook-kubeconfig.yaml`,
      staticManifestsDir: `${dir}/static/${folder}`,
    },
  });
  const admission = {
    apiVersion: 'apiserver.config.k8s.io/v1',
    kind: 'AdmissionConfiguration',
    plugins: [
      {
        name: 'ImagePolicyWebhook',
        configuration: {
          imagePolicy: {
            kubeConfigFile: `${dir}/imagepolicy-kubeconfig.yaml`,
            allowTTL: names.allowTtl,
            denyTTL: names.denyTtl,
            retryBackoff: 500,
            defaultAllow: false,
          },
        },
      },
      plugin('ValidatingAdmissionWebhook', 'validating'),
      plugin('MutatingAdmissionWebhook', 'mutating'),
    ],
  };
  const yaml = (value: unknown) => stringify(value, { aliasDuplicateObjects: false });
  return {
    [`static/validating/${STATIC_NAME}.yaml`]: yaml(validating),
    [`static/mutating/${STATIC_NAME}.yaml`]: yaml(mutating),
    'admission-configuration-static.yaml': yaml(admission),
  };
}
