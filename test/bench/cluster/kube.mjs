/**
 * What the backends of `make bench-cluster` share: kubectl against the bench control plane,
 * a serving certificate for a webhook on loopback, and the wait until a backend enforces.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, sleep } from '../lib.mjs';
import { NAMESPACE, podOf } from './cases.mjs';

/** kubectl ARGS against the plane; stdin when given. Resolves {code, stdout, stderr}. */
export function kubectl(plane, args, input) {
  return new Promise((resolve) => {
    const child = execFile(
      plane.kubectl,
      [`--kubeconfig=${plane.kubeconfig}`, ...args],
      { maxBuffer: 64 << 20, cwd: ROOT },
      (error, stdout, stderr) =>
        resolve({
          code: error ? (error.code ?? 1) : 0,
          stdout: String(stdout),
          stderr: String(stderr),
        }),
    );
    child.stdin.end(input ?? '');
  });
}

export async function must(plane, args, input) {
  const r = await kubectl(plane, args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Applies objects (JavaScript values, sent as one JSON List, or YAML text). */
export async function apply(plane, objects, extra = []) {
  const text =
    typeof objects === 'string'
      ? objects
      : JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects });
  return must(plane, ['apply', ...extra, '-f', '-'], text);
}

/** A CA and a serving certificate for 127.0.0.1, as PEM files in `dir` (tls.crt, tls.key, ca.crt). */
export async function servingCertificate(dir, commonName) {
  const { createCa, issueCertificate } = await import(join(ROOT, 'dist', 'src', 'tls', 'certs.js'));
  const ca = createCa(`${commonName} bench CA`);
  const leaf = issueCertificate(ca, {
    commonName,
    usage: 'server',
    altNames: ['127.0.0.1', 'localhost'],
  });
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'tls.crt'), leaf.cert);
  await writeFile(join(dir, 'tls.key'), leaf.key, { mode: 0o600 });
  await writeFile(join(dir, 'ca.crt'), ca.cert);
  return { dir, caPem: ca.cert };
}

/**
 * Webhook configurations for a backend on loopback, the same for every peer: Pods on
 * CREATE and UPDATE in the bench namespace, failure policy Fail, 5 s (imagegate's
 * shipped timeout), sideEffects None.
 */
export function loopbackWebhooks(name, { port, caPem, validatePath, mutatePath }) {
  const common = {
    admissionReviewVersions: ['v1'],
    clientConfig: { caBundle: Buffer.from(caPem).toString('base64') },
    failurePolicy: 'Fail',
    matchPolicy: 'Equivalent',
    sideEffects: 'None',
    timeoutSeconds: 5,
    namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NAMESPACE } },
    rules: [
      {
        apiGroups: [''],
        apiVersions: ['v1'],
        operations: ['CREATE', 'UPDATE'],
        resources: ['pods'],
        scope: 'Namespaced',
      },
    ],
  };
  const hook = (kind, suffix, path) => ({
    ...common,
    name: `${suffix}.${name}.bench.local`,
    clientConfig: { ...common.clientConfig, url: `https://127.0.0.1:${port}${path}` },
    ...(kind === 'MutatingWebhookConfiguration' ? { reinvocationPolicy: 'IfNeeded' } : {}),
  });
  return [
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: `${name}-bench` },
      webhooks: [hook('MutatingWebhookConfiguration', 'mutate', mutatePath)],
    },
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingWebhookConfiguration',
      metadata: { name: `${name}-bench` },
      webhooks: [hook('ValidatingWebhookConfiguration', 'validate', validatePath)],
    },
  ];
}

/**
 * Waits until the backend enforces in the bench namespace: an untrusted image refused, a
 * trusted one (`allowedImage`) admitted with its pull policy turned to Always (server-side
 * dry runs: nothing is stored).
 */
export async function untilEnforcing(
  plane,
  what,
  { timeoutMs = 120_000, proc, allowedImage = 'registry.example.com/team/app:1.0' } = {},
) {
  const deadline = Date.now() + timeoutMs;
  const json = (pod) => JSON.stringify(pod);
  let last = '';
  while (Date.now() < deadline) {
    if (proc?.exited) throw new Error(`${what} exited while starting (see ${proc.logs.err})`);
    const denied = await kubectl(
      plane,
      ['create', '--dry-run=server', '-o', 'json', '-f', '-'],
      json(podOf('probe-denied', { app: 'quay.io/evil/miner:1.0' })),
    );
    const allowed = await kubectl(
      plane,
      [
        'create',
        '--dry-run=server',
        '-o',
        'jsonpath={.spec.containers[0].imagePullPolicy}',
        '-f',
        '-',
      ],
      json(podOf('probe-allowed', { app: allowedImage })),
    );
    if (denied.code !== 0 && allowed.code === 0 && allowed.stdout === 'Always') return;
    last = `denied probe: ${denied.code === 0 ? 'allowed' : denied.stderr.trim()}; allowed probe: ${
      allowed.code === 0 ? `pull policy ${allowed.stdout}` : allowed.stderr.trim()
    }`;
    await sleep(500);
  }
  throw new Error(`${what} did not enforce within ${timeoutMs / 1000} s: ${last}`);
}

/**
 * Starts test/bench/cluster/load.mjs in its own process against the plane; `done` resolves
 * with the JSON line it prints (rejects when it fails).
 */
export function startLoad(plane, { concurrency, durationS, warmupS, prefix, image }) {
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'test', 'bench', 'cluster', 'load.mjs'),
      `--kubeconfig=${plane.kubeconfig}`,
      `--namespace=${NAMESPACE}`,
      `--concurrency=${concurrency}`,
      `--duration=${durationS}`,
      `--warmup=${warmupS}`,
      `--prefix=${prefix}`,
      `--image=${image}`,
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d) => {
    out += d;
  });
  const done = new Promise((resolve, reject) =>
    child.on('close', (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`load.mjs exited ${code}`)),
    ),
  );
  return { done };
}
