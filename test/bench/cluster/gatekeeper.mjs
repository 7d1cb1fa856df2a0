/**
 * OPA Gatekeeper for `make bench-cluster`, run out of cluster: the manager built by
 * test/e2e/build-peers.sh, against the bench control plane with the admin kubeconfig,
 * serving its webhooks on 127.0.0.1 with a certificate made here (cert rotation off: it
 * would write a Secret and patch webhook configurations named for a Service). Only the
 * operations admission needs run: `webhook` (validation), `mutation-webhook`, and `generate`
 * (the template controller creates a constraint's CRD only there).
 * The policy is gatekeeper/*.yaml: a ConstraintTemplate, its constraint, two Assigns.
 */
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, ROOT, startProcess, waitFor } from '../lib.mjs';
import {
  apply,
  kubectl,
  loopbackWebhooks,
  must,
  servingCertificate,
  untilEnforcing,
} from './kube.mjs';

export const name = 'gatekeeper';

/**
 * Why the bench's Gatekeeper policy (gatekeeper/*.yaml, written for the 16 cases) judges
 * an edge case differently from the policy, by case name; each is a line or two of Rego
 * or one more Assign away, not a limit of Gatekeeper.
 */
export const explain = {
  'upper-case-host':
    'the ConstraintTemplate compares the registry as written, and `REGISTRY.EXAMPLE.COM` is not in its list (lower() would fix it); a trusted image refused, nothing untrusted admitted.',
  'latest-pinned':
    'the template reads the tag without looking for a digest, so `latest@sha256:…` is refused though the digest decides what is pulled.',
  'upper-case-path':
    'the template splits the reference at "/", ":" and "@" and checks host and tag, not the grammar: it admits a reference no runtime can pull (the kubelet then fails the pod with InvalidImageName; nothing untrusted runs).',
  'short-digest':
    'the template takes any "@" as a digest and does not check the digest itself: it admits a reference no runtime can pull (InvalidImageName on the node; nothing untrusted runs).',
  'volume-trusted':
    "the two Assign mutators set imagePullPolicy on containers and initContainers only; an image volume's pullPolicy stays as written.",
  'volume-untrusted':
    'the template reads containers, initContainers and ephemeralContainers only: an image volume (spec.volumes[].image.reference) is never checked, so an untrusted one is admitted.',
};
const HERE = join(ROOT, 'test', 'bench', 'cluster', 'gatekeeper');
const NAMESPACE = 'gatekeeper-system';
const POD = 'gatekeeper-bench';

/** GATEKEEPER=, GATEKEEPER_CRDS=, … from build-peers.sh --check (exit 3: not built). */
export function peers() {
  const out = execFileSync('bash', [join(ROOT, 'test', 'e2e', 'build-peers.sh'), '--check'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return Object.fromEntries(
    out
      .trim()
      .split('\n')
      .map((line) => line.split(/=(.*)/s).slice(0, 2)),
  );
}

export async function start({ plane, work }) {
  const { GATEKEEPER: manager, GATEKEEPER_CRDS: crds } = peers();
  const version = /gatekeeper-([0-9][^/]*)\//.exec(manager)?.[1] ?? 'unknown';
  await must(plane, ['apply', '--server-side', '-f', crds]);
  await must(plane, ['wait', '--for=condition=Established', '--timeout=60s', '-f', crds]);
  await must(plane, ['create', 'namespace', NAMESPACE]);
  // The template controller owns its status objects by the manager's Pod (POD_NAME) and
  // retries forever while that Pod is missing; out of cluster it is a placeholder (it stays
  // Pending: no kubelet here).
  await apply(plane, [
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: POD, namespace: NAMESPACE, labels: { 'gatekeeper.sh/system': 'yes' } },
      spec: { containers: [{ name: 'manager', image: `openpolicyagent/gatekeeper:v${version}` }] },
    },
  ]);

  const certs = await servingCertificate(join(work, 'gatekeeper-certs'), 'gatekeeper-webhook');
  const port = await freePort();
  const health = await freePort();
  const args = [
    `--port=${port}`,
    '--host=127.0.0.1',
    `--cert-dir=${certs.dir}`,
    '--disable-cert-rotation',
    `--health-addr=127.0.0.1:${health}`,
    '--metrics-addr=0',
    '--operation=webhook',
    '--operation=mutation-webhook',
    // The template controller creates the constraint's CRD only where `generate` runs.
    '--operation=generate',
    // The ValidatingAdmissionPolicy driver would also generate VAPs for the constraint.
    '--enable-k8s-native-validation=false',
    '--log-level=WARNING',
    // Out of cluster nothing drains traffic first: stop at once.
    '--shutdown-delay=0',
  ];
  const proc = startProcess('gatekeeper', manager, args, {
    logDir: work,
    env: { KUBECONFIG: plane.kubeconfig, POD_NAMESPACE: NAMESPACE, POD_NAME: POD },
  });
  try {
    await waitFor(
      'gatekeeper /readyz',
      async () => {
        const res = await fetch(`http://127.0.0.1:${health}/readyz`);
        return res.ok;
      },
      { timeoutMs: 120_000, proc },
    );
    // The template first: its controller creates the constraint's CRD.
    await apply(plane, await readFile(join(HERE, 'template.yaml'), 'utf8'));
    await waitFor(
      'the BenchImagePolicy CRD',
      async () =>
        (await kubectl(plane, ['get', 'crd', 'benchimagepolicy.constraints.gatekeeper.sh']))
          .code === 0,
      { timeoutMs: 60_000, proc },
    );
    await must(plane, [
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      'crd/benchimagepolicy.constraints.gatekeeper.sh',
    ]);
    await apply(plane, await readFile(join(HERE, 'constraint.yaml'), 'utf8'));
    await apply(plane, await readFile(join(HERE, 'assign.yaml'), 'utf8'));
    await apply(
      plane,
      loopbackWebhooks('gatekeeper', {
        port,
        caPem: certs.caPem,
        validatePath: '/v1/admit',
        mutatePath: '/v1/mutate',
      }),
    );
    await untilEnforcing(plane, 'gatekeeper', { proc });
  } catch (error) {
    await proc.kill();
    throw error;
  }
  return {
    version: `v${version}`,
    pids: () => [proc.pid],
    stop: () => proc.kill('SIGTERM', 3_000),
    notes: [
      `manager ${args.join(' ')}`,
      `POD_NAMESPACE=${NAMESPACE} (created) and POD_NAME=${POD}, a placeholder Pod created there (the template controller owns its status objects by it); its CRDs from the chart; webhook configurations registered here (url on loopback)`,
    ],
  };
}
