/**
 * `make bench-cluster`: what each admission backend adds to every pod creation, through
 * the real API server. One backend at a time, each on a fresh e2e control plane (etcd,
 * kube-apiserver, kube-controller-manager): nothing (`none`, the baseline), a webhook
 * that admits everything (`noop`, registered as imagegate is: the floor of any webhook),
 * the policy as ValidatingAdmissionPolicy + MutatingAdmissionPolicy (`cel`, in the API
 * server), imagegate, Gatekeeper and Kyverno, the last four implementing the policy of
 * cases.mjs. Per backend:
 *
 *   1. the verdict check: every pod of cases.mjs created for real; allowed or refused, and
 *      the pull policy the API server stored, compared with the policy and with imagegate
 *      (`noop` must admit every pod as written);
 *   2. load: test/bench/cluster/load.mjs in its own process creates pods at 1, 8 and 64
 *      concurrent clients; creations per second, latency percentiles, and the CPU seconds
 *      of the backend, the API server and etcd per 1,000 pods, RSS of the backend;
 *   3. with registry features: imagegate (`signatures` + `pinDigests`) and Kyverno
 *      (`verifyImages` with the same key) on the same cosign-signed images in one local
 *      registry: the first creation of each image (cold) and the same images again (warm).
 *
 * Writes docs/BENCHMARKS-CLUSTER.md. Not part of CI (≈15 minutes). It refuses to start on
 * a busy machine, and marks load steps that other processes disturbed (busy.mjs).
 *
 *   node test/bench/cluster/run.mjs
 *   BENCH_QUICK=1        2 s per load step; writes $TMPDIR/imagegate-BENCHMARKS-CLUSTER.quick.md
 *   BENCH_BACKENDS=none,imagegate   only these (default: none,noop,cel,imagegate,gatekeeper,kyverno)
 *   BENCH_ALLOW_BUSY=1   run on a busy machine anyway; the report says so at the top
 *   BENCH_BUSY_CORES=0.25, BENCH_QUIET_WAIT_S=300   the busy guard's threshold and wait
 *   BENCH_ROUNDS=N       rounds of every backend, alternating order (default 2; quick: 1)
 *   BENCH_REGISTRY=0     leave out step 3
 *   BENCH_OUT=FILE, BENCH_KEEP=1    as make bench
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  benchMain,
  commandText,
  log,
  machineCpu,
  machineFacts,
  processCpu,
  QUICK,
  ROOT,
  statusBytes,
} from '../lib.mjs';
import { BUSY_CORES, cpuWindow, guardStart, quietBeforeStep } from './busy.mjs';
import { CASES, EDGE_CASES, LOAD_IMAGE, NAMESPACE } from './cases.mjs';
import { kubectl, must, startLoad } from './kube.mjs';
import { runRegistryComparison } from './registry.mjs';
import { renderClusterReport } from './report.mjs';

const HERE = join(ROOT, 'test', 'bench', 'cluster');
const ALL = ['none', 'noop', 'cel', 'imagegate', 'gatekeeper', 'kyverno'];
const CONCURRENCY = [1, 8, 64];
const DURATION_S = QUICK ? 2 : 10;
const WARMUP_S = QUICK ? 1 : 3;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (QUICK ? 1 : 2));

const mean = (values) => values.reduce((s, v) => s + v, 0) / values.length;

/**
 * One backend's rounds as one result: load figures are the rounds' mean, with each
 * step's pods/s and p50 range kept; the verdicts must be the same in every round.
 */
function mergeRounds(rounds) {
  const failed = rounds.find((r) => r.error);
  if (failed) return failed;
  const [first] = rounds;
  const verdictsDiffer = rounds.some((r) =>
    r.cases.some(
      (c, i) =>
        c.allowed !== first.cases[i].allowed ||
        c.pullPolicies.join() !== first.cases[i].pullPolicies.join(),
    ),
  );
  const load = first.load.map((step, i) => {
    const steps = rounds.map((r) => r.load[i]);
    const avg = (pick) => mean(steps.map(pick));
    const status = {};
    for (const s of steps)
      for (const [k, v] of Object.entries(s.status)) status[k] = (status[k] ?? 0) + v;
    return {
      ...step,
      rps: avg((s) => s.rps),
      created: steps.reduce((sum, s) => sum + s.created, 0),
      status,
      latencyUs: Object.fromEntries(
        Object.keys(step.latencyUs).map((k) => [k, avg((s) => s.latencyUs[k])]),
      ),
      cpuPer1000: Object.fromEntries(
        Object.keys(step.cpuPer1000).map((k) => [k, avg((s) => s.cpuPer1000[k])]),
      ),
      backendCores: avg((s) => s.backendCores),
      machineBusyCores: avg((s) => s.machineBusyCores),
      backendRssPeakBytes: Math.max(...steps.map((s) => s.backendRssPeakBytes)),
      // The worst round: a step is as trustworthy as its noisiest run.
      background: {
        busyCores: Math.max(...steps.map((s) => s.background.busyCores)),
        othersCores: Math.max(...steps.map((s) => s.background.othersCores)),
        waitedMs: Math.max(...steps.map((s) => s.background.waitedMs)),
      },
      othersDuringCores: Math.max(...steps.map((s) => s.othersDuringCores)),
      busy: steps.some((s) => s.busy),
      range: {
        rps: [Math.min(...steps.map((s) => s.rps)), Math.max(...steps.map((s) => s.rps))],
        p50Us: [
          Math.min(...steps.map((s) => s.latencyUs.p50)),
          Math.max(...steps.map((s) => s.latencyUs.p50)),
        ],
      },
    };
  });
  return {
    ...first,
    rounds: rounds.length,
    verdictsDiffer,
    startS: mean(rounds.map((r) => r.startS)),
    rssAfterStart: mean(rounds.map((r) => r.rssAfterStart)),
    load,
  };
}

const dist = (path) => import(join(ROOT, 'dist', path));

/** Backend modules by name; `none` registers nothing (and so judges nothing). */
async function backend(name) {
  if (name === 'none') {
    return {
      judges: false,
      start: async () => ({ pids: () => [], stop: async () => {}, notes: ['no webhooks'] }),
    };
  }
  return import(join(HERE, `${name}.mjs`));
}

/** Versions from build-peers.sh's cache paths (…/gatekeeper-3.23.1/manager). */
async function versions() {
  const out = await commandText('bash', [join(ROOT, 'test', 'e2e', 'build-peers.sh'), '--check']);
  const of = (peer) => new RegExp(`/${peer}-([0-9][^/]*)/`).exec(out)?.[1] ?? 'not built';
  return { gatekeeper: of('gatekeeper'), kyverno: of('kyverno') };
}

async function machine() {
  return { ...(await machineFacts()), ...(await versions()) };
}

/**
 * Every case created for real: allowed (and the stored pull policies: init containers,
 * containers, image volumes) or the refusal.
 */
async function verdicts(plane) {
  const rows = [];
  const all = [...CASES.map((c) => [...c, 'policy']), ...EDGE_CASES.map((c) => [...c, 'edge'])];
  for (const [name, pod, expected, why, group] of all) {
    const r = await kubectl(plane, ['create', '-o', 'json', '-f', '-'], JSON.stringify(pod));
    let pullPolicies = [];
    let images = [];
    if (r.code === 0) {
      const { spec } = JSON.parse(r.stdout);
      const containers = [...(spec.initContainers ?? []), ...spec.containers];
      const volumes = (spec.volumes ?? []).filter((v) => v.image);
      pullPolicies = [
        ...containers.map((c) => c.imagePullPolicy),
        ...volumes.map((v) => v.image.pullPolicy),
      ];
      images = [...containers.map((c) => c.image), ...volumes.map((v) => v.image.reference)];
    }
    rows.push({
      name,
      group,
      expected,
      why,
      allowed: r.code === 0,
      message: r.code === 0 ? '' : r.stderr.trim().replace(/^Error from server.*?: /s, ''),
      pullPolicies,
      images,
    });
  }
  await kubectl(plane, ['delete', 'pods', '--all', '-n', NAMESPACE, '--wait=false']);
  return rows;
}

/** The control plane's processes (control-plane.sh detaches them from us) and the backend's. */
function ownPids(plane, info, started) {
  let watchdog;
  try {
    watchdog = Number(readFileSync(join(plane.dir, 'watchdog.pid'), 'utf8'));
  } catch {
    watchdog = undefined;
  }
  return [
    info.pids.etcd,
    info.pids.kubeApiserver,
    info.pids.kubeControllerManager,
    watchdog,
    ...started.pids(),
  ];
}

/** One load step in its own process; CPU of backend, API server and etcd sampled around it. */
async function loadStep(plane, info, started, concurrency, prefix) {
  const pids = {
    backend: started.pids(),
    apiserver: [info.pids.kubeApiserver],
    etcd: [info.pids.etcd],
  };
  const cpu = () =>
    Object.fromEntries(
      Object.entries(pids).map(([k, v]) => [k, v.reduce((s, p) => s + processCpu(p), 0)]),
    );
  const own = ownPids(plane, info, started);
  const before = await quietBeforeStep(own);
  const background = {
    busyCores: before.machineCores,
    othersCores: before.othersCores,
    waitedMs: before.waitedMs,
    top: before.top,
  };
  const load = startLoad(plane, {
    concurrency,
    durationS: DURATION_S,
    warmupS: WARMUP_S,
    prefix,
    image: LOAD_IMAGE,
  });
  // Warm-up first: the CPU window is the measured window only.
  await new Promise((resolve) => setTimeout(resolve, WARMUP_S * 1000));
  const cpuBefore = cpu();
  const machineBefore = machineCpu();
  const others = cpuWindow(own);
  const t0 = performance.now();
  let rssPeak = 0;
  const sampler = setInterval(() => {
    rssPeak = Math.max(
      rssPeak,
      pids.backend.reduce((s, p) => s + (statusBytes(p, 'VmRSS') || 0), 0),
    );
  }, 100);
  const result = await load.done.finally(() => clearInterval(sampler));
  const seconds = (performance.now() - t0) / 1000;
  const after = cpu();
  const machineAfter = machineCpu();
  const during = others.end();
  const created = result.status['201'] ?? 0;
  const perThousand = (k) =>
    created > 0 ? ((after[k] - cpuBefore[k]) / created) * 1000 : Number.NaN;
  return {
    ...result,
    created,
    cpuPer1000: {
      backend: perThousand('backend'),
      apiserver: perThousand('apiserver'),
      etcd: perThousand('etcd'),
    },
    backendCores: (after.backend - cpuBefore.backend) / seconds,
    machineBusyCores: (machineAfter.busy - machineBefore.busy) / seconds,
    backendRssPeakBytes: rssPeak,
    background,
    othersDuringCores: during.othersCores,
    othersDuringTop: during.top,
    busy: !before.quiet || during.othersCores > BUSY_CORES,
  };
}

async function measure(name, tmp, dir = name) {
  const { startControlPlane } = await dist('test/e2e/helpers/control-plane.js');
  const work = join(tmp, dir);
  mkdirSync(work, { recursive: true });
  log(`${dir}: control plane`);
  const plane = await startControlPlane({ dir: join(work, 'control-plane') });
  const info = JSON.parse(readFileSync(join(plane.dir, 'control-plane.json'), 'utf8'));
  let started;
  try {
    await must(plane, ['create', 'namespace', NAMESPACE]);
    const t0 = performance.now();
    log(`${name}: starting the backend`);
    const module = await backend(name);
    started = await module.start({ plane, work, namespace: NAMESPACE });
    const startS = (performance.now() - t0) / 1000;
    const rssAfterStart = started.pids().reduce((s, p) => s + (statusBytes(p, 'VmRSS') || 0), 0);
    log(`${name}: verdicts`);
    const before = await started.requests?.();
    const cases = await verdicts(plane);
    const after = await started.requests?.();
    const load = [];
    for (const c of CONCURRENCY) {
      log(`${name}: load at ${c} concurrent clients`);
      load.push(await loadStep(plane, info, started, c, `c${c}`));
      const step = load.at(-1);
      log(
        `${name}: c=${c}: ${step.rps.toFixed(1)} pods/s, p50 ${(step.latencyUs.p50 / 1000).toFixed(1)} ms; others used ${step.background.othersCores.toFixed(2)} cores before, ${step.othersDuringCores.toFixed(2)} during${step.busy ? ' (BUSY)' : ''}`,
      );
    }
    return {
      name,
      version: plane.version,
      // false: admits everything by design (none, noop); held to "every pod as written".
      judges: module.judges !== false,
      // Why it judges a case differently from the policy, by case name (shown with each difference).
      explain: module.explain ?? {},
      // Reviews a webhook answered during the verdict check, by path (noop counts them).
      ...(before && after
        ? {
            verdictRequests: Object.fromEntries(
              Object.keys(after).map((path) => [path, after[path] - (before[path] ?? 0)]),
            ),
          }
        : {}),
      startS,
      rssAfterStart,
      notes: started.notes ?? [],
      cases,
      load,
    };
  } finally {
    await started?.stop().catch(() => {});
    await plane.stop();
  }
}

await benchMain('BENCHMARKS-CLUSTER', renderClusterReport, async (tmp, startedAt) => {
  const names = (process.env.BENCH_BACKENDS ?? ALL.join(',')).split(',').filter(Boolean);
  for (const n of names)
    if (!ALL.includes(n)) throw new Error(`unknown backend ${n} (${ALL.join(', ')})`);
  const results = {
    quick: QUICK,
    startedAt: new Date(startedAt).toISOString(),
    durationS: DURATION_S,
    warmupS: WARMUP_S,
    roundCount: ROUNDS,
  };
  // Before anything starts: a quiet machine, or a refusal (BENCH_ALLOW_BUSY=1: a mark).
  results.busy = { start: await guardStart(), thresholdCores: BUSY_CORES };
  results.machine = await machine();
  // Rounds in alternating order (forward, then reversed), so no backend always runs on
  // the warmest or the most loaded machine; the report shows their mean and range.
  results.rounds = [];
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? names : [...names].reverse();
    const measured = [];
    for (const name of order) {
      try {
        measured.push(await measure(name, tmp, `${name}-${round + 1}`));
      } catch (error) {
        // A peer that cannot run is reported with what stopped it; the others are measured.
        log(`${name} failed: ${error.stack ?? error}`);
        measured.push({ name, error: String(error.message ?? error).slice(0, 4000) });
      }
    }
    results.rounds.push(measured);
  }
  results.backends = names.map((name) =>
    mergeRounds(results.rounds.map((r) => r.find((b) => b.name === name))),
  );
  results.busy.steps = results.rounds.flatMap((measured, round) =>
    measured.flatMap((b) =>
      (b.load ?? [])
        .filter((l) => l.busy)
        .map((l) => ({
          backend: b.name,
          round: round + 1,
          concurrency: l.concurrency,
          othersBeforeCores: l.background.othersCores,
          othersDuringCores: l.othersDuringCores,
          who: [...new Set([...l.background.top, ...l.othersDuringTop])],
        })),
    ),
  );
  results.busy.marked = !results.busy.start.quiet || results.busy.steps.length > 0;
  if (process.env.BENCH_REGISTRY !== '0') {
    results.registry = await runRegistryComparison({ tmp, quick: QUICK, backends: names });
  }
  // A backend that could not run leaves its logs (<backend>-<round>/*.log, control-plane/).
  const failed = [
    ...results.rounds.flat().filter((b) => b.error),
    ...(results.registry?.results ?? []).filter((b) => b.error),
  ].map((b) => b.name);
  if (failed.length > 0) results.keepLogs = `${[...new Set(failed)].join(', ')} failed`;
  return results;
});
