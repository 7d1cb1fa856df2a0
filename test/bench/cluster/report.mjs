/**
 * docs/BENCHMARKS-CLUSTER.md from run.mjs's results: versions, method, the verdict check,
 * load through the API server as ratios measured in the same run, CPU and memory, the
 * registry comparison, and what each backend needed to run out of cluster. A run the busy
 * guard (busy.mjs) caught on a busy machine says so before anything else.
 */
import { fixed, mib, ms, table } from '../lib.mjs';
import { busyBanner, cell, differing, verdictSection, yes } from './report-verdicts.mjs';

const ratio = (a, b) =>
  Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${(a / b).toFixed(2)}×` : 'n/a';

/** A backend's note as a bullet; its further lines (a listing) as bullets under it. */
function noteLines(note) {
  const [first, ...rest] = note.split('\n');
  return [`  - ${first}`, ...rest.map((line) => `    - \`${line}\``)].join('\n');
}

/**
 * A ratio of two added latencies. Noise can make either zero or negative on a busy machine
 * (the backend faster than the baseline): no ratio means anything then.
 */
const addedRatio = (a, b) => (a > 0 && b > 0 ? ratio(a, b) : 'n/a');

/** imagegate's added p50 as a multiple of a baseline's; a baseline adding nothing is no divisor. */
function multipleOf(igAdded, name, added) {
  if (!Number.isFinite(added)) return `${name}: n/a`;
  if (added <= 0) return `${name} adds nothing measurable (${ms(added, 2)} ms)`;
  return `${addedRatio(igAdded, added)} what ${name} adds (${ms(added, 2)} ms)`;
}

/** The figures a reader asks first, from the tables below. */
function summarySection(r) {
  const by = Object.fromEntries(r.backends.filter((b) => b.load).map((b) => [b.name, b]));
  const base = by.none;
  const ig = by.imagegate;
  const out = ig ? [] : ['- imagegate did not run: no load figures to compare'];
  const floor = [];
  for (const [i, l] of (ig?.load ?? []).entries()) {
    const added = (b, p) => b.load[i].latencyUs[p] - (base ? base.load[i].latencyUs[p] : 0);
    const peers = ['gatekeeper', 'kyverno'].filter((n) => by[n]);
    const baselines = ['noop', 'cel'].filter((n) => by[n] && base);
    const busy = Object.values(by).some((b) => b.load[i].busy);
    out.push(
      `- ${l.concurrency} client${l.concurrency === 1 ? '' : 's'}${busy ? ' (⚠ busy)' : ''}: imagegate ${base ? 'adds' : 'takes (no baseline in this run)'} ${ms(added(ig, 'p50'), 1)} ms at p50` +
        (baselines.length > 0
          ? ` — ${baselines.map((n) => multipleOf(added(ig, 'p50'), n, added(by[n], 'p50'))).join(', ')}`
          : '') +
        (base ? `; it keeps ${ratio(l.rps, base.load[i].rps)} of the baseline's pods/s` : '') +
        peers
          .map(
            (n) =>
              `; ${n} adds ${addedRatio(added(by[n], 'p50'), added(ig, 'p50'))} imagegate's p50, ${ratio(by[n].load[i].rps, l.rps)} its pods/s, ${ratio(by[n].load[i].cpuPer1000.backend, l.cpuPer1000.backend)} its CPU per pod`,
          )
          .join(''),
    );
    if (by.noop && base && [1, 8].includes(l.concurrency)) {
      floor.push(
        `${addedRatio(added(ig, 'p50'), added(by.noop, 'p50'))} at ${l.concurrency} client${l.concurrency === 1 ? '' : 's'}`,
      );
    }
  }
  if (floor.length > 0) {
    out.push(
      `- Issue 24's goal, imagegate's added p50 at most 1.5× the noop webhook's at 1 and 8 clients: ${floor.join(', ')}`,
    );
  }
  // Which pods each backend judges differently from the policy, CEL first (the question
  // users of in-tree policies ask).
  const judging = r.backends
    .filter((b) => b.cases && b.judges !== false && b.name !== 'none')
    .sort((a, b) => (a.name === 'cel' ? -1 : b.name === 'cel' ? 1 : 0));
  const names = (list) => list.map((c) => `\`${c.name}\``).join(', ');
  const verdicts = judging.map((b) => {
    const d = differing(b);
    const label =
      b.name === 'cel' ? 'CEL (ValidatingAdmissionPolicy + MutatingAdmissionPolicy)' : b.name;
    const total = d.policy.length + d.edge.length;
    return total === 0
      ? `${label} gives all ${b.cases.length} pods the policy's verdict`
      : `${label} differs on ${d.policy.length} of the ${b.cases.filter((c) => c.group === 'policy').length} policy pods${d.policy.length ? ` (${names(d.policy)})` : ''} and ${d.edge.length} of the ${b.cases.filter((c) => c.group === 'edge').length} edge pods${d.edge.length ? ` (${names(d.edge)})` : ''}`;
  });
  const anyDiffer = judging.some((b) => {
    const d = differing(b);
    return d.policy.length + d.edge.length > 0;
  });
  if (verdicts.length > 0) {
    out.push(`- Verdicts: ${verdicts.join('; ')}${anyDiffer ? ' (why: see Verdicts)' : ''}`);
  }
  const reg = r.registry?.results.filter((x) => !x.error) ?? [];
  const igReg = reg.find((x) => x.name === 'imagegate');
  for (const x of reg.filter((y) => y !== igReg && igReg)) {
    out.push(
      `- With signatures and pinning, warm: ${x.name} made ${x.warmLoad.registryRequests} registry requests for ${x.warmLoad.created ?? x.warmLoad.status?.['201']} pods, imagegate ${igReg.warmLoad.registryRequests} for ${igReg.warmLoad.status?.['201']} (its tag cache: 30 s); pods/s ${ratio(x.warmLoad.rps, igReg.warmLoad.rps)} imagegate's`,
    );
  }
  return out.join('\n');
}

function loadSection(backends) {
  const ran = backends.filter((b) => b.load);
  const base = ran.find((b) => b.name === 'none');
  const ig = ran.find((b) => b.name === 'imagegate');
  const noop = ran.find((b) => b.name === 'noop');
  const out = [];
  for (const [i, c] of (ran[0]?.load ?? []).map((l) => l.concurrency).entries()) {
    const rows = ran.map((b) => {
      const l = b.load[i];
      const added = (p) => (base ? l.latencyUs[p] - base.load[i].latencyUs[p] : Number.NaN);
      const noopAdded = noop && base ? noop.load[i].latencyUs.p50 - base.load[i].latencyUs.p50 : 0;
      return [
        `${b.name}${l.busy ? ' ⚠' : ''}`,
        `${fixed(l.rps, 1)}${l.range ? ` (${fixed(l.range.rps[0], 0)}–${fixed(l.range.rps[1], 0)})` : ''}`,
        `${ms(l.latencyUs.p50, 1)}${l.range ? ` (${ms(l.range.p50Us[0], 1)}–${ms(l.range.p50Us[1], 1)})` : ''}`,
        ms(l.latencyUs.p99, 1),
        b.name === 'none' ? '—' : ms(added('p50'), 1),
        b.name === 'none' ? '—' : ms(added('p99'), 1),
        b.name === 'none' || b.name === 'noop' || noopAdded <= 0
          ? '—'
          : addedRatio(added('p50'), noopAdded),
        base ? ratio(l.rps, base.load[i].rps) : 'n/a',
        ig && b.name !== 'imagegate' && b.name !== 'none' ? ratio(l.rps, ig.load[i].rps) : '—',
        `${l.created}${Object.keys(l.status).some((s) => s !== '201') ? ` (other: ${JSON.stringify(Object.fromEntries(Object.entries(l.status).filter(([s]) => s !== '201')))})` : ''}`,
      ];
    });
    out.push(
      `### ${c} concurrent client${c === 1 ? '' : 's'}`,
      '',
      table(
        [
          'backend',
          'pods/s',
          'p50 ms',
          'p99 ms',
          'added p50 ms',
          'added p99 ms',
          'added p50 vs noop',
          'pods/s vs none',
          'pods/s vs imagegate',
          'created (all rounds)',
        ],
        rows,
      ),
      '',
    );
  }
  if (ran.some((b) => b.load.some((l) => l.busy))) {
    out.push(
      '⚠: other processes used more than the busy threshold before or during this step (see CPU and memory).',
      '',
    );
  }
  return out.join('\n');
}

/** A backend with a process of its own (not none; not cel, which runs in the API server). */
const hasProcess = (b) => b.name !== 'none' && b.name !== 'cel';

function resourceSection(backends) {
  const ran = backends.filter((b) => b.load);
  const ig = ran.find((b) => b.name === 'imagegate');
  // none and cel have no backend process: its term is 0 there.
  const total = (l) => l.cpuPer1000.backend + l.cpuPer1000.apiserver + l.cpuPer1000.etcd;
  const rows = ran.flatMap((b) =>
    b.load.map((l, i) => [
      `${b.name}${l.busy ? ' ⚠' : ''}`,
      String(l.concurrency),
      b.name === 'cel' ? 'in the API server' : hasProcess(b) ? fixed(l.cpuPer1000.backend, 2) : '—',
      !hasProcess(b) || !ig || b.name === 'imagegate'
        ? '—'
        : ratio(l.cpuPer1000.backend, ig.load[i].cpuPer1000.backend),
      fixed(l.cpuPer1000.apiserver, 2),
      fixed(l.cpuPer1000.etcd, 2),
      fixed(total(l), 2),
      !ig || b.name === 'imagegate' ? '—' : ratio(total(l), total(ig.load[i])),
      hasProcess(b) ? fixed(l.backendCores, 2) : '—',
      hasProcess(b) ? mib(l.backendRssPeakBytes) : '—',
      fixed(l.machineBusyCores, 2),
      `${fixed(l.background.othersCores, 2)} / ${fixed(l.othersDuringCores, 2)}`,
    ]),
  );
  const start = ran
    .filter((b) => b.name !== 'none')
    .map((b) =>
      hasProcess(b)
        ? `- ${b.name}: ready (${b.judges === false ? 'called' : 'enforcing'}) ${fixed(b.startS, 1)} s after start, RSS ${mib(b.rssAfterStart)} MiB then`
        : `- ${b.name}: enforcing ${fixed(b.startS, 1)} s after its policies were created`,
    );
  return [
    table(
      [
        'backend',
        'clients',
        'backend CPU s / 1000 pods',
        'vs imagegate',
        'API server CPU s / 1000 pods',
        'etcd CPU s / 1000 pods',
        'all three CPU s / 1000 pods',
        'vs imagegate',
        'backend cores',
        'backend peak RSS MiB',
        'machine busy cores',
        "others' cores before / during",
      ],
      rows,
    ),
    '',
    ...start,
  ].join('\n');
}

function registrySection(registry) {
  if (!registry) return 'Not run (BENCH_REGISTRY=0, or neither imagegate nor Kyverno selected).';
  const ok = registry.results.filter((r) => !r.error);
  const ig = ok.find((r) => r.name === 'imagegate');
  const verdictRows = ok.flatMap((r) =>
    r.verdicts.map((v) => [
      r.name,
      v.what,
      yes(v.expectAllowed),
      `${v.allowed === v.expectAllowed ? '' : '**≠** '}${yes(v.allowed)}`,
      v.allowed ? `\`${v.storedImage}\`` : cell(v.message, 1000).slice(-220),
    ]),
  );
  const phaseRow = (r, p) => [
    r.name,
    p.label,
    String(p.created ?? p.status?.['201'] ?? 0),
    p.p50Us !== undefined ? ms(p.p50Us, 1) : ms(p.latencyUs?.p50, 1),
    p.maxUs !== undefined ? ms(p.maxUs, 1) : ms(p.latencyUs?.p99, 1),
    p.rps !== undefined ? fixed(p.rps, 1) : '—',
    String(p.registryRequests),
    fixed(p.backendCpuS, 2),
  ];
  const phases = ok.flatMap((r) => [
    phaseRow(r, r.cold),
    phaseRow(r, r.warm),
    phaseRow(r, r.warmLoad),
  ]);
  const ratios = ok
    .filter((r) => r !== ig && ig)
    .map(
      (r) =>
        `- ${r.name} vs imagegate: cold p50 ${ratio(r.cold.p50Us, ig.cold.p50Us)}, warm p50 ${ratio(r.warm.p50Us, ig.warm.p50Us)}, warm load pods/s ${ratio(r.warmLoad.rps, ig.warmLoad.rps)}, registry requests cold ${r.cold.registryRequests} vs ${ig.cold.registryRequests}`,
    );
  const failed = registry.results
    .filter((r) => r.error)
    .map((r) => `- ${r.name} did not run: ${r.error.split('\n')[0]}`);
  return [
    `${registry.images} images in ${registry.registry}, each signed by cosign ${registry.cosign}.`,
    '',
    table(['backend', 'pod', 'expected', 'answer', 'stored image / refusal'], verdictRows),
    '',
    table(
      [
        'backend',
        'phase',
        'created',
        'p50 ms',
        'max (p99 for load) ms',
        'pods/s',
        'registry requests',
        'backend CPU s',
      ],
      phases,
    ),
    '',
    ...ratios,
    ...failed,
  ].join('\n');
}

export function renderClusterReport(r) {
  const m = r.machine;
  const ran = r.backends.filter((b) => !b.error);
  const failed = r.backends.filter((b) => b.error);
  return `# Through the API server: imagegate beside a no-op webhook, CEL, Gatekeeper and Kyverno

Generated by \`make bench-cluster\` (test/bench/cluster/run.mjs) on ${r.startedAt}${r.quick ? ' — **quick run (BENCH_QUICK=1): numbers are a smoke test only**' : ''}, commit ${m.commit}${m.dirty ? ' (with uncommitted changes)' : ''}. Not part of CI.
${busyBanner(r.busy)}
## In short

${summarySection(r)}

(Ratios are between backends in this run; "adds" is over the \`none\` baseline: no admission at all. \`noop\` is a webhook that admits everything, registered as imagegate is: what any webhook adds. \`cel\` is the same policy as ValidatingAdmissionPolicy and MutatingAdmissionPolicy, run by the API server itself.)

## Versions and machine

| | |
| --- | --- |
| Kubernetes (kube-apiserver, kube-controller-manager, etcd) | ${ran[0]?.version ?? 'n/a'} |
| imagegate | this checkout, Node.js ${m.node} |
| noop webhook | test/bench/cluster/noop-webhook.mjs (node:https + Koa), the same Node.js |
| CEL | ValidatingAdmissionPolicy + MutatingAdmissionPolicy, \`admissionregistration.k8s.io/v1\`, in kube-apiserver ${ran[0]?.version ?? ''} (test/bench/cluster/cel/) |
| OPA Gatekeeper | ${m.gatekeeper} (\`github.com/open-policy-agent/gatekeeper/v3\`, built by test/e2e/build-peers.sh) |
| Kyverno | ${m.kyverno} (\`github.com/kyverno/kyverno\` through a wrapper module for its one replace) |
| machine | ${m.nproc} × ${m.cpuModel}, ${mib(m.memoryBytes, 0)} MiB, Linux ${m.kernel} |
| load average | ${m.loadAverageAtStart.map((v) => v.toFixed(2)).join(' ')} at start, ${m.loadAverageAtEnd.map((v) => v.toFixed(2)).join(' ')} at end |
| run | ${fixed(r.totalS / 60, 1)} minutes; ${r.roundCount ?? 1} round(s) of every backend, the order reversed each round; each load step ${r.durationS} s measured after ${r.warmupS} s of warm-up |

## Method

- **One backend at a time, each on its own fresh control plane** (test/e2e/control-plane.sh:
  etcd, kube-apiserver, kube-controller-manager on loopback; no scheduler or kubelet, so
  pods stay Pending). \`none\` registers no webhook: it is the baseline every "added" figure
  subtracts. \`noop\` (test/bench/cluster/noop-webhook.mjs) is the floor of any webhook: it
  reads and parses each review and answers "allowed" with no patch, on the same stack as
  imagegate (node:https, Koa), registered exactly as imagegate is.
- **The same policy everywhere** (test/bench/cluster/cases.mjs), in namespace \`bench\`:
  images only from \`registry.example.com\` or \`mirror.example.com\` (the registry host,
  Docker Hub's implicit \`docker.io\` included), no \`latest\`, no image without tag or
  digest, and every container's \`imagePullPolicy\` set to \`Always\`. imagegate runs its
  committed bundle with \`trustedRegistries\` set; CEL a ValidatingAdmissionPolicy and a
  MutatingAdmissionPolicy written as a careful user would (test/bench/cluster/cel/: the
  reference taken apart with CEL's string functions, every image the kubelet pulls);
  Gatekeeper a ConstraintTemplate, its constraint and two Assign mutators
  (test/bench/cluster/gatekeeper/); Kyverno ClusterPolicies (test/bench/cluster/kyverno/).
- **The same webhook registration shape**: failure policy Fail, 5 s timeout, Pods on CREATE
  and UPDATE in \`bench\` only (Kyverno registers its own configurations; see its notes).
  The CEL policies' bindings select the same namespace, failure policy Fail; they also
  cover \`pods/ephemeralcontainers\`, which no measured request uses.
- **The verdict check comes first**: every pod of cases.mjs (the 16 every backend was
  written against, and edge cases) is created for real; what the API server answered and
  stored is compared with the policy, and each difference is listed with the reason the
  backend gives for it.
- **Load** comes from test/bench/cluster/load.mjs, a separate process: kept-alive HTTPS
  with the admin client certificate, N clients each creating two-container pods
  (\`${'registry.example.com/team/app:1.0'}\`, pull policy IfNotPresent) back to back. Latency is
  what the client sees for the whole creation (authentication, admission, etcd write).
  Pods accumulate in etcd during a backend's run (the same sequence for every backend).
- **Rounds**: every backend runs ${r.roundCount ?? 1} time(s), the order reversed each round, each
  time on a new control plane; the tables show the rounds' mean, and pods/s and p50 with
  their range (min–max) across rounds, since this shared machine varies from run to run.
- **CPU** is utime+stime from /proc of the backend, kube-apiserver and etcd over the measured
  window, divided by the pods created; **memory** is the backend's RSS, sampled every 100 ms.
  **Busy machine**: the run refuses to start while processes other than its own use more
  than ${r.busy?.thresholdCores ?? 0.25} cores (test/bench/cluster/busy.mjs; BENCH_ALLOW_BUSY=1 runs anyway and marks
  the report); before each step it waits (up to 60 s) for a quiet 2 s window, measures
  the others again during the step, and marks (⚠) a step that was not quiet.
  Every comparison is a ratio between backends measured in this run; absolute
  numbers depend on this ${m.nproc}-core machine, where the client, the API server, etcd and
  the backend share the cores.

## Verdicts

${verdictSection(r.backends)}

## Pod creation under load

${loadSection(r.backends)}
## CPU and memory

${resourceSection(r.backends)}

## With registry features: signatures and digest pinning

imagegate with \`signatures\` (the registry's images, its key) and \`pinDigests: all\`; Kyverno
with \`verifyImages\` (the same key, \`mutateDigest\`, \`verifyDigest\`, \`required\`). Cold: the
first pod of each image, one at a time. Warm: the same pods again, then 8 clients on one image.

${registrySection(r.registry)}

## What each backend needed out of cluster

${ran.map((b) => [`- **${b.name}**`, ...b.notes.map(noteLines)].join('\n')).join('\n')}
${failed.length > 0 ? `\n## Backends that could not run\n\n${failed.map((b) => `- **${b.name}**: ${b.error}`).join('\n')}\n` : ''}
## Raw results

<details><summary>results.json</summary>

\`\`\`json
${JSON.stringify(r, null, 1)}
\`\`\`

</details>
`;
}
