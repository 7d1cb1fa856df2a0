/**
 * The Kyverno backend of `make bench-cluster`: Kyverno's admission controller (cmd/kyverno,
 * built by test/e2e/build-peers.sh) out of cluster against the bench control plane, with
 * the bench policy as ClusterPolicies (kyverno/images.yaml, kyverno/pull-always.yaml) or,
 * for the registry comparison, image verification (kyverno/verify-images.yaml).
 *
 * Out of cluster (`--serverIP`) Kyverno does what it does in a cluster except that its
 * webhooks call a URL instead of a Service: it generates its CA and serving certificate
 * into Secrets, elects itself leader through a Lease, registers its own Mutating- and
 * ValidatingWebhookConfigurations (the resource webhooks only once a policy needs them,
 * each policy's failure policy), and marks each policy Ready when its webhook is in place.
 * What it needs from us: its CRDs, its namespace and ConfigMap (kyverno/install.yaml), six
 * environment variables a Deployment would set (it exits without them), and the flags below.
 * No Deployment, Service, ServiceAccount or RBAC: serverIP mode skips the Deployment
 * checks (runtime.IsDebug), and the kubeconfig is the admin's (system:masters).
 *
 *   start(ctx)  ctx = { plane, work, namespace, registry? = {host, caFile, publicKeyPem} }
 *               → { version, pids(), stop(), notes }
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { freePort, ROOT, sleep, startProcess, statusBytes } from '../lib.mjs';
import { TRUSTED } from './cases.mjs';
import { apply, kubectl, must, untilEnforcing } from './kube.mjs';

export const name = 'kyverno';

/**
 * Why the bench's Kyverno policies (kyverno/*.yaml, written for the 16 cases) judge an
 * edge case differently from the policy, by case name.
 */
export const explain = {
  'upper-case-host':
    "Kyverno's `images` variable keeps the registry as written, and the AnyNotIn condition compares it with the lower-case hosts; a trusted image refused, nothing untrusted admitted.",
  'latest-pinned':
    '`images.*.*.tag` is still `latest` beside the digest, and the no-latest condition looks at the tag only, so a digest-pinned image is refused.',
  'volume-trusted':
    "bench-pull-always patches containers and initContainers only; an image volume's pullPolicy stays as written.",
  'volume-untrusted':
    "Kyverno 1.19.1's `images` variable holds containers, initContainers and ephemeralContainers, not image volumes: an untrusted image volume is never seen by the rules.",
};

const HERE = join(ROOT, 'test', 'bench', 'cluster', 'kyverno');
/** Kyverno's namespace, and the names its Helm chart gives the admission controller. */
const KYVERNO_NAMESPACE = 'kyverno';
const SERVICE = 'kyverno-svc';
const CA_SECRET = `${SERVICE}.${KYVERNO_NAMESPACE}.svc.kyverno-tls-ca`;
const TLS_SECRET = `${SERVICE}.${KYVERNO_NAMESPACE}.svc.kyverno-tls-pair`;
/** The label Kyverno puts on every webhook configuration it registers. */
const MANAGED = 'webhook.kyverno.io/managed-by=kyverno';

/** KYVERNO= and KYVERNO_CRDS= from build-peers.sh --check (exit 3: not built). */
function peers() {
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [join(ROOT, 'test', 'e2e', 'build-peers.sh'), '--check'],
      { cwd: ROOT },
      (error, stdout, stderr) => {
        const found = Object.fromEntries(
          String(stdout)
            .split('\n')
            .map((line) => line.split('='))
            .filter((kv) => kv.length === 2),
        );
        if (error || !found.KYVERNO || !found.KYVERNO_CRDS) {
          reject(
            new Error(
              `kyverno is not built (bash test/e2e/build-peers.sh): ${String(stderr).trim()}`,
            ),
          );
        } else {
          resolve({ binary: found.KYVERNO, crds: found.KYVERNO_CRDS });
        }
      },
    );
  });
}

function yamlDocs(file) {
  return parseAllDocuments(readFileSync(join(HERE, file), 'utf8')).map((d) => d.toJS());
}

/** The ClusterPolicies to install: the bench policy, or the registry variant. */
export function policies(registry) {
  const [images] = yamlDocs('images.yaml');
  const [pullAlways] = yamlDocs('pull-always.yaml');
  if (registry === undefined) return [images, pullAlways];
  // Registry mode: the bench registry is trusted too (so the verdict cases still hold),
  // and its images must be signed; they are pinned to their digests.
  const trusted = images.spec.rules.find((r) => r.name === 'trusted-registries');
  trusted.validate.deny.conditions.any[0].value = [...TRUSTED, registry.host];
  trusted.validate.message = trusted.validate.message.replace(
    'registry.example.com or mirror.example.com',
    `${TRUSTED.join(', ')} or ${registry.host}`,
  );
  const [verify] = yamlDocs('verify-images.yaml');
  const rule = verify.spec.rules[0].verifyImages[0];
  rule.imageReferences = [`${registry.host}/*`];
  rule.attestors[0].entries[0].keys.publicKeys = registry.publicKeyPem.trim();
  return [images, pullAlways, verify];
}

function tail(file, lines = 40) {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export async function start(ctx) {
  const { plane, work, registry } = ctx;
  const { binary, crds } = await peers();
  const version = `v${/kyverno-(\d+\.\d+\.\d+[^/]*)/.exec(binary)?.[1] ?? 'unknown'}`;
  const notes = [];
  const started = Date.now();

  // CRDs: server-side, as the chart's are too big for a last-applied annotation.
  await must(plane, ['apply', '--server-side', '--force-conflicts', '-f', crds]);
  await must(plane, ['wait', '--for=condition=Established', '--timeout=60s', '-f', crds]);
  await apply(plane, readFileSync(join(HERE, 'install.yaml'), 'utf8'));
  notes.push(
    'created: the Kyverno CRDs (kyverno.io, policies.kyverno.io, reports.kyverno.io, wgpolicyk8s.io), namespace kyverno, ConfigMap kyverno/kyverno (webhooks scoped to namespace bench)',
  );

  const port = await freePort();
  const metricsPort = await freePort();
  const home = join(work, 'kyverno-home');
  mkdirSync(home, { recursive: true });
  const args = [
    `--kubeconfig=${plane.kubeconfig}`,
    // host:port: the webhook URLs are https://<serverIP><path>, and the serving
    // certificate gets the host as an IP SAN.
    `--serverIP=127.0.0.1:${port}`,
    '--webhookServerHost=127.0.0.1',
    `--webhookServerPort=${port}`,
    `--caSecretName=${CA_SECRET}`,
    `--tlsSecretName=${TLS_SECRET}`,
    // Off: admission reports (EphemeralReports for a reports controller nobody runs), and
    // the controller-runtime metrics listener (:8080 by default). Policy exceptions and
    // TUF are off by default. Events as the Helm chart: no PolicyApplied/PolicySkipped.
    '--admissionReports=false',
    '--controllerRuntimeMetricsAddress=0',
    '--enablePolicyException=false',
    '--omitEvents=PolicyApplied,PolicySkipped',
    // The peers' webhook timeout (kube.mjs); the policies say the same.
    '--webhookTimeout=5',
    // Kyverno's Prometheus metrics stay on (the chart's default), on loopback.
    '--metricsHost=127.0.0.1',
    `--metricsPort=${metricsPort}`,
    // Plain text logs (the chart's format and verbosity, -v=2, without terminal colours).
    '--disableLogColor=true',
    ...(ctx.extraArgs ?? []),
  ];
  // What the chart's Deployment sets; Kyverno exits if any of the first six is unset.
  const env = {
    KYVERNO_NAMESPACE,
    KYVERNO_SERVICEACCOUNT_NAME: 'kyverno-admission-controller',
    KYVERNO_DEPLOYMENT: 'kyverno-admission-controller',
    KYVERNO_POD_NAME: 'kyverno-admission-controller-bench',
    INIT_CONFIG: 'kyverno',
    METRICS_CONFIG: 'kyverno-metrics',
    KYVERNO_ROLE_NAME: 'kyverno:admission-controller',
    KYVERNO_SVC: SERVICE,
    // A private HOME and TUF root: no ~/.docker credentials, no sigstore cache in /root.
    HOME: home,
    TUF_ROOT: join(home, '.sigstore', 'root'),
  };
  if (registry !== undefined) {
    if (!existsSync(registry.caFile))
      throw new Error(`kyverno: no registry CA file ${registry.caFile}`);
    // Go's system roots: the registry's CA only (nothing else is fetched over HTTPS; the
    // API server's CA comes from the kubeconfig).
    env.SSL_CERT_FILE = registry.caFile;
  }
  notes.push(
    'policy: ClusterPolicy bench-images (validate, Enforce: {{ images.*.*.registry[] }} AnyNotIn the trusted hosts; {{ images.*.*.tag[] }} AnyIn [latest], Kyverno giving an untagged, undigested image the tag latest) and bench-pull-always (mutate: patchStrategicMerge imagePullPolicy Always on containers and initContainers); Pods in bench, CREATE and UPDATE, autogen off, background false, failurePolicy Fail, timeout 5 s',
  );
  if (registry !== undefined) {
    notes.push(
      `registry mode: also ClusterPolicy bench-verify-images (verifyImages ${registry.host}/*, cosign key, Rekor and CT log ignored, mutateDigest, verifyDigest, required), and ${registry.host} trusted by bench-images; SSL_CERT_FILE = the registry CA`,
    );
  }
  notes.push(`flags: ${args.filter((a) => !a.startsWith('--kubeconfig')).join(' ')}`);
  notes.push(
    `env: ${Object.entries(env)
      .filter(([k]) => k !== 'HOME' && k !== 'TUF_ROOT')
      .map(([k, v]) => `${k}=${k === 'SSL_CERT_FILE' ? '<registry CA>' : v}`)
      .join(' ')}`,
  );

  const spawned = Date.now();
  const proc = startProcess('kyverno', binary, args, { logDir: work, env, cwd: work });
  const fail = (message) =>
    new Error(`${message}\n--- tail of ${proc.logs.err}:\n${tail(proc.logs.err)}`);
  const stop = async () => {
    await proc.kill('SIGTERM', 10_000);
    // In serverIP mode Kyverno leaves its webhook configurations behind when it stops
    // (it removes them only when its Deployment is going away): failure policy Fail would
    // then refuse every pod in bench. Remove them, as the chart's pre-delete hook does.
    await kubectl(plane, [
      'delete',
      'mutatingwebhookconfigurations,validatingwebhookconfigurations',
      '-l',
      MANAGED,
      '--wait=false',
    ]);
  };

  try {
    // Kyverno registers the webhook that validates policies once it leads and has made
    // its certificates; policies applied after that are checked by it, as in a cluster.
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (proc.exited) throw fail('kyverno exited while starting');
      const r = await kubectl(plane, [
        'get',
        'validatingwebhookconfiguration',
        'kyverno-policy-validating-webhook-cfg',
        '-o',
        'name',
      ]);
      if (r.code === 0) break;
      if (Date.now() > deadline) throw fail('kyverno registered no policy webhook within 120 s');
      await sleep(250);
    }
    const registered = Date.now();
    let last = '';
    for (;;) {
      const r = await kubectl(
        plane,
        ['apply', '-f', '-'],
        policies(registry)
          .map((p) => stringify(p))
          .join('---\n'),
      );
      if (r.code === 0) break;
      last = r.stderr.trim();
      // A policy Kyverno refuses is a mistake here, not a start-up race: stop at once.
      if (/denied the request/.test(last))
        throw fail(`kyverno refused the bench policies: ${last}`);
      if (proc.exited || Date.now() > deadline) throw fail(`applying the policies failed: ${last}`);
      await sleep(250);
    }
    try {
      await untilEnforcing(plane, 'kyverno', {
        timeoutMs: Math.max(10_000, deadline - Date.now()),
        proc,
      });
    } catch (error) {
      throw fail(error.message);
    }
    const enforcing = Date.now();
    notes.push(
      `start-up: CRDs and namespace ${((spawned - started) / 1000).toFixed(1)} s; then Kyverno ${((registered - spawned) / 1000).toFixed(1)} s to its policy webhook, ${((enforcing - spawned) / 1000).toFixed(1)} s to enforcing (policies applied and Ready); RSS then ${(statusBytes(proc.pid, 'VmRSS') / 2 ** 20).toFixed(0)} MiB`,
    );
    const hooks = await kubectl(plane, [
      'get',
      'mutatingwebhookconfigurations,validatingwebhookconfigurations',
      '-l',
      MANAGED,
      '-o',
      'jsonpath={range .items[*]}{.metadata.name}{":"}{range .webhooks[*]}{" "}{.name}{" "}{.clientConfig.url}{" "}{.failurePolicy}{" "}{.timeoutSeconds}{"s "}{.namespaceSelector.matchLabels}{" "}{.rules}{";"}{end}{"\\n"}{end}',
    ]);
    notes.push(`webhooks Kyverno registered:\n${hooks.stdout.trimEnd()}`);
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    version,
    pids: () => (proc.exited ? [] : [proc.pid]),
    stop,
    notes,
    logs: proc.logs,
    /** Kyverno's Prometheus endpoint (kyverno_admission_requests_total, ...). */
    metrics: `http://127.0.0.1:${metricsPort}/metrics`,
  };
}
