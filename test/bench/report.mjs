/**
 * results.json → docs/BENCHMARKS.md. Pure: every number in the report comes from the run,
 * and every verdict is computed here from the thresholds in TARGETS.
 */

import { fixed, mib, ms, table } from './lib.mjs';
import { PHASES } from './profile.mjs';

export const TARGETS = {
  opaRatio: 1.5,
  ceilingRatio: 0.7,
  p99Us: 5000,
  /** Heap after GC may not grow by more than this over the growth run. */
  heapGrowthBytes: 1 << 20,
  /** Nor RSS beyond the V8 heap's capacity (native memory, wasm included) by more than this. */
  rssGrowthBytes: 8 << 20,
};

const ENDPOINTS = ['validate', 'mutate', 'imagereview'];
const NAMES = {
  warn: 'imagegate (warn)',
  workers: 'imagegate (warn, --workers 2)',
  before: 'imagegate before the hot-path work (warn)',
  info: 'imagegate (info)',
  opa: 'OPA server',
  noop: 'no-op Koa',
};
const yes = (ok) => (ok ? '**met**' : '**not met**');
const signed = (bytes, digits) => `${bytes >= 0 ? '+' : ''}${mib(bytes, digits)}`;

function row(http, target, endpoint, connections) {
  return http.rows.find(
    (r) => r.target === target && r.endpoint === endpoint && r.connections === connections,
  );
}

/** Cores a server used: a cluster's primary and workers together. */
function serverCores(r) {
  return r.cpuCores.servers.reduce((sum, c) => sum + c, 0);
}

function failures(r) {
  return r.errors + r.timeouts + r.non2xx + r.resets;
}

function verdicts(results) {
  const { http, inprocess, reload } = results;
  // Judged on one event loop and on every core (--workers 2), as the issue allows.
  const configs = ['warn', 'workers'].filter((id) => row(http, id, 'validate', 64) !== undefined);
  const perEndpoint = configs.flatMap((config) =>
    ENDPOINTS.map((endpoint) => {
      const g = row(http, config, endpoint, 64);
      return {
        endpoint,
        config,
        opaRatio: g.rps / row(http, 'opa', endpoint, 64).rps,
        ceilingRatio: g.rps / row(http, 'noop', endpoint, 64).rps,
        p99Us: g.latencyUs.p99,
      };
    }),
  );
  const fixedRate = http.fixedRate.map((f) => ({
    endpoint: f.endpoint,
    fixedRate: f.rate,
    fixedRateP99Us: f.latencyUs.p99,
  }));
  const samples = inprocess.growth.samples;
  // Judged from the 10 % sample on (the first is taken before any evaluation). A JS leak
  // shows in the heap used after GC; a native one in RSS beyond the V8 heap's capacity —
  // RSS alone steps when V8 grows its heap (heapTotal) once, which is bounded.
  const first = samples[1];
  const last = samples.at(-1);
  const nonHeap = (s) => s.rss - (s.heapTotal ?? 0);
  const growth = {
    heapBytes: last.heapUsed - first.heapUsed,
    nonHeapBytes: nonHeap(last) - nonHeap(first),
    rssBytes: last.rss - first.rss,
    heapTotalBytes: (last.heapTotal ?? 0) - (first.heapTotal ?? 0),
    wasmConstant: samples.slice(1).every((s) => s.wasmMemory === first.wasmMemory),
  };
  growth.ok =
    growth.heapBytes < TARGETS.heapGrowthBytes &&
    growth.nonHeapBytes < TARGETS.rssGrowthBytes &&
    growth.wasmConstant;
  const reloadOk = reload.failed === 0 && reload.swaps.every((s) => s.ok && s.underLoad);
  return { perEndpoint, fixedRate, growth, reloadOk };
}

function machineSection({ machine, totalS, quick, startedAt }) {
  return [
    '## Machine and versions',
    '',
    table(
      ['', ''],
      [
        ['CPU', `${machine.cpuModel}, ${machine.nproc} cores (nproc)`],
        ['memory', `${mib(machine.memoryBytes, 0)} MiB`],
        ['kernel', machine.kernel],
        ['Node.js', machine.node],
        ['OPA', `${machine.opa} (${machine.opaGo}, CGO off: no wasm runtime, topdown evaluation)`],
        ['autocannon', machine.autocannon],
        ['imagegate', `${machine.commit}${machine.dirty ? ' + uncommitted changes' : ''}`],
        [
          'load average',
          `start ${machine.loadAverageAtStart.map((l) => l.toFixed(2)).join(' / ')}, ` +
            `end ${machine.loadAverageAtEnd.map((l) => l.toFixed(2)).join(' / ')}`,
        ],
        [
          'run',
          `${startedAt}, ${quick ? 'quick (BENCH_QUICK=1)' : 'full'}, ${totalS.toFixed(0)} s`,
        ],
      ],
    ),
  ].join('\n');
}

/** Issue 24's goals for one event loop and for warm registry facts, from this run. */
function issue24Rows({ http, registry }) {
  const rows = [];
  const noop = row(http, 'noop', 'validate', 64);
  const cpu = (r) => (1e6 * serverCores(r)) / r.rps;
  for (const level of ['warn', 'info']) {
    const r = row(http, level, 'validate', 64);
    if (r === undefined || noop === undefined) continue;
    const ratio = cpu(r) / cpu(noop);
    rows.push([
      `CPU per validate review ≤ 3× the no-op server's, one event loop, --log-level ${level} (issue 24)`,
      `${fixed(cpu(r), 0)} µs vs ${fixed(cpu(noop), 0)} µs = ${fixed(ratio, 2)}×`,
      yes(ratio <= 3),
    ]);
  }
  const info = row(http, 'info', 'validate', 64);
  if (info !== undefined && noop !== undefined) {
    const ratio = info.rps / noop.rps;
    rows.push([
      'throughput ≥ 0.3× no-op ceiling, validate, one event loop, default flags (info) (issue 24)',
      `${fixed(ratio, 2)}×`,
      yes(ratio >= 0.3),
    ]);
  }
  for (const endpoint of ['mutate', 'validate']) {
    const find = (mode) =>
      registry?.warm.find((w) => w.endpoint === endpoint && w.features === mode);
    const [off, on] = [find('off'), find('on')];
    if (off === undefined || on === undefined) continue;
    const ratio = on.rps / off.rps;
    rows.push([
      `registry facts warm ≥ 0.9× of facts off, ${endpoint} (issue 24, 3c)`,
      `${fixed(ratio, 2)}×`,
      yes(ratio >= 0.9),
    ]);
  }
  return rows;
}

function targetSection(results, v) {
  const rows = [];
  const label = (e) =>
    `${e.endpoint}, ${e.config === 'workers' ? '--workers 2' : 'one event loop'}`;
  for (const e of v.perEndpoint) {
    rows.push([
      `throughput ≥ ${TARGETS.opaRatio}× OPA server, ${label(e)}`,
      `${fixed(e.opaRatio, 2)}×`,
      yes(e.opaRatio >= TARGETS.opaRatio),
    ]);
  }
  for (const e of v.perEndpoint) {
    rows.push([
      `throughput ≥ ${TARGETS.ceilingRatio}× no-op ceiling, ${label(e)}`,
      `${fixed(e.ceilingRatio, 2)}×`,
      yes(e.ceilingRatio >= TARGETS.ceilingRatio),
    ]);
  }
  for (const e of v.perEndpoint) {
    rows.push([
      `p99 ≤ ${ms(TARGETS.p99Us, 0)} ms at 64 connections (closed loop, saturated), ${label(e)}`,
      `${ms(e.p99Us)} ms`,
      yes(e.p99Us <= TARGETS.p99Us),
    ]);
  }
  for (const e of v.fixedRate) {
    rows.push([
      `p99 ≤ ${ms(TARGETS.p99Us, 0)} ms, open loop at ${e.fixedRate} req/s (¼ of the capacity) over ≤ 64 connections, ${e.endpoint}`,
      `${ms(e.fixedRateP99Us)} ms`,
      yes(e.fixedRateP99Us <= TARGETS.p99Us),
    ]);
  }
  rows.push(...issue24Rows(results));
  const g = v.growth;
  rows.push([
    `no memory growth over ${results.inprocess.growth.evaluations.toLocaleString('en')} evaluations`,
    `heap used ${signed(g.heapBytes, 2)} MiB, RSS beyond the V8 heap ${signed(g.nonHeapBytes, 1)} MiB ` +
      `(RSS ${signed(g.rssBytes, 1)}, V8 heap capacity ${signed(g.heapTotalBytes, 1)}), wasm memory ` +
      `${g.wasmConstant ? 'constant' : 'grew'} (10 %→100 %)`,
    yes(g.ok),
  ]);
  rows.push([
    'zero failed requests while swapping bundles under load',
    `${results.reload.failed} failed of ${results.reload.load.totalRequests.toLocaleString('en')}, ` +
      `${results.reload.swaps.filter((s) => s.ok).length}/${results.reload.swaps.length} swaps took effect`,
    yes(v.reloadOk),
  ]);
  return [
    '## Targets',
    '',
    'Throughput and latency targets are judged on imagegate at `--log-level warn`, on one event',
    'loop and with `--workers 2`, against the OPA server and the no-op ceiling measured in this',
    'same run (the `info` numbers are below).',
    '',
    table(['target', 'measured', 'status'], rows),
  ].join('\n');
}

function methodSection(results) {
  const { http, reload } = results;
  const p = http.plan;
  return [
    '## Method',
    '',
    '- **In-process** (`test/bench/inprocess.ts`, compiled, `node --expose-gc`): the gateway’s own',
    '  protocol objects (`src/server/protocols.ts`) on the committed bundle, no HTTP. One *review* =',
    '  narrow the parsed body, `admissionInput`/`imageReviewInput`, evaluate, build the answer; every',
    '  iteration timed with `process.hrtime.bigint()` after a warm-up, bounded by count and time.',
    '  Pods are grown from `test/fixtures/admission/pod-create-v1.json` (`test/bench/pods.ts`): its',
    '  four containers (trusted, untrusted, local-registry and `:latest` images, mixed pull',
    '  policies) cycled to 1, 10 and 50 containers; the ImageReview lists the same images.',
    '- **Memory per engine**: `process.memoryUsage()` after a forced GC before and after creating',
    '  N engines; wasm memory read from every `WebAssembly.Memory` the SDK creates (recorded by the',
    '  bench, as the engine hides its instance). **Growth**: validate reviews of the 1-container pod,',
    '  memory sampled after a forced GC every 10 % of the run.',
    '- **HTTPS end to end** (`test/bench/http.mjs`): all servers run at once on 127.0.0.1 with the',
    '  same certificate (RSA 2048, from `src/tls/certs.ts`), TLS ≥ 1.2:',
    '  - *imagegate*: `node dist/src/cli.js serve`, once with `--log-level warn` (no per-request log)',
    '    and once with `info` (one pino `decision` line per review, stdout to a file);',
    '  - *OPA server*: `opa run --server` on `rego/` plus `test/bench/opa/webhook.rego`, which turns',
    '    the raw review into imagegate’s policy input in Rego (walks pod specs, parses references with',
    '    string built-ins and RE2, filters annotations — per request, nothing precomputed), calls the',
    '    unchanged `data.imagegate.validate`/`mutate` and builds the review response. Requests go to',
    '    `POST /v0/data/bench/webhook/<endpoint>`: OPA’s webhook API, raw body as input, bare value',
    '    back — the same body bytes imagegate gets. `--log-level error`, no decision logs; Go uses',
    '    every core;',
    '  - *no-op Koa* (`test/bench/noop-server.mjs`): node:https + Koa + @koa/router, reads the whole',
    '    body, answers imagegate’s answer for that body as pre-serialised bytes.',
    '  Before loading, each server’s answer to each body is fetched with a CA-verifying client and',
    '  compared with imagegate’s (deep JSON equality): all equal, so all do the same job.',
    `- **Load**: \`test/bench/load.mjs\`, autocannon ${results.machine.autocannon} in its own process,`,
    '  POST with `content-type: application/json`, no pipelining, over kept-alive connections:',
    `  ${p.c64.warmup} s warm-up then ${p.c64.duration} s measured at 64 connections, ${p.c1.warmup} s + ${p.c1.duration} s at 1. Only requests`,
    '  sent inside the measured window count (no handshake, no first request of a connection).',
    '  Latency is every response’s time at µs resolution (autocannon’s histogram has 1 ms',
    '  buckets). Closed loop — each connection sends when its previous answer arrives — so at 64',
    '  connections latency is mostly queueing (p50 ≈ 64 / throughput). Hence also an open-loop',
    '  run of imagegate: requests start on a uniform schedule at',
    `  ${Math.round(p.rateShare * 100)} % of its closed-loop throughput on that endpoint, over up to 64 kept-alive node:https`,
    '  connections, latency counted from the scheduled start. Failures are autocannon’s errors,',
    '  timeouts, resets and non-2xx over the whole run. autocannon does not verify certificates,',
    '  hence the verified check above. The order of servers rotates per endpoint. CPU (cores) is',
    '  from `/proc`: the server process, the load generator, the whole machine; “busy before” is',
    '  the machine with every server idle just before the run (each run first waits up to 3 s',
    '  for it to drop under 0.35 cores).',
    `- **Bodies**: the fixture pod compacted as the API server sends it (${http.bodies.admission} bytes; 2 containers + 2 init containers,`,
    `  denied: 6 violations) for validate and mutate; the ImageReview of its 4 images (${http.bodies.imagereview} bytes).`,
    `- **Reload** (\`test/bench/reload.mjs\`): two bundles built by \`opa build -t wasm\` from \`rego/\``,
    '  (revisions bench-a, bench-b); the gateway serves a directory; each swap copies the other',
    '  bundle to a dot-file there and renames it over `imagegate.tar.gz`; the swap takes effect when',
    `  \`/readyz\` reports the new revision (polled every 25 ms); it counts as under load when both`,
    '  ends fall inside the load’s measured window. The gateway polls files every',
    `  ${reload.watchIntervalMs / 1000} s and reloads on a change seen twice, so 2–4 s is the design, not the cost.`,
    '- **Profile** (`test/bench/profile.mjs`): `node --cpu-prof --cpu-prof-interval 250` on the',
    '  compiled gateway (warn) under 64 connections of validate; each sample inside the load’s',
    '  measured window goes to the phase of the nearest frame on its stack that has one (leaf first).',
    '- The machine is shared: other work on it shows as machine CPU beyond server + load generator',
    '  (+ softirq for loopback TCP). Ratios are taken within one run for that reason.',
  ].join('\n');
}

function inprocessSection({ inprocess }) {
  const stat = (s) => `${fixed(s.medianUs, 0)} / ${fixed(s.p99Us, 0)}`;
  const latency = table(
    [
      'containers',
      'AdmissionReview bytes',
      'PolicyInput bytes (with review)',
      'validate µs (median / p99)',
      'mutate µs',
      'imagereview µs',
      'evaluate only (median / p99)',
      'evaluate only, `input.review` passed (before the opt-out)',
    ],
    inprocess.latency.map((l) => [
      l.containers,
      l.bodyBytes.admission,
      l.inputBytes,
      stat(l.validate),
      stat(l.mutate),
      stat(l.imagereview),
      stat(l.evaluate),
      `${stat(l.evaluateWithReview)}${l.sameDecisionWithReview ? '' : ' (decision differs!)'}`,
    ]),
  );
  const iterations = inprocess.latency
    .map(
      (l) =>
        `${l.containers}: ${l.validate.iterations}/${l.mutate.iterations}/${l.imagereview.iterations}`,
    )
    .join('; ');
  const m = inprocess.memoryPerEngine;
  const builds = [...inprocess.engineBuildMs].sort((a, b) => a - b);
  const growth = table(
    [
      'evaluations',
      'elapsed s',
      'RSS MiB',
      'V8 heap capacity MiB',
      'heap used MiB',
      'external MiB',
      'wasm memory MiB',
    ],
    inprocess.growth.samples.map((s) => [
      s.evaluations.toLocaleString('en'),
      fixed(s.elapsedMs / 1000, 1),
      mib(s.rss),
      mib(s.heapTotal),
      mib(s.heapUsed, 2),
      mib(s.external, 2),
      mib(s.wasmMemory, 2),
    ]),
  );
  const last = inprocess.growth.samples.at(-1);
  return [
    '## 1. In-process evaluation',
    '',
    latency,
    '',
    `Iterations (validate/mutate/imagereview): ${iterations}. The last two columns evaluate the`,
    'validate entrypoint alone on the same input: with the engine as shipped (the bundle opts out',
    'of `input.review`), and with the same bundle minus the opt-out, which copies the whole request',
    'into the policy; no rule in `rego/` reads it, and the decisions are checked to be identical.',
    '',
    `**Memory per engine** (${m.engines} engines): RSS ${mib(m.rss, 2)} MiB, V8 heap ${mib(m.heapUsed, 2)} MiB,`,
    `external ${mib(m.external, 2)} MiB. The wasm memory per engine is ${[...new Set(m.wasmMemoryBytes.map((b) => mib(b, 2)))].join(', ')} MiB: its size, counted`,
    'in external; pages reserved but never written are not resident, so RSS is what it costs.',
    `policy.wasm is ${(inprocess.bundle.wasmBytes / 1024).toFixed(0)} KiB. An engine build (read + gunzip + compile`,
    `+ set data + smoke evaluation), i.e. a reload before its one-reference swap: median`,
    `${fixed(builds[Math.floor(builds.length / 2)], 1)} ms, max ${fixed(builds.at(-1), 1)} ms over ${builds.length} builds (the first includes compiling).`,
    '',
    `**Growth** over ${inprocess.growth.evaluations.toLocaleString('en')} validate reviews of the ${inprocess.growth.pod} pod`,
    `(${fixed(last.elapsedMs / 1000, 0)} s, ${fixed(last.elapsedMs / 1000 / (inprocess.growth.evaluations / 1e6), 0)} s per million, after a forced GC at each sample). Judged from`,
    `the 10 % sample to the last: heap used under +${mib(TARGETS.heapGrowthBytes, 0)} MiB (a JS leak), RSS minus the V8 heap’s capacity under`,
    `+${mib(TARGETS.rssGrowthBytes, 0)} MiB (a native leak; RSS alone steps when V8 grows its heap once), wasm memory constant.`,
    '',
    growth,
  ].join('\n');
}

/** One load run as a table row: what it served, how fast, and who used the CPU. */
function loadCells(label, r) {
  return [
    label,
    NAMES[r.target],
    fixed(r.rps, 0),
    ms(r.latencyUs.p50),
    ms(r.latencyUs.p99),
    ms(r.latencyUs.p999),
    ms(r.latencyUs.max),
    String(failures(r)),
    fixed(serverCores(r), 2),
    fixed(r.rps / serverCores(r), 0),
    fixed(r.cpuCores.loadgen, 2),
    fixed(r.cpuCores.machineBusy, 2),
    fixed(r.background.busyCores, 2),
  ];
}

function httpSection({ http }) {
  const header = [
    'endpoint',
    'server',
    'req/s',
    'p50 ms',
    'p99 ms',
    'p99.9 ms',
    'max ms',
    'failed',
    'server CPU',
    'req per CPU-s',
    'loadgen CPU',
    'machine busy',
    'busy before',
  ];
  const rowsFor = (connections) =>
    http.rows
      .filter((r) => r.connections === connections)
      .sort(
        (a, b) =>
          ENDPOINTS.indexOf(a.endpoint) - ENDPOINTS.indexOf(b.endpoint) ||
          Object.keys(NAMES).indexOf(a.target) - Object.keys(NAMES).indexOf(b.target),
      )
      .map((r) => loadCells(r.endpoint, r));
  const perCpu = (r) => r.rps / serverCores(r);
  const ratios = ENDPOINTS.map((endpoint) => {
    const at = (t, c) => row(http, t, endpoint, c);
    return [
      endpoint,
      fixed(perCpu(at('warn', 64)) / perCpu(at('opa', 64)), 2),
      fixed(perCpu(at('warn', 64)) / perCpu(at('noop', 64)), 2),
      fixed(at('warn', 64).rps / at('opa', 64).rps, 2),
      fixed(at('warn', 64).rps / at('noop', 64).rps, 2),
      fixed(at('info', 64).rps / at('opa', 64).rps, 2),
      fixed(at('info', 64).rps / at('noop', 64).rps, 2),
      fixed(at('info', 64).rps / at('warn', 64).rps, 2),
      fixed(at('opa', 1).latencyUs.p50 / at('warn', 1).latencyUs.p50, 2),
      fixed(at('workers', 64).rps / at('opa', 64).rps, 2),
      fixed(at('workers', 64).rps / at('noop', 64).rps, 2),
      fixed(at('workers', 64).rps / at('warn', 64).rps, 2),
    ];
  });
  const rss = Object.entries(http.rss)
    .map(([id, bytes]) => `${NAMES[id]} ${mib(bytes, 0)} MiB`)
    .join(', ');
  const answers = ENDPOINTS.map((e) => `${e} ${http.equivalence[`warn/${e}`].bytes} bytes`).join(
    ', ',
  );
  return [
    '## 2. HTTPS end to end',
    '',
    '### 64 connections',
    '',
    table(header, rowsFor(64)),
    '',
    '### 1 connection',
    '',
    table(header, rowsFor(1)),
    '',
    '### Open loop: a fixed offered rate over up to 64 connections (imagegate, warn)',
    '',
    table(
      header,
      http.fixedRate.map((r) => loadCells(`${r.endpoint} @ ${r.rate} req/s`, r)),
    ),
    '',
    '### Ratios (same run)',
    '',
    '“per CPU-s” divides each server’s requests/s by the cores it used: less sensitive to the',
    'other work on a shared machine than requests/s, and fair to a server that uses more cores.',
    '',
    table(
      [
        'endpoint',
        'per CPU-s: imagegate warn / OPA',
        'per CPU-s: imagegate warn / no-op',
        'imagegate warn / OPA',
        'imagegate warn / no-op',
        'imagegate info / OPA',
        'imagegate info / no-op',
        'info / warn',
        'OPA p50 / imagegate p50 at 1 connection',
        '--workers 2 / OPA',
        '--workers 2 / no-op',
        '--workers 2 / one event loop',
      ],
      ratios,
    ),
    '',
    'Where the OPA server’s time goes, by `opa bench` on the validate body (topdown, no HTTP):',
    '',
    table(
      ['query', 'what', 'median µs', 'p99 µs'],
      http.opaBench.map((b) => [`\`${b.query}\``, b.what, fixed(b.medianUs, 0), fixed(b.p99Us, 0)]),
    ),
    '',
    `OPA’s translation against imagegate on every review fixture in test/fixtures: ${http.fixtures.cases - http.fixtures.differing.length} of ${http.fixtures.cases} answers identical` +
      `${http.fixtures.differing.length === 0 ? '' : ` (differing: ${http.fixtures.differing.join(', ')} — invalid references get one generic message in Rego)`}.`,
    `Answers (all servers identical): ${answers}. RSS after the runs: ${rss}.`,
    `At \`info\` the gateway wrote ${http.logs.infoLines.toLocaleString('en')} log lines`,
    `(${mib(http.logs.infoBytes)} MiB, ${fixed(http.logs.infoBytes / Math.max(1, http.logs.infoLines), 0)} bytes a line); at \`warn\` ${http.logs.warnBytes} bytes.`,
  ].join('\n');
}

/**
 * Before and after the hot-path work, both served in this run on the same bundle: the
 * baseline build (BENCH_BASELINE) against this one, plus the in-process what-if for the
 * one change that a bundle controls (input.review).
 */
function beforeAfterSection({ http, inprocess }) {
  const lines = [
    '## 5. Before and after the hot-path work',
    '',
    'What the profile pointed at, and what changed (each its own commit):',
    '',
    '- **wasm memory reserved up front** (src/policy/engine.ts): an instance that grew a few pages at a',
    '  time made V8 collect garbage at every `memory.grow`, holding the event loop for seconds on',
    '  large pods; now all 256 MiB are reserved at creation (address space, not resident memory).',
    '- **`input.review` left out** when the bundle’s manifest opts out (the default bundle does):',
    '  most of the serialised input’s bytes, read by no rule, no longer stringified, copied into',
    '  wasm memory and parsed there.',
    '- **body read with stream events and one shared `TextDecoder`** (src/server/body.ts)',
    '  instead of an async iterator and a decoder per request.',
    '',
  ];
  const before = (e, c) => row(http, 'before', e, c);
  if (http.baseline === null || before('validate', 64) === undefined) {
    lines.push('No baseline build in this run (BENCH_BASELINE=none).');
  } else {
    lines.push(
      `Both builds served in this run, on the same bundle and certificate: **before** is ${http.baseline.revision} (the last commit before`,
      'these changes), **after** is this checkout. Ratios are after / before.',
      '',
      table(
        [
          'endpoint',
          'req/s before → after (64 connections)',
          'after / before',
          'req per CPU-s after / before',
          'p50 ms before → after (1 connection)',
          'p99 ms before → after (1 connection)',
        ],
        ENDPOINTS.map((e) => {
          const [b, a, b1, a1] = [
            before(e, 64),
            row(http, 'warn', e, 64),
            before(e, 1),
            row(http, 'warn', e, 1),
          ];
          return [
            e,
            `${fixed(b.rps, 0)} → ${fixed(a.rps, 0)}`,
            fixed(a.rps / b.rps, 2),
            fixed(a.rps / serverCores(a) / (b.rps / serverCores(b)), 2),
            `${ms(b1.latencyUs.p50)} → ${ms(a1.latencyUs.p50)}`,
            `${ms(b1.latencyUs.p99)} → ${ms(a1.latencyUs.p99)}`,
          ];
        }),
      ),
    );
  }
  lines.push(
    '',
    'In-process, evaluation alone on the same input, with `input.review` passed (before the opt-out)',
    'and left out (after), median / p99 µs:',
    '',
    table(
      ['containers', 'passed (before)', 'left out (after)', 'after / before (median)'],
      inprocess.latency.map((l) => [
        l.containers,
        `${fixed(l.evaluateWithReview.medianUs, 0)} / ${fixed(l.evaluateWithReview.p99Us, 0)}`,
        `${fixed(l.evaluate.medianUs, 0)} / ${fixed(l.evaluate.p99Us, 0)}`,
        fixed(l.evaluate.medianUs / l.evaluateWithReview.medianUs, 2),
      ]),
    ),
  );
  return lines.join('\n');
}

function reloadSection({ reload }) {
  const effects = reload.swaps.map((s) => s.effectMs).sort((a, b) => a - b);
  const l = reload.load;
  return [
    '## 3. Reload under load',
    '',
    table(
      ['swap', 'to', 'rename → /readyz shows it (ms)', 'took effect', 'under load'],
      reload.swaps.map((s, i) => [
        i + 1,
        s.to,
        fixed(s.effectMs, 0),
        s.ok ? 'yes' : 'NO',
        s.underLoad ? 'yes' : 'no',
      ]),
    ),
    '',
    `Swap → effect: median ${fixed(effects[Math.floor(effects.length / 2)], 0)} ms, max ${fixed(effects.at(-1), 0)} ms`,
    `(watch interval ${reload.watchIntervalMs} ms, debounced over two polls). Under 64 connections of validate for`,
    `${fixed(l.durationS, 0)} s: ${l.totalRequests.toLocaleString('en')} requests, ${fixed(l.rps, 0)} req/s in the window,`,
    `p99 ${ms(l.latencyUs.p99)} ms, p99.9 ${ms(l.latencyUs.p999)} ms, max ${ms(l.latencyUs.max)} ms;`,
    `**${reload.failed} failed** (errors ${l.errors}, timeouts ${l.timeouts}, non-2xx ${l.non2xx}, resets ${l.resets}).`,
    `Bundle builds by \`opa build\`: ${fixed(reload.buildMs.a / 1000, 1)} s and ${fixed(reload.buildMs.b / 1000, 1)} s (offline, not on the gateway).`,
  ].join('\n');
}

function hostileSection({ hostile }) {
  if (hostile === undefined) return '';
  const shapes = {
    empty: '32,768 empty containers (maxImages)',
    long: '25,000 untrusted 100-char images, IfNotPresent',
  };
  return [
    '## 3b. One hostile-but-accepted review beside benign ones',
    '',
    "The gateway from `dist/` with the Deployment's `--max-old-space-size=256`; a benign pod review",
    'back to back on one kept-alive connection, first idle, then while a second connection sends',
    'the hostile review back to back. Both hostile shapes are accepted (within the 4 MiB body and',
    '`maxImages`); both go past 8,192 images, so a thread hands them to the large lane, which',
    'judges them (denied, 403) where they used to fail closed with a 500 inside the review',
    '(docs/sizing.md). Peak RSS is VmHWM per process (primary first with `--workers 2`).',
    '',
    table(
      [
        'hostile review',
        'workers',
        'CPUs',
        'its answer, p50 (ms)',
        'benign p50 idle → during (ms)',
        'p50 ratio',
        'benign p99 idle → during (ms)',
        'p99 ratio',
        'peak RSS (MiB)',
      ],
      hostile.map((h) => [
        `${shapes[h.shape] ?? h.shape} (${mib(h.hostileBytes, 2)} MiB)`,
        h.workers,
        h.cpus === undefined || h.cpus === 'any' ? 'any' : `1 (taskset ${h.cpus})`,
        `${h.hostile.codes.join('/')}, ${fixed(h.hostile.p50, 0)}`,
        `${fixed(h.idle.p50, 2)} → ${fixed(h.during.p50, 2)}`,
        `${fixed(h.during.p50 / h.idle.p50, 1)}×`,
        `${fixed(h.idle.p99, 2)} → ${fixed(h.during.p99, 2)}`,
        `${fixed(h.during.p99 / h.idle.p99, 1)}×`,
        h.peakRssBytes.map((b) => fixed(b / 2 ** 20, 0)).join(' + '),
      ]),
    ),
    '',
    'One process evaluates on its two threads (`--evaluation-threads 2`, the default): a benign',
    'review is answered by the thread the hostile one is not on. "1 (taskset 0)" pins every',
    "thread of the process to one CPU, as the Deployment's limit does: the goal is a benign p50",
    'no more than 2× its idle p50 there.',
  ].join('\n');
}

export function auditSection({ audit }) {
  if (audit === undefined) return '';
  const rows = audit.rows.map((r) => [
    r.pods,
    r.objects,
    r.summary.fail,
    fixed(r.seconds, 2),
    fixed(r.peakRssBytes / 2 ** 20, 0),
  ]);
  const [, small, large] = audit.rows;
  const perThousand = (a, b, f) => (f(b) - f(a)) / ((b.pods - a.pods) / 1000);
  return [
    '## 3d. `imagegate audit` over the real API server',
    '',
    `kube-apiserver ${audit.version} (the e2e control plane, no kubelet: pods stay Pending), pods`,
    'created through it, two containers each (one trusted, one from Docker Hub pulled IfNotPresent:',
    'two failing results per pod). Each row is one `imagegate audit --once --output json` from',
    "`dist/` with the Deployment's `--max-old-space-size=256`, from process start to exit (list in",
    'pages of 500, evaluate, print); peak RSS is its VmHWM.',
    '',
    table(['pods', 'objects audited', 'failing results', 'seconds', 'peak RSS (MiB)'], rows),
    '',
    small !== undefined && large !== undefined
      ? `Per 1,000 pods beyond the first ${small.pods}: ${fixed(
          perThousand(small, large, (r) => r.seconds),
          2,
        )} s and ${fixed(perThousand(small, large, (r) => r.peakRssBytes) / 2 ** 20, 1)} MiB. The audit keeps each object's results (a few hundred bytes), never the object, and holds one page of 500 objects at a time; the JSON printed at the end is part of the peak.`
      : '',
  ].join('\n');
}

/** Process CPU (every thread) per answered request, µs: a load run's servers' cores / req/s. */
const cpuPerReview = (run) =>
  fixed((1e6 * (run.cpuCores?.servers?.[0] ?? Number.NaN)) / run.rps, 0);

/** Where the warm difference goes (registry.mjs splitWarm), as a table and a sentence. */
function splitLines(split) {
  if (split === undefined) return [];
  const rows = ['mutate', 'validate'].map((endpoint) => {
    const e = split[endpoint];
    const policy = e.decisionOnUs - e.decisionOffUs;
    const step = e.reviewOnUs - e.reviewOffUs - policy;
    return [
      endpoint,
      `${fixed(e.reviewOffUs, 1)} → ${fixed(e.reviewOnUs, 1)}`,
      `${fixed(e.reviewOffUs / e.reviewOnUs, 2)}×`,
      `${fixed(e.decisionOffUs, 1)} → ${fixed(e.decisionOnUs, 1)}`,
      fixed(policy, 1),
      fixed(step, 1),
      `${fixed(e.reviewOffUs / (e.reviewOffUs + step), 2)}×`,
    ];
  });
  return [
    `In-process, one thread's CPU per warm review (median of ${split.rounds} interleaved rounds of`,
    `${split.per}; the facts gathered from this registry once, then served as a thread's memo serves`,
    'them; no HTTP, no decision line): the review off and on, and the decision entrypoint alone off',
    'and on with the facts already on the images. What the policy does with the facts (pins and',
    'their messages, signatures judged and named in an audit annotation, a bigger input) is',
    'its own share of the difference; the facts step is the rest (the shape, the memo, the facts',
    'put on the images, the bound); the last column is what the ratio would be if the policy',
    'did nothing more with the facts than without them.',
    '',
    table(
      [
        'endpoint',
        'review off → on (µs)',
        'ratio',
        'decision alone off → on (µs)',
        'the policy’s share (µs)',
        'the facts step’s share (µs)',
        'off / (off + the step’s share)',
      ],
      rows,
    ),
  ];
}

export function registrySection({ registry }) {
  if (registry === undefined) return '';
  const row = (endpoint, mode) =>
    registry.warm.find((w) => w.endpoint === endpoint && w.features === mode);
  const rows = ['mutate', 'validate'].map((endpoint) => {
    const off = row(endpoint, 'off');
    const on = row(endpoint, 'on');
    return [
      endpoint,
      `${fixed(off.rps, 0)} → ${fixed(on.rps, 0)}`,
      `${fixed(on.rps / off.rps, 2)}×`,
      `${ms(off.latencyUs.p50)} → ${ms(on.latencyUs.p50)}`,
      `${ms(off.latencyUs.p99)} → ${ms(on.latencyUs.p99)}`,
      `${cpuPerReview(off)} → ${cpuPerReview(on)}`,
      `${on.status?.['2xx'] ?? 0}/${on.requests}`,
    ];
  });
  const { cold, shared } = registry;
  return [
    '## 3c. Registry facts: pinning and signatures',
    '',
    'The real CNCF distribution registry on loopback (TLS), three images pushed by crane and',
    'signed by cosign 3. The same pod reviews against two gateways from `dist/`, one with',
    '`trustedRegistries` only, one adding `pinDigests: pods` and a `signatures` entry for the',
    'images; the mutating review carries tags (pinned), the validating one the pinned references',
    '(signatures checked), 64 connections, closed loop, caches warm (one review first).',
    '',
    table(
      [
        'endpoint',
        'req/s off → on',
        'ratio',
        'p50 off → on (ms)',
        'p99 off → on (ms)',
        'server CPU per review off → on (µs)',
        'answered 200',
      ],
      rows,
    ),
    '',
    'Goal (issue 24): ≥ 0.9× with facts warm. Before (c18867f, this machine): 0.70× mutate,',
    '0.63× validate; with the lookups not computed again for a shape seen before',
    '(`lookupsByShape`), `signatures.required_any` once per reference, and decision lines',
    'not built at `warn`, the numbers above.',
    '',
    ...splitLines(registry.split),
    '',
    `A cache miss in-process (median of ${cold.rounds}, over kept-alive connections): the registry's own`,
    `round trip (a manifest HEAD) ${fixed(cold.registryRttMs, 2)} ms; a tag resolved ${fixed(cold.tagMs, 2)} ms`,
    `(${fixed(cold.tagMs / cold.registryRttMs, 1)}× the round trip); a tag resolved and its signature found and`,
    `verified in both formats' places (legacy tag, referrers, fallback tag, manifest, bundle blob)`,
    `${fixed(cold.signatureMs, 2)} ms (${fixed(cold.signatureMs / cold.registryRttMs, 1)}× the round trip).`,
    '',
    `${shared.reviews} concurrent mutating reviews of a tag nothing had resolved made`,
    `${shared.registryRequests} registry request(s) in total (\`imagegate_registry_requests_total\`),`,
    `and ${shared.pinnedAll ? 'every one was' : 'NOT every one was'} pinned to the tag's digest.`,
  ].join('\n');
}

export function keylessSection({ keyless }) {
  if (keyless === undefined) return '';
  const rows = Object.entries(keyless.rows).map(([name, r]) => [
    name,
    fixed(r.coldMs, 2),
    String(r.coldRequests),
    fixed(r.warmMs, 3),
    String(r.warmRequests),
  ]);
  return [
    '## 3g. Keyless signatures: cold and warm',
    '',
    'A private Sigstore (Rekor v2, Fulcio, the timestamp authority; `make sigstore-tools`) and the',
    'real distribution registry on loopback; cosign 3 signs with its defaults, keyless (a GitHub',
    'Actions identity: a Rekor v2 entry and an RFC 3161 timestamp) or with a key (a Rekor v2 entry).',
    `In-process, through the gateway's FactSource over kept-alive connections; medians of ${keyless.rounds}`,
    "rounds, each on a fresh cache (cold) and then again on it (warm). The third row is kyverno#16657's",
    'shape: one pod, 8 containers of one image, an entry of 5 identities (the fifth matches).',
    '',
    table(
      ['lookup', 'cold (ms)', 'cold registry requests', 'warm (ms)', 'warm registry requests'],
      rows,
    ),
    '',
    `The verification alone (signature, certificate chain at the timestamp, the timestamp, the Rekor v2`,
    `checkpoint and inclusion proof; no I/O), mean of ${keyless.iterations}: one identity`,
    `${fixed(keyless.verifyUs.keyless, 0)} µs, five identities ${fixed(keyless.verifyUs.five, 0)} µs. No transparency log or`,
    'timestamp authority is contacted to verify: the trusted root is the only trust material.',
  ].join('\n');
}

export function tenantsSection({ tenants }) {
  if (tenants === undefined) return '';
  const { alone, beside, hostile, refusal } = tenants;
  const ratio = beside.p50Ms / alone.p50Ms;
  return [
    "## 3e. One tenant's 3,000 tags beside another tenant's Pods",
    '',
    `The real distribution registry behind the fault proxy, ${tenants.registryDelayMs} ms per answer; pinDigests`,
    'and signatures on, one signed image. A benign Pod (namespace `shop`) is one fresh tag:',
    'mutated (the tag pinned, a cache miss) then validated (the signature verified), one Pod',
    `after another, ${tenants.benign} times alone and ${tenants.benign} times while namespace \`ci\` sends a Pod`,
    `of ${tenants.hostileTags.toLocaleString('en')} distinct tags again and again (\`maxLookups: 4096\`, so it is queued, not`,
    "refused). The registry's 8 slots are shared round-robin across namespaces, then reviews,",
    'and 2 of them are kept for namespaces holding none (docs/registries.md).',
    '',
    table(
      ['', 'benign p50 (ms)', 'pinned and verified', ''],
      [
        ['alone', fixed(alone.p50Ms, 1), alone.allPinnedAndVerified ? 'all' : 'NOT all', ''],
        [
          'beside the 3,000-tag Pod',
          fixed(beside.p50Ms, 1),
          beside.allPinnedAndVerified ? 'all' : `NOT all: ${beside.failures[0] ?? ''}`,
          `${fixed(ratio, 2)}× alone (goal ≤ 2×)`,
        ],
      ],
    ),
    '',
    `The 3,000-tag Pod was sent ${hostile.reviews} times meanwhile (p50 ${fixed(hostile.p50Ms, 0)} ms each: it runs out of`,
    'its own budget and is answered with a denial naming the registry; its queued requests are',
    'dropped unsent). With the default `maxLookups` (256) the same Pod is refused before any',
    `lookup, in ${fixed(refusal.ms, 1)} ms: “${refusal.message}”.`,
    "On main 4cf58ec (one first-come-first-served queue per registry, a review's requests left",
    'queued past its budget) the benign Pod missed its budget: `pinning failed: registry … did not',
    "answer within the review's 3000 ms budget`. With round-robin turns alone (before 2 slots were",
    'kept, d63348c) the benign p50 was 3.6–3.7× alone: each of its lookups waited for one of the',
    "flood's answers; the fault proxy also opened a TLS connection per request then (4.45× on 32f4627).",
  ].join('\n');
}

function profileSection({ profile, inprocess }) {
  const { requests, busySamples, serverCpuS, mainThreadCpuS, noop } = profile;
  // µs per request: a phase's share of the main thread's busy samples times that thread's
  // measured CPU time (the profile samples the main thread only).
  const perRequest = (p, samples) =>
    samples === undefined
      ? Number.NaN
      : ((samples / p.busySamples) * p.mainThreadCpuS * 1e6) / p.requests;
  const share = (p, samples) =>
    samples === undefined ? 'n/a' : fixed((100 * samples) / p.busySamples, 1);
  const phases = Object.keys({ ...profile.phases, ...noop.phases })
    .sort((a, b) => (profile.phases[b] ?? 0) - (profile.phases[a] ?? 0))
    .map((phase) => [
      PHASES[phase] ?? phase,
      share(profile, profile.phases[phase]),
      fixed(perRequest(profile, profile.phases[phase]), 1),
      share(noop, noop.phases[phase]),
      fixed(perRequest(noop, noop.phases[phase]), 1),
    ]);
  const top = profile.top.map((f) => [
    `\`${f.name}\``,
    f.phases.join(', '),
    String(f.samples),
    fixed((100 * f.samples) / busySamples, 1),
    f.hottest === undefined
      ? ''
      : `${f.hottest.line} (${fixed(100 * f.hottest.share, 0)} %)${f.hottest.text === '' ? '' : `: \`${f.hottest.text.replaceAll('|', '\\|').replaceAll('`', "'")}\``}`,
  ]);
  const steps = Object.entries(inprocess.phases.steps).map(([step, s]) => [
    step,
    fixed(s.medianUs, 1),
    fixed(s.p99Us, 1),
  ]);
  return [
    '## 4. Profile of the hot path',
    '',
    `imagegate: ${requests.toLocaleString('en')} validate reviews in ${fixed(profile.load.durationS, 1)} s under the profiler (${fixed(profile.load.rps, 0)} req/s;`,
    `the profiler costs some): ${fixed((serverCpuS * 1e6) / requests, 0)} µs of process CPU per review, ${fixed((mainThreadCpuS * 1e6) / requests, 0)} µs of it on the`,
    `event-loop thread (the rest: GC helper threads, libuv); ${busySamples.toLocaleString('en')} busy and ${profile.idleSamples.toLocaleString('en')} idle samples of that thread.`,
    `The no-op ceiling, profiled the same way right after: ${noop.requests.toLocaleString('en')} requests at ${fixed(noop.load.rps, 0)} req/s,`,
    `${fixed((noop.serverCpuS * 1e6) / noop.requests, 0)} µs of process CPU per request, ${fixed((noop.mainThreadCpuS * 1e6) / noop.requests, 0)} µs on the event loop. Shares are sample counts`,
    '(see `summariseProfile`: wall-clock deltas would also bill preemption by the other work on',
    'this machine); µs per request = share × the event-loop thread’s measured CPU time / requests.',
    'Loopback caveat: `writev` also delivers the bytes to the load generator and wakes it, and',
    'the preemption that follows lands its samples there.',
    '',
    table(
      [
        'phase',
        'imagegate % of busy',
        'imagegate ≈ µs per review',
        'no-op % of busy',
        'no-op ≈ µs per request',
      ],
      phases,
    ),
    '',
    'Top self samples by function (imagegate):',
    '',
    table(['function', 'phase', 'samples', '% of busy', 'hottest line (share of its ticks)'], top),
    '',
    `The same path in-process, step by step, for the benchmark body (${inprocess.phases.bodyBytes} bytes, compact,`,
    `policy input ${inprocess.phases.inputBytes} bytes serialised, ${inprocess.phases.inputBytesWithoutReview} without \`review\`, answer ${inprocess.phases.resultBytes} bytes):`,
    '',
    table(['step', 'median µs', 'p99 µs'], steps),
  ].join('\n');
}

function observations(results, v) {
  const { inprocess, http, profile } = results;
  const s = inprocess.phases.steps;
  const lean = Object.entries(s).find(([k]) => k.startsWith('engine.validate(input) '))?.[1];
  const full = Object.entries(s).find(([k]) => k.startsWith('engine.validate(input), '))?.[1];
  const wasmShare =
    (100 *
      ((profile.phases.wasm ?? 0) + (profile.phases.copyIn ?? 0) + (profile.phases.copyOut ?? 0))) /
    profile.busySamples;
  const out = [];
  if (full !== undefined && lean !== undefined) {
    const share = fixed(
      100 - (100 * inprocess.phases.inputBytesWithoutReview) / inprocess.phases.inputBytes,
      0,
    );
    out.push(
      inprocess.passesReview === false
        ? `- \`input.review\` (${share} % of the serialised policy input, read by no rule) is left out by the engine ` +
            `for this bundle (its manifest opts out): evaluation takes ${fixed(lean.medianUs, 0)} µs, against ` +
            `${fixed(full.medianUs, 0)} µs for the same bundle without the opt-out (median, benchmark body).`
        : `- \`input.review\` (the whole AdmissionReview request, read by no rule) makes up ${share} % ` +
            `of the serialised policy input; evaluating without it takes ${fixed(lean.medianUs, 0)} µs instead of ` +
            `${fixed(full.medianUs, 0)} µs (median, benchmark body).`,
    );
  }
  out.push(
    `- Evaluation including the copies in and out of wasm memory is ${fixed(wasmShare, 0)} % of the ` +
      'gateway’s busy main-thread time under load.',
  );
  const cpuPer = (p) => (p.serverCpuS * 1e6) / p.requests;
  out.push(
    `- CPU per validate request under the profiler: imagegate ${fixed(cpuPer(profile), 0)} µs, the no-op ceiling ` +
      `${fixed(cpuPer(profile.noop), 0)} µs. At 0.7× the ceiling’s throughput on one event loop a review could ` +
      `spend about ${fixed(cpuPer(profile.noop) / TARGETS.ceilingRatio, 0)} µs in all — less than evaluation alone takes today.`,
  );
  if (row(http, 'workers', 'validate', 64) !== undefined) {
    const scaling = ENDPOINTS.map((e) =>
      fixed(row(http, 'workers', e, 64).rps / row(http, 'warn', e, 64).rps, 2),
    );
    const cores = ENDPOINTS.map((e) => fixed(serverCores(row(http, 'workers', e, 64)), 2));
    const loadgen = ENDPOINTS.map((e) => fixed(row(http, 'workers', e, 64).cpuCores.loadgen, 2));
    out.push(
      `- Every core (\`--workers 2\`, one wasm instance each) gives ${scaling.join(' / ')}× the throughput of one ` +
        `event loop, using ${cores.join(' / ')} cores while the load generator took ${loadgen.join(' / ')} of the ` +
        'same two: the ceiling ratio cannot reach 0.7 by adding processes on this machine, only by spending less per review.',
    );
  }
  const ratio = ENDPOINTS.map((e) =>
    fixed(row(http, 'info', e, 64).rps / row(http, 'warn', e, 64).rps, 2),
  );
  out.push(
    `- Decision logging at \`info\` keeps ${ratio.join(' / ')} of the \`warn\` throughput (validate / mutate / imagereview).`,
  );
  const noopCpu = ENDPOINTS.map((e) => serverCores(row(http, 'noop', e, 64)));
  const loadgenCpu = ENDPOINTS.map((e) => row(http, 'noop', e, 64).cpuCores.loadgen);
  out.push(
    `- At the ceiling the no-op server used ${noopCpu.map((c) => fixed(c, 2)).join(' / ')} cores and the load ` +
      `generator ${loadgenCpu.map((c) => fixed(c, 2)).join(' / ')}: on 2 cores the ceiling is shared with autocannon, ` +
      'so it is a ceiling for this machine, not for the server alone.',
  );
  const needed = 64 / (TARGETS.p99Us / 1e6);
  const noopP99 = ENDPOINTS.map((e) => ms(row(http, 'noop', e, 64).latencyUs.p99));
  out.push(
    `- In a closed loop every one of the 64 connections always has a request in flight, so latency is ` +
      `64 / throughput plus jitter: p99 ≤ ${ms(TARGETS.p99Us, 0)} ms needs well over ${fixed(needed, 0)} req/s. ` +
      `The no-op ceiling’s own p99 here is ${noopP99.join(' / ')} ms; the open-loop rows show latency below saturation.`,
  );
  const opaCpu = ENDPOINTS.map((e) => serverCores(row(http, 'opa', e, 64)));
  out.push(
    `- The OPA server used ${opaCpu.map((c) => fixed(c, 2)).join(' / ')} cores (Go uses both; the gateway one event loop, or one per worker).`,
  );
  const foreign = http.rows
    .map(
      (r) =>
        r.cpuCores.machineBusy - serverCores(r) - r.cpuCores.loadgen - r.cpuCores.machineSoftirq,
    )
    .filter((c) => c > 0.3).length;
  if (foreign > 0) {
    out.push(
      `- In ${foreign} of ${http.rows.length} load runs the machine was busier than server + load generator + ` +
        'softirq by more than 0.3 cores: other work shared the machine; compare ratios, not absolutes.',
    );
  }
  if (!v.growth.ok) out.push('- Memory grew over the growth run: see the growth table.');
  return ['## Observations (computed from this run)', '', ...out].join('\n');
}

export function renderReport(results) {
  const v = verdicts(results);
  const raw = {
    ...results,
    profile: { ...results.profile, file: undefined },
  };
  return `${[
    '# Benchmarks',
    '',
    'Written by `make bench` (`node test/bench/run.mjs`); do not edit by hand. Issue: “Benchmarks side',
    'by side: imagegate vs OPA server vs the HTTP ceiling”. Re-run to refresh; `BENCH_QUICK=1` is a',
    'smoke run that writes elsewhere.',
    '',
    targetSection(results, v),
    '',
    observations(results, v),
    '',
    machineSection(results),
    '',
    methodSection(results),
    '',
    inprocessSection(results),
    '',
    httpSection(results),
    '',
    reloadSection(results),
    '',
    hostileSection(results),
    '',
    registrySection(results),
    '',
    keylessSection(results),
    '',
    tenantsSection(results),
    '',
    auditSection(results),
    '',
    profileSection(results),
    '',
    beforeAfterSection(results),
    '',
    '## Raw results',
    '',
    '<details><summary>results.json</summary>',
    '',
    '```json',
    JSON.stringify(raw, null, 1),
    '```',
    '',
    '</details>',
  ].join('\n')}\n`;
}
