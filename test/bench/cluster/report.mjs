/**
 * docs/BENCHMARKS-CLUSTER.md from run.mjs's results: versions, method, the verdict check,
 * load through the API server as ratios measured in the same run, CPU and memory, the
 * registry comparison, and what each backend needed to run out of cluster.
 */
import { fixed, mib, ms, table } from '../lib.mjs';

const ratio = (a, b) =>
  Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${(a / b).toFixed(2)}×` : 'n/a';
/** Text for a table cell: one line, no pipes, at most `max` characters. */
const cell = (text, max) => text.replace(/\s+/g, ' ').replaceAll('|', '\\|').slice(0, max);
const yes = (allowed) => (allowed ? 'allowed' : 'refused');

/** A backend's note as a bullet; its further lines (a listing) as bullets under it. */
function noteLines(note) {
  const [first, ...rest] = note.split('\n');
  return [`  - ${first}`, ...rest.map((line) => `    - \`${line}\``)].join('\n');
}

/** The figures a reader asks first, from the tables below. */
function summarySection(r) {
  const by = Object.fromEntries(r.backends.filter((b) => b.load).map((b) => [b.name, b]));
  const base = by.none;
  const ig = by.imagegate;
  if (!ig) return 'imagegate did not run.';
  const out = [];
  for (const [i, l] of ig.load.entries()) {
    const added = (b, p) => b.load[i].latencyUs[p] - (base ? base.load[i].latencyUs[p] : 0);
    const peers = ['gatekeeper', 'kyverno'].filter((n) => by[n]);
    out.push(
      `- ${l.concurrency} client${l.concurrency === 1 ? '' : 's'}: imagegate ${base ? 'adds' : 'takes (no baseline in this run)'} ${ms(added(ig, 'p50'), 1)} ms at p50` +
        (base ? ` and keeps ${ratio(l.rps, base.load[i].rps)} of the baseline's pods/s` : '') +
        peers
          .map(
            (n) =>
              `; ${n} adds ${ratio(added(by[n], 'p50'), added(ig, 'p50'))} imagegate's p50, ${ratio(by[n].load[i].rps, l.rps)} its pods/s, ${ratio(by[n].load[i].cpuPer1000.backend, l.cpuPer1000.backend)} its CPU per pod`,
          )
          .join(''),
    );
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

function verdictSection(backends) {
  const ran = backends.filter((b) => b.cases);
  if (ran.length === 0) return 'No backend ran.';
  const names = ran.map((b) => b.name).filter((n) => n !== 'none');
  const byCase = ran[0].cases.map((c, i) => ({
    ...c,
    answers: Object.fromEntries(ran.map((b) => [b.name, b.cases[i]])),
  }));
  const rows = byCase.map((c) => [
    `\`${c.name}\``,
    c.why,
    yes(c.expected),
    ...names.map((n) => {
      const a = c.answers[n];
      const always = a.allowed
        ? a.pullPolicies.every((p) => p === 'Always')
          ? ', Always'
          : `, pull ${a.pullPolicies.join('/')}`
        : '';
      return `${a.allowed === c.expected ? '' : '**≠** '}${yes(a.allowed)}${always}`;
    }),
  ]);
  const differences = byCase.flatMap((c) =>
    names
      .filter((n) => {
        const a = c.answers[n];
        return (
          a.allowed !== c.expected || (a.allowed && !a.pullPolicies.every((p) => p === 'Always'))
        );
      })
      .map((n) => {
        const a = c.answers[n];
        return `- \`${c.name}\` on ${n}: ${yes(a.allowed)}${a.allowed ? ` (pull policies ${a.pullPolicies.join(', ')})` : `: ${cell(a.message, 300)}`} — the policy says ${yes(c.expected)} (${c.why}).`;
      }),
  );
  const baseline = ran.find((b) => b.name === 'none');
  const unstable = ran.filter((b) => b.verdictsDiffer).map((b) => b.name);
  return [
    table(['pod', 'what it tests', 'policy', ...names], rows),
    '',
    unstable.length > 0
      ? `**Verdicts changed between rounds** for ${unstable.join(', ')} (the table shows round 1).\n`
      : '',
    baseline
      ? `Without webhooks all ${baseline.cases.filter((c) => c.allowed).length} of ${baseline.cases.length} pods are created (the baseline admits everything).`
      : '',
    '',
    differences.length === 0
      ? "**No differences**: every backend gives every pod the policy's verdict, and every created pod has `imagePullPolicy: Always`."
      : ['**Differences:**', '', ...differences].join('\n'),
  ].join('\n');
}

function loadSection(backends) {
  const ran = backends.filter((b) => b.load);
  const base = ran.find((b) => b.name === 'none');
  const ig = ran.find((b) => b.name === 'imagegate');
  const out = [];
  for (const [i, c] of (ran[0]?.load ?? []).map((l) => l.concurrency).entries()) {
    const rows = ran.map((b) => {
      const l = b.load[i];
      const added = (p) => (base ? l.latencyUs[p] - base.load[i].latencyUs[p] : Number.NaN);
      return [
        b.name,
        `${fixed(l.rps, 1)}${l.range ? ` (${fixed(l.range.rps[0], 0)}–${fixed(l.range.rps[1], 0)})` : ''}`,
        `${ms(l.latencyUs.p50, 1)}${l.range ? ` (${ms(l.range.p50Us[0], 1)}–${ms(l.range.p50Us[1], 1)})` : ''}`,
        ms(l.latencyUs.p99, 1),
        b.name === 'none' ? '—' : ms(added('p50'), 1),
        b.name === 'none' ? '—' : ms(added('p99'), 1),
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
          'pods/s vs none',
          'pods/s vs imagegate',
          'created (all rounds)',
        ],
        rows,
      ),
      '',
    );
  }
  return out.join('\n');
}

function resourceSection(backends) {
  const ran = backends.filter((b) => b.load);
  const ig = ran.find((b) => b.name === 'imagegate');
  const rows = ran.flatMap((b) =>
    b.load.map((l, i) => [
      b.name,
      String(l.concurrency),
      b.name === 'none' ? '—' : fixed(l.cpuPer1000.backend, 2),
      b.name === 'none' || !ig || b.name === 'imagegate'
        ? '—'
        : ratio(l.cpuPer1000.backend, ig.load[i].cpuPer1000.backend),
      fixed(l.cpuPer1000.apiserver, 2),
      fixed(l.cpuPer1000.etcd, 2),
      b.name === 'none' ? '—' : fixed(l.backendCores, 2),
      b.name === 'none' ? '—' : mib(l.backendRssPeakBytes),
      fixed(l.machineBusyCores, 2),
      fixed(l.background.busyCores, 2),
    ]),
  );
  const start = ran
    .filter((b) => b.name !== 'none')
    .map(
      (b) =>
        `- ${b.name}: ready (enforcing) ${fixed(b.startS, 1)} s after start, RSS ${mib(b.rssAfterStart)} MiB then`,
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
        'backend cores',
        'backend peak RSS MiB',
        'machine busy cores',
        'busy before',
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
  return `# Through the API server: imagegate, Gatekeeper and Kyverno side by side

Generated by \`make bench-cluster\` (test/bench/cluster/run.mjs) on ${r.startedAt}${r.quick ? ' — **quick run (BENCH_QUICK=1): numbers are a smoke test only**' : ''}, commit ${m.commit}${m.dirty ? ' (with uncommitted changes)' : ''}. Not part of CI.

## In short

${summarySection(r)}

(Ratios are between backends in this run; "adds" is over the \`none\` baseline.)

## Versions and machine

| | |
| --- | --- |
| Kubernetes (kube-apiserver, kube-controller-manager, etcd) | ${ran[0]?.version ?? 'n/a'} |
| imagegate | this checkout, Node.js ${m.node} |
| OPA Gatekeeper | ${m.gatekeeper} (\`github.com/open-policy-agent/gatekeeper/v3\`, built by test/e2e/build-peers.sh) |
| Kyverno | ${m.kyverno} (\`github.com/kyverno/kyverno\` through a wrapper module for its one replace) |
| machine | ${m.nproc} × ${m.cpuModel}, ${mib(m.memoryBytes, 0)} MiB, Linux ${m.kernel} |
| load average | ${m.loadAverageAtStart.map((v) => v.toFixed(2)).join(' ')} at start, ${m.loadAverageAtEnd.map((v) => v.toFixed(2)).join(' ')} at end |
| run | ${fixed(r.totalS / 60, 1)} minutes; ${r.roundCount ?? 1} round(s) of every backend, the order reversed each round; each load step ${r.durationS} s measured after ${r.warmupS} s of warm-up |

## Method

- **One backend at a time, each on its own fresh control plane** (test/e2e/control-plane.sh:
  etcd, kube-apiserver, kube-controller-manager on loopback; no scheduler or kubelet, so
  pods stay Pending). \`none\` registers no webhook: it is the baseline every "added" figure
  subtracts.
- **The same policy everywhere** (test/bench/cluster/cases.mjs), in namespace \`bench\`:
  images only from \`registry.example.com\` or \`mirror.example.com\` (the registry host,
  Docker Hub's implicit \`docker.io\` included), no \`latest\`, no image without tag or
  digest, and every container's \`imagePullPolicy\` set to \`Always\`. imagegate runs its
  committed bundle with \`trustedRegistries\` set; Gatekeeper a ConstraintTemplate, its
  constraint and two Assign mutators (test/bench/cluster/gatekeeper/); Kyverno
  ClusterPolicies (test/bench/cluster/kyverno/).
- **The same webhook registration shape**: failure policy Fail, 5 s timeout, Pods on CREATE
  and UPDATE in \`bench\` only (Kyverno registers its own configurations; see its notes).
- **The verdict check comes first**: every pod of cases.mjs is created for real; what the
  API server answered and stored is compared with the policy.
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
  Before each step the run waits (up to 3 s) for the machine to be quiet and records how busy
  it was. Every comparison is a ratio between backends measured in this run; absolute
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
