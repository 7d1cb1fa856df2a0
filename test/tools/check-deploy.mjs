// Checks what `kustomize build` rendered from deploy/ (test/tools/render-deploy.sh runs it):
// that every object is well-formed, and that the webhook configurations cannot lock the
// gateway out, fail closed, and send it every object the policy covers. Also checks the
// TLS material the base was built from, and the control-plane files.
//
//   node test/tools/check-deploy.mjs [--ci] [--control-plane DIR] NAME=RENDERED.yaml ...
//
// --ci: the base must still hold the committed placeholders (no real key in git).
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';

const GATEWAY_NAMESPACE = 'imagegate-system';
const EXCLUDED = [GATEWAY_NAMESPACE, 'kube-system'];
const PLACEHOLDER = 'imagegate placeholder';
// What the webhooks must send: [apiGroup, resource]. Keep in step with src/review/workloads.ts
// (its resources are cross-checked below). PersistentVolumeClaims are checked apart: the
// mutating webhook gets them exactly when the configuration sets defaultStorageClass.
const CLAIMS = 'persistentvolumeclaims';
const REQUIRED_RULES = [
  ['', 'pods'],
  ['', 'pods/ephemeralcontainers'],
  ['', 'replicationcontrollers'],
  ['apps', 'deployments'],
  ['apps', 'replicasets'],
  ['apps', 'statefulsets'],
  ['apps', 'daemonsets'],
  ['batch', 'jobs'],
  ['batch', 'cronjobs'],
];
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration',
  'ClusterRole',
  'ClusterRoleBinding',
  'ClusterIssuer',
  'PriorityClass',
]);

const errors = [];
const notes = [];
const fail = (where, message) => errors.push(`${where}: ${message}`);
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v) => (Array.isArray(v) ? v : []);
const decode = (b64) => Buffer.from(String(b64).replace(/\s/g, ''), 'base64').toString('utf8');

/** What registry egress to "anywhere" leaves out: everything but global unicast IPv4. */
const NOT_GLOBAL = [
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.168.0.0/16',
];

function parseYaml(file, where) {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'));
  const objects = [];
  for (const [i, doc] of docs.entries()) {
    for (const e of doc.errors) fail(`${where}#${i + 1}`, `YAML: ${e.message}`);
    const value = doc.toJS();
    if (value !== null && value !== undefined) objects.push(value);
  }
  return objects;
}

/** The resources src/review/workloads.ts covers (by name: matchPolicy Equivalent maps groups). */
function coveredResources() {
  const path = new URL('../../src/review/workloads.ts', import.meta.url);
  if (!existsSync(path))
    throw new Error(`${path.pathname} is missing: cannot know the covered kinds`);
  return [...readFileSync(path, 'utf8').matchAll(/resource: '([a-z]+)'/g)].map((m) => m[1]);
}

function checkWellFormed(name, objects) {
  const seen = new Set();
  for (const [i, o] of objects.entries()) {
    const where = `${name}#${i + 1}`;
    if (!isObject(o)) {
      fail(where, 'not a mapping');
      continue;
    }
    for (const field of ['apiVersion', 'kind']) {
      if (typeof o[field] !== 'string' || o[field] === '') fail(where, `no ${field}`);
    }
    if (typeof o.metadata?.name !== 'string' || o.metadata.name === '') {
      fail(where, `${o.kind} without metadata.name`);
    }
    const namespaced = !CLUSTER_SCOPED.has(o.kind);
    if (namespaced && o.metadata?.namespace !== GATEWAY_NAMESPACE) {
      fail(where, `${o.kind}/${o.metadata?.name} is not in namespace ${GATEWAY_NAMESPACE}`);
    }
    const key = `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;
    if (seen.has(key)) fail(where, `duplicate ${key}`);
    seen.add(key);
  }
}

const find = (objects, kind, name) =>
  objects.find((o) => o?.kind === kind && (name === undefined || o.metadata?.name === name));

function checkDeployment(name, objects) {
  const where = `${name}: Deployment/imagegate`;
  const d = find(objects, 'Deployment', 'imagegate');
  if (d === undefined) return fail(name, 'no Deployment imagegate');
  const pod = d.spec?.template?.spec ?? {};
  const c = pod.containers?.[0] ?? {};
  const sc = { ...pod.securityContext, ...c.securityContext };
  if (!(d.spec?.replicas >= 2)) fail(where, 'fewer than 2 replicas');
  if (pod.automountServiceAccountToken !== false) fail(where, 'automountServiceAccountToken');
  const anti = list(pod.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution);
  if (!anti.some((t) => t.podAffinityTerm?.topologyKey === 'kubernetes.io/hostname')) {
    fail(where, 'no preferred pod anti-affinity by kubernetes.io/hostname');
  }
  const expect = {
    runAsNonRoot: true,
    runAsUser: 65532,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
  };
  for (const [k, v] of Object.entries(expect)) {
    if (sc[k] !== v) fail(where, `securityContext.${k} must be ${v}`);
  }
  if (!list(sc.capabilities?.drop).includes('ALL')) fail(where, 'capabilities must drop ALL');
  if (sc.seccompProfile?.type !== 'RuntimeDefault') fail(where, 'seccompProfile RuntimeDefault');
  for (const kind of ['requests', 'limits']) {
    if (!isObject(c.resources?.[kind])) fail(where, `no resources.${kind}`);
  }
  const ports = Object.fromEntries(list(c.ports).map((p) => [p.name, p.containerPort]));
  if (ports.health !== 8080 || ports.https !== 8443) fail(where, 'ports https 8443, health 8080');
  for (const [probe, path] of [
    ['livenessProbe', '/healthz'],
    ['readinessProbe', '/readyz'],
  ]) {
    const get = c[probe]?.httpGet;
    if (get?.path !== path || get?.port !== 'health') fail(where, `${probe}: ${path} on health`);
  }
  // `--flag value` and `--flag=value` alike.
  const args = list(c.args)
    .join(' ')
    .replace(/(--[a-z-]+) (?!--)/g, '$1=');
  const mounts = Object.fromEntries(list(c.volumeMounts).map((m) => [m.name, m.mountPath]));
  const volumes = list(pod.volumes);
  // The bundle: the ConfigMap (the default), or a remote source whose last good bundle is
  // kept on a writable volume, so a restarted container serves it during an outage.
  const remote = /--bundle=(oci|https):\/\//.exec(args);
  const wants = [
    ...(remote === null
      ? [
          [
            'configMap',
            'imagegate-bundle',
            '/etc/imagegate/bundle',
            '--bundle=/etc/imagegate/bundle',
          ],
        ]
      : []),
    ['configMap', 'imagegate-config', '/etc/imagegate/config', '--config=/etc/imagegate/config/'],
    ['secret', 'imagegate-tls', '/etc/imagegate/tls', '--tls-cert=/etc/imagegate/tls/tls.crt'],
  ];
  for (const [type, source, path, flag] of wants) {
    const v = volumes.find((x) => (x[type]?.name ?? x[type]?.secretName) === source);
    if (v === undefined || mounts[v.name] !== path) fail(where, `${source} not mounted at ${path}`);
    if (!args.includes(flag)) fail(where, `args lack ${flag}`);
  }
  if (remote !== null) {
    const persist = /--bundle-persist-dir=(\S+)/.exec(args)?.[1];
    const mount = list(c.volumeMounts).find((m) => m.mountPath === persist);
    const volume = volumes.find((v) => v.name === mount?.name);
    if (persist === undefined)
      fail(where, `a ${remote[1]} bundle source without --bundle-persist-dir`);
    else if (mount === undefined || mount.readOnly === true) {
      fail(where, `--bundle-persist-dir ${persist} is not a writable mount`);
    } else if (volume?.emptyDir === undefined && volume?.persistentVolumeClaim === undefined) {
      fail(where, `--bundle-persist-dir ${persist} must be an emptyDir or a claim`);
    }
    if (volumes.some((v) => v.configMap?.name === 'imagegate-bundle')) {
      fail(where, 'a remote bundle source and the imagegate-bundle ConfigMap mounted both');
    }
    if (remote[1] === 'oci' && !args.includes('--registry-credentials=')) {
      fail(
        where,
        'an oci:// bundle source without --registry-credentials (components/registry-facts)',
      );
    }
  }
  const labels = d.spec?.template?.metadata?.labels ?? {};
  const selects = (sel) =>
    isObject(sel) &&
    Object.keys(sel).length > 0 &&
    Object.entries(sel).every(([k, v]) => labels[k] === v);
  const svc = find(objects, 'Service', 'imagegate');
  const https = list(svc?.spec?.ports).find((p) => p.port === 443);
  if (!selects(svc?.spec?.selector)) fail(name, 'Service imagegate does not select the gateway');
  if (https?.targetPort !== 'https' && https?.targetPort !== 8443) {
    fail(name, 'Service imagegate: port 443 must target https (8443)');
  }
  const pdb = find(objects, 'PodDisruptionBudget');
  if (pdb?.spec?.minAvailable !== 1 || !selects(pdb?.spec?.selector?.matchLabels)) {
    fail(name, 'PodDisruptionBudget with minAvailable 1 over the gateway pods');
  }
  const config = find(objects, 'ConfigMap', 'imagegate-config')?.data?.['config.yaml'];
  if (typeof config !== 'string') fail(name, 'ConfigMap imagegate-config has no config.yaml');
  return svc;
}

/**
 * A NetworkPolicy over the gateway must let the API server reach the webhook port, or every
 * pod creation in the cluster fails. The API server is rarely a pod, so only a rule open to
 * any source, or one narrowed by ipBlock (the control plane's addresses), can admit it;
 * pod and namespace selectors cannot. Its ports must be the container's, by name or number.
 */
function checkNetworkPolicies(name, objects) {
  const d = find(objects, 'Deployment', 'imagegate');
  const labels = d?.spec?.template?.metadata?.labels ?? {};
  const c = d?.spec?.template?.spec?.containers?.[0] ?? {};
  const byName = Object.fromEntries(list(c.ports).map((p) => [p.name, p.containerPort]));
  const number = (port) => (typeof port === 'string' ? byName[port] : port);
  for (const np of objects.filter((o) => o.kind === 'NetworkPolicy')) {
    const where = `${name}: NetworkPolicy/${np.metadata?.name}`;
    const sel = np.spec?.podSelector?.matchLabels ?? {};
    if (!Object.entries(sel).every(([k, v]) => labels[k] === v)) continue; // not the gateway's
    const rules = list(np.spec?.ingress);
    for (const rule of rules) {
      for (const p of list(rule.ports)) {
        if (number(p.port) === undefined) fail(where, `port ${p.port} is not a container port`);
      }
    }
    const toWebhook = rules.filter(
      (r) => list(r.ports).length === 0 || list(r.ports).some((p) => number(p.port) === 8443),
    );
    const open = toWebhook.some((r) => list(r.from).length === 0);
    const byAddress = toWebhook.flatMap((r) => list(r.from).filter((f) => isObject(f.ipBlock)));
    const restrictsIngress = list(np.spec?.policyTypes).includes('Ingress') || rules.length > 0;
    if (restrictsIngress && !open && byAddress.length === 0) {
      fail(where, 'nothing lets the API server reach the webhook port (https, 8443)');
    } else if (restrictsIngress && !open) {
      const cidrs = byAddress.map((f) => f.ipBlock.cidr).join(', ');
      notes.push(
        `${where}: webhook port only from ${cidrs}: it must hold the API server's addresses`,
      );
    } else if (restrictsIngress) {
      notes.push(`${where}: webhook port open to the API server; ${rules.length} ingress rule(s)`);
    } else {
      // Egress only (registry facts): never the link-local range; the private ranges and
      // loopback only by a rule of their own, opened on purpose (registry-private-network).
      const blocks = list(np.spec?.egress).flatMap((r) => list(r.to).map((t) => t.ipBlock));
      const missing = (b) => NOT_GLOBAL.filter((cidr) => !list(b.except).includes(cidr));
      for (const block of blocks.filter((b) => isObject(b) && b.cidr === '0.0.0.0/0')) {
        if (missing(block).length > 0) {
          fail(where, `egress to 0.0.0.0/0 must except ${missing(block).join(', ')}`);
        }
      }
      const linkLocal = blocks.filter((b) => isObject(b) && b.cidr.startsWith('169.254.'));
      if (linkLocal.length > 0) fail(where, 'egress must never open 169.254.0.0/16 (metadata)');
      notes.push(`${where}: egress only, ${list(np.spec?.egress).length} rule(s)`);
    }
  }
}

/** The policy configuration the render ships (ConfigMap imagegate-config), parsed. */
function shippedConfig(objects) {
  const text = find(objects, 'ConfigMap', 'imagegate-config')?.data?.['config.yaml'];
  const config = typeof text === 'string' ? parse(text) : undefined;
  return isObject(config) ? config : {};
}

/** The configuration sets `key` (truthy), at the top or in a namespace's override. */
function configSets(objects, key) {
  const config = shippedConfig(objects);
  const parts = [config, ...Object.values(isObject(config.namespaces) ? config.namespaces : {})];
  return parts.some((part) => {
    const value = isObject(part) ? part[key] : undefined;
    return Array.isArray(value) ? value.length > 0 : Boolean(value);
  });
}

/**
 * The audit's pods, when a NetworkPolicy restricts them: egress to the API server (443 or
 * 6443), never to the link-local range; registry egress only when registry facts are on.
 */
function checkAuditNetworkPolicies(name, objects) {
  const audit = find(objects, 'Deployment', 'imagegate-audit');
  if (audit === undefined) return;
  const labels = audit.spec?.template?.metadata?.labels ?? {};
  const selects = (np) => {
    const sel = np.spec?.podSelector ?? {};
    const byLabel = Object.entries(sel.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
    const byExpression = list(sel.matchExpressions).every(
      (e) => e.operator === 'In' && list(e.values).includes(labels[e.key]),
    );
    return byLabel && byExpression;
  };
  const policies = objects.filter((o) => o.kind === 'NetworkPolicy' && selects(o));
  const egress = policies.filter((np) => list(np.spec?.policyTypes).includes('Egress'));
  if (egress.length === 0) return;
  const rules = egress.flatMap((np) => list(np.spec?.egress));
  const toPort = (port) =>
    rules.some((r) => list(r.ports).length === 0 || list(r.ports).some((p) => p.port === port));
  if (!toPort(443) && !toPort(6443)) {
    fail(`${name}: audit`, 'its NetworkPolicies let it reach no API server (443 or 6443)');
  }
  for (const block of rules.flatMap((r) => list(r.to).map((t) => t.ipBlock))) {
    if (
      isObject(block) &&
      block.cidr === '0.0.0.0/0' &&
      !list(block.except).includes('169.254.0.0/16')
    ) {
      fail(`${name}: audit`, 'egress to 0.0.0.0/0 must except 169.254.0.0/16 (metadata)');
    }
  }
  const registries = configSets(objects, 'pinDigests') || configSets(objects, 'signatures');
  const dns = rules.some((r) => list(r.ports).some((p) => p.port === 53));
  if (dns !== registries) {
    fail(
      `${name}: audit`,
      registries
        ? 'registry facts are on, but no NetworkPolicy lets the audit reach registries'
        : 'registry egress (DNS) opened for the audit, but registry facts are off',
    );
  }
  notes.push(
    `${name}: audit NetworkPolicies: ${policies.map((np) => np.metadata?.name).join(', ')}`,
  );
}

function checkTls(name, objects, svc, ci) {
  const host = `${svc?.metadata?.name}.${svc?.metadata?.namespace}.svc`;
  const secret = find(objects, 'Secret', 'imagegate-tls');
  const cert = objects.find(
    (o) => o?.kind === 'Certificate' && o.spec?.secretName === 'imagegate-tls',
  );
  if ((secret === undefined) === (cert === undefined)) {
    return fail(name, 'imagegate-tls must come from exactly one of: the Secret, a Certificate');
  }
  if (cert !== undefined) {
    if (!list(cert.spec?.dnsNames).includes(host)) fail(name, `Certificate lacks dnsName ${host}`);
    notes.push(`${name}: TLS from cert-manager Certificate ${cert.metadata.name}`);
    return { injectFrom: `${cert.metadata.namespace}/${cert.metadata.name}` };
  }
  const pem = Object.fromEntries(
    ['tls.crt', 'tls.key', 'ca.crt'].map((k) => [k, decode(secret.data?.[k] ?? '')]),
  );
  if (secret.type !== 'kubernetes.io/tls')
    fail(name, 'Secret imagegate-tls: type kubernetes.io/tls');
  if (Object.values(pem).every((v) => v.startsWith(PLACEHOLDER))) {
    notes.push(`${name}: TLS placeholders (run \`imagegate certs --out deploy/base/generated\`)`);
    return { caBundle: pem['ca.crt'] };
  }
  if (ci) {
    fail(name, 'deploy/base/generated holds real certificates or keys: never commit them');
  }
  try {
    const leaf = new X509Certificate(pem['tls.crt']);
    const cas = pem['ca.crt'].match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g);
    if (!list(cas).some((ca) => leaf.verify(new X509Certificate(ca).publicKey))) {
      fail(name, 'tls.crt is not signed by (any certificate in) ca.crt');
    }
    if (leaf.checkHost(host) === undefined) fail(name, `tls.crt is not valid for ${host}`);
    if (!leaf.checkPrivateKey(createPrivateKey(pem['tls.key']))) {
      fail(name, 'tls.key does not match tls.crt');
    }
    if (new Date(leaf.validTo) < new Date()) fail(name, `tls.crt expired ${leaf.validTo}`);
    notes.push(`${name}: TLS for ${host} valid until ${leaf.validTo}`);
  } catch (error) {
    fail(name, `TLS material in deploy/base/generated: ${error.message}`);
  }
  return { caBundle: pem['ca.crt'] };
}

function checkWebhooks(name, objects, svc, tls) {
  const covered = coveredResources();
  for (const [kind, path] of [
    ['ValidatingWebhookConfiguration', '/v1/validate'],
    ['MutatingWebhookConfiguration', '/v1/mutate'],
  ]) {
    const config = find(objects, kind);
    if (config === undefined) {
      fail(name, `no ${kind}`);
      continue;
    }
    const inject = config.metadata?.annotations?.['cert-manager.io/inject-ca-from'];
    const webhooks = list(config.webhooks);
    if (webhooks.length === 0) fail(name, `${kind} has no webhooks`);
    for (const w of webhooks) {
      const where = `${name}: ${kind} ${w.name}`;
      const expr = list(w.namespaceSelector?.matchExpressions).find(
        (e) => e.key === 'kubernetes.io/metadata.name' && e.operator === 'NotIn',
      );
      const missing = EXCLUDED.filter((ns) => !list(expr?.values).includes(ns));
      if (missing.length > 0) fail(where, `namespaceSelector must exclude ${missing.join(', ')}`);
      if (w.objectSelector !== undefined && Object.keys(w.objectSelector).length > 0) {
        fail(where, 'an objectSelector would let objects skip the policy');
      }
      if (w.failurePolicy !== 'Fail') fail(where, 'failurePolicy must be Fail');
      if (w.sideEffects !== 'None') fail(where, 'sideEffects must be None');
      if (w.matchPolicy !== 'Equivalent') fail(where, 'matchPolicy must be Equivalent');
      if (!(w.timeoutSeconds >= 1 && w.timeoutSeconds <= 10)) fail(where, 'timeoutSeconds 1-10');
      const versions = list(w.admissionReviewVersions);
      if (!versions.includes('v1') || !versions.includes('v1beta1')) {
        fail(where, 'admissionReviewVersions must be [v1, v1beta1]');
      }
      if (kind.startsWith('Mutating') && w.reinvocationPolicy !== 'IfNeeded') {
        fail(where, 'reinvocationPolicy must be IfNeeded');
      }
      const s = w.clientConfig?.service;
      if (
        s?.name !== svc?.metadata?.name ||
        s?.namespace !== svc?.metadata?.namespace ||
        (s?.port ?? 443) !== 443 ||
        s?.path !== path
      ) {
        fail(where, `clientConfig.service must be the imagegate Service, port 443, ${path}`);
      }
      const rules = list(w.rules);
      const sends = (group, resource) =>
        rules.some(
          (r) =>
            list(r.apiGroups).some((g) => g === group || g === '*') &&
            list(r.resources).some((x) => x === resource || x === '*' || x === '*/*') &&
            ['CREATE', 'UPDATE'].every((op) =>
              list(r.operations).some((o) => o === op || o === '*'),
            ),
        );
      for (const [group, resource] of REQUIRED_RULES) {
        if (!sends(group, resource)) fail(where, `rules miss ${group || 'core'}/${resource}`);
      }
      const claims = rules.some((r) => list(r.resources).includes(CLAIMS));
      const wantsClaims = kind.startsWith('Mutating') && configSets(objects, 'defaultStorageClass');
      if (claims !== wantsClaims) {
        fail(
          where,
          wantsClaims
            ? `rules miss ${CLAIMS}: the configuration sets defaultStorageClass`
            : `${CLAIMS} sent, but ${kind.startsWith('Mutating') ? 'the configuration sets no defaultStorageClass' : 'only the mutating webhook has anything to do with them'}`,
        );
      }
      for (const resource of covered) {
        if (resource === CLAIMS) continue;
        if (!rules.some((r) => list(r.resources).includes(resource))) {
          fail(where, `rules miss ${resource}, which src/review/workloads.ts covers`);
        }
      }
      const bundle = w.clientConfig?.caBundle;
      if (tls?.injectFrom !== undefined) {
        if (inject !== tls.injectFrom) fail(where, `needs inject-ca-from ${tls.injectFrom}`);
        if (bundle !== undefined) fail(where, 'caBundle set, but cert-manager injects it');
      } else if (tls?.caBundle !== undefined && decode(bundle ?? '') !== tls.caBundle) {
        fail(where, "caBundle is not the imagegate-tls Secret's ca.crt");
      }
    }
  }
}

function ttlOk(ttl) {
  return Number.isInteger(ttl) && (ttl === 0 || ttl === -1 || (ttl > 1 && ttl <= 1800));
}

function checkControlPlane(dir, svc) {
  const file = join(dir, 'admission-configuration.yaml');
  const [config] = parseYaml(file, file);
  if (
    config?.apiVersion !== 'apiserver.config.k8s.io/v1' ||
    config?.kind !== 'AdmissionConfiguration'
  ) {
    return fail(file, 'must be an apiserver.config.k8s.io/v1 AdmissionConfiguration');
  }
  const plugin = list(config.plugins).find((p) => p.name === 'ImagePolicyWebhook');
  const policy = plugin?.configuration?.imagePolicy;
  if (!isObject(policy)) return fail(file, 'no ImagePolicyWebhook plugin with imagePolicy');
  if (policy.defaultAllow !== false) fail(file, 'imagePolicy.defaultAllow must be false');
  for (const ttl of ['allowTTL', 'denyTTL']) {
    if (!ttlOk(policy[ttl])) fail(file, `${ttl}: 0 (default), -1 (no cache) or 1 < ttl <= 1800`);
  }
  if (!(Number.isInteger(policy.retryBackoff) && policy.retryBackoff >= 0)) {
    fail(file, 'retryBackoff must be a whole number of milliseconds');
  }
  const kubeconfigs = [
    policy.kubeConfigFile,
    ...list(config.plugins).map((p) => p.configuration?.kubeConfigFile),
  ].filter((f) => typeof f === 'string');
  for (const path of new Set(kubeconfigs)) {
    const local = join(dir, basename(path));
    if (!existsSync(local)) {
      fail(file, `names ${path}, but ${local} is missing`);
      continue;
    }
    const [kc] = parseYaml(local, local);
    const users = list(kc?.users);
    const host = `${svc?.metadata?.name}.${svc?.metadata?.namespace}.svc`;
    if (path === policy.kubeConfigFile) {
      const cluster = list(kc?.clusters)[0]?.cluster ?? {};
      if (cluster.server !== `https://${host}:443/v1/imagereview`) {
        fail(local, `cluster server must be https://${host}:443/v1/imagereview`);
      }
      if (!cluster['certificate-authority'] && !cluster['certificate-authority-data']) {
        fail(local, 'cluster needs certificate-authority');
      }
    } else if (!users.some((u) => u.name === host)) {
      fail(local, `no user named ${host} (the admission webhooks' host)`);
    }
    for (const u of users) {
      const has = (k) => Boolean(u.user?.[k] ?? u.user?.[`${k}-data`]);
      if (!has('client-certificate') || !has('client-key')) {
        fail(local, `user ${u.name} needs client-certificate and client-key`);
      }
    }
  }
}

const argv = process.argv.slice(2);
const ci = argv.includes('--ci');
const cpAt = argv.indexOf('--control-plane');
const controlPlane = cpAt === -1 ? undefined : argv[cpAt + 1];
const rendered = argv.filter((a, i) => a.includes('=') && (cpAt === -1 || i !== cpAt + 1));
if (rendered.length === 0) {
  console.error('usage: check-deploy.mjs [--ci] [--control-plane DIR] NAME=RENDERED.yaml ...');
  process.exit(2);
}
let baseService;
for (const arg of rendered) {
  const [name, file] = arg.split('=', 2);
  const objects = parseYaml(file, name);
  checkWellFormed(name, objects);
  const svc = checkDeployment(name, objects);
  checkNetworkPolicies(name, objects);
  checkAuditNetworkPolicies(name, objects);
  baseService ??= svc;
  checkWebhooks(name, objects, svc, checkTls(name, objects, svc, ci));
  notes.push(`${name}: ${objects.length} objects`);
}
if (controlPlane !== undefined) checkControlPlane(controlPlane, baseService);

for (const note of notes) console.log(`check-deploy: ${note}`);
if (errors.length > 0) {
  for (const e of errors) console.error(`check-deploy: ${e}`);
  console.error(`check-deploy: ${errors.length} problem(s)`);
  process.exit(1);
}
console.log('check-deploy: ok');
