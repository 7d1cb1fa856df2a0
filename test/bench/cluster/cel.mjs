/**
 * The `cel` backend of `make bench-cluster`: the bench policy as Kubernetes' own CEL
 * admission, no webhook and no process of ours. cel/validating.yaml is a
 * ValidatingAdmissionPolicy (trusted registries, no latest, pull policy Always; every image
 * the kubelet pulls) and cel/mutating.yaml a MutatingAdmissionPolicy (pull policy Always),
 * each with its binding to the bench namespace, failure policy Fail. Both are
 * admissionregistration.k8s.io/v1: ValidatingAdmissionPolicy is GA since 1.30 and
 * MutatingAdmissionPolicy since 1.36, served and enforced by default from then on, so the
 * control plane needs no feature gate or runtime-config for this backend (start() checks
 * that the API server serves both and says so otherwise). Its cost shows in the API
 * server's CPU, not in a backend column.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, sleep } from '../lib.mjs';
import { apply, kubectl, must, untilEnforcing } from './kube.mjs';

export const name = 'cel';

const HERE = join(ROOT, 'test', 'bench', 'cluster', 'cel');
const GROUP = 'admissionregistration.k8s.io/v1';
const KINDS = [
  'validatingadmissionpolicies',
  'validatingadmissionpolicybindings',
  'mutatingadmissionpolicies',
  'mutatingadmissionpolicybindings',
];

/**
 * Why the CEL policies judge a pod differently from the policy, by case name (cases.mjs),
 * shown in the report next to each difference. Empty: on 1.37.2 they judge every case as
 * the policy does, since cel/validating.yaml reads references as the runtime does (the
 * report flags any difference it does not explain).
 */
export const explain = {};

/** Fails with what to change when the API server does not serve the v1 CEL policies. */
async function checkServed(plane) {
  const r = await kubectl(plane, ['get', '--raw', `/apis/${GROUP}`]);
  const served = r.code === 0 ? JSON.parse(r.stdout).resources.map((x) => x.name) : [];
  const missing = KINDS.filter((k) => !served.includes(k));
  if (missing.length > 0) {
    throw new Error(
      `cel: ${plane.version} does not serve ${missing.join(', ')} in ${GROUP}. ` +
        'MutatingAdmissionPolicy is GA (v1, on by default) from 1.36; before that it needs ' +
        '--feature-gates=MutatingAdmissionPolicy=true and --runtime-config for its beta ' +
        'version, and cel/*.yaml in that version.',
    );
  }
}

/**
 * The controller manager's policy status controller type-checks a ValidatingAdmissionPolicy
 * against the Pod schema a moment after it is created; its warnings, if any.
 */
async function typeWarnings(plane) {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const status = JSON.parse(
      await must(plane, ['get', 'validatingadmissionpolicy', 'bench-images', '-o', 'json']),
    ).status;
    if (status?.observedGeneration !== undefined) {
      const warnings = status.typeChecking?.expressionWarnings ?? [];
      return warnings.length === 0
        ? 'no warnings'
        : warnings.map((w) => `${w.fieldRef}: ${w.warning}`).join('; ');
    }
    await sleep(250);
  }
  return 'not reported within 10 s';
}

export async function start({ plane }) {
  await checkServed(plane);
  for (const file of ['validating.yaml', 'mutating.yaml']) {
    await apply(plane, readFileSync(join(HERE, file), 'utf8'));
  }
  // Policies take effect once the API server's informers have them: probe as for webhooks.
  await untilEnforcing(plane, 'cel');
  const typeChecking = await typeWarnings(plane);
  return {
    pids: () => [],
    // Nothing to stop: the policies live in this control plane, which goes next.
    stop: async () => {},
    notes: [
      `ValidatingAdmissionPolicy bench-images and MutatingAdmissionPolicy bench-pull-always (test/bench/cluster/cel/), each with a binding to namespace bench; ${GROUP}, served by default on ${plane.version}: no feature gate or runtime-config`,
      `no process: the policies run inside kube-apiserver (their CPU is in its column); type checking of the validating policy: ${typeChecking}`,
    ],
  };
}
