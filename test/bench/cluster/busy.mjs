/**
 * The busy-machine guard of `make bench-cluster` (issue 24): every figure of the bench is
 * a ratio between backends measured one after the other on a 2-core machine that other
 * people share, so a build running beside one backend and not the next decides the
 * ratios (a run begun right after a build gave Gatekeeper 0.97× imagegate's added p50, a
 * quiet one 1.69×). So the run measures what *other* processes use:
 *
 *   others' cores = (machine CPU time − the bench's own processes − kernel threads)
 *                   / wall-clock seconds of the window
 *
 * Machine CPU time is user + nice + system + steal from /proc/stat (steal: another guest
 * took the core); irq and softirq are left out, since the bench's own loopback traffic
 * causes them and no process is billed for it. Own: the bench process and every process
 * below it (the backend, the load client, kubectl), and the pids it is given (etcd,
 * kube-apiserver, kube-controller-manager and the watchdog, which control-plane.sh
 * detaches) with theirs. Kernel threads: children of kthreadd (pid 2).
 *
 * Threshold BUSY_CORES (default 0.25 cores, an eighth of this machine; BENCH_BUSY_CORES to
 * change it). Before the run: wait for a quiet 5 s window, up to BENCH_QUIET_WAIT_S
 * (300 s; quick runs 20 s), then refuse to start (exit 2), unless BENCH_ALLOW_BUSY=1: the run then
 * goes on and its report says in its first lines that it was measured on a busy machine.
 * Before each load step: wait (up to 60 s; quick 5 s) for a quiet 2 s window; and during
 * the measured window itself the same figure is taken. A step busy before or during is
 * marked in the report (a run is never stopped half way: its other steps stay useful).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { log, QUICK, sleep } from '../lib.mjs';

/** USER_HZ, as in lib.mjs. */
const HZ = 100;
export const BUSY_CORES = Number(process.env.BENCH_BUSY_CORES ?? 0.25);
export const ALLOW_BUSY = process.env.BENCH_ALLOW_BUSY === '1';
const QUIET_WAIT_S = Number(process.env.BENCH_QUIET_WAIT_S ?? (QUICK ? 20 : 300));

/** pid → {comm, ppid, cpu, childCpu} (seconds) for every process readable now. */
function processes() {
  const table = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone since readdir
    }
    // comm may hold spaces and parentheses: the fields start after the last ")".
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    table.set(Number(entry), {
      comm,
      ppid: Number(f[1]),
      cpu: (Number(f[11]) + Number(f[12])) / HZ,
      childCpu: (Number(f[13]) + Number(f[14])) / HZ,
    });
  }
  return table;
}

/** CPU seconds the machine spent on anything but idle, iowait, irq and softirq. */
function machineBusy() {
  const [, ...values] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
  const [user, nice, system, , , , , steal] = values.map(Number);
  return (user + nice + system + steal) / HZ;
}

function snapshot() {
  return { at: performance.now(), machine: machineBusy(), procs: processes() };
}

/** "own", "kernel" or "other", by walking up the parents in `procs`. */
function classify(pid, procs, roots) {
  for (let p = pid, hops = 0; p > 0 && hops < 64; hops++) {
    if (roots.has(p)) return 'own';
    if (p === 2) return 'kernel';
    const parent = procs.get(p)?.ppid;
    if (parent === undefined) return 'other';
    p = parent;
  }
  return 'other';
}

/** What happened between two snapshots, in cores. */
function compare(a, b, ownPids) {
  const seconds = (b.at - a.at) / 1000;
  const roots = new Set([process.pid, ...ownPids.filter((p) => Number.isInteger(p))]);
  const self = (s) => {
    const me = s.procs.get(process.pid);
    return me ? me.cpu + me.childCpu : 0;
  };
  let own = self(b) - self(a);
  let kernel = 0;
  const others = [];
  for (const [pid, now] of b.procs) {
    if (pid === process.pid) continue;
    const was = a.procs.get(pid);
    const delta = now.cpu - (was?.cpu ?? 0);
    const kind = classify(pid, b.procs, roots);
    if (kind === 'own') own += delta;
    else if (kind === 'kernel') kernel += delta;
    else others.push({ pid, comm: now.comm, cores: delta / seconds });
  }
  // Our children that ended in the window: their whole CPU moved into our childCpu,
  // including what they had used before the window began.
  for (const [pid, was] of a.procs) {
    if (!b.procs.has(pid) && was.ppid === process.pid) own -= was.cpu;
  }
  const machine = b.machine - a.machine;
  const othersCores = Math.max(0, (machine - own - kernel) / seconds);
  // Who they were; processes that began and ended inside the window (a build's compiler
  // runs) are gone by now: what the listed ones do not explain is theirs.
  const top = others
    .filter((o) => o.cores >= 0.01)
    .sort((x, y) => y.cores - x.cores)
    .slice(0, 3)
    .map((o) => `${o.comm}[${o.pid}] ${o.cores.toFixed(2)}`);
  const shortLived = othersCores - others.reduce((sum, o) => sum + Math.max(0, o.cores), 0);
  if (shortLived >= 0.05) top.push(`short-lived processes ${shortLived.toFixed(2)}`);
  return {
    seconds,
    machineCores: machine / seconds,
    ownCores: own / seconds,
    kernelCores: kernel / seconds,
    othersCores,
    top,
  };
}

/** Starts a window; `end()` says what everyone used in it. */
export function cpuWindow(ownPids = []) {
  const a = snapshot();
  return { end: () => compare(a, snapshot(), ownPids) };
}

/**
 * Waits until others use at most BUSY_CORES over a `windowMs` window, for at most
 * `maxWaitMs`. Resolves with the last window's figures, `quiet` and how long it waited.
 */
export async function untilQuiet({ ownPids = [], windowMs, maxWaitMs, what = 'machine' }) {
  const started = Date.now();
  let lastLog = started;
  for (;;) {
    const window = cpuWindow(ownPids);
    await sleep(windowMs);
    const w = window.end();
    const quiet = w.othersCores <= BUSY_CORES;
    const waitedMs = Date.now() - started;
    if (quiet || waitedMs >= maxWaitMs) return { ...w, quiet, waitedMs };
    if (Date.now() - lastLog >= 30_000) {
      lastLog = Date.now();
      log(
        `${what}: other processes use ${w.othersCores.toFixed(2)} cores (threshold ${BUSY_CORES}; ${w.top.join(', ')}); waiting up to ${Math.round(maxWaitMs / 1000)} s`,
      );
    }
  }
}

/**
 * Before anything is started: a quiet machine, or a refusal. With BENCH_ALLOW_BUSY=1 a
 * busy machine is recorded instead (the report is marked).
 */
export async function guardStart() {
  log(
    `busy guard: waiting for other processes to use at most ${BUSY_CORES} cores over 5 s (up to ${QUIET_WAIT_S} s)`,
  );
  const w = await untilQuiet({ windowMs: QUICK ? 2_000 : 5_000, maxWaitMs: QUIET_WAIT_S * 1000 });
  const start = {
    thresholdCores: BUSY_CORES,
    othersCores: w.othersCores,
    machineCores: w.machineCores,
    top: w.top,
    waitedS: w.waitedMs / 1000,
    quiet: w.quiet,
    allowBusy: ALLOW_BUSY,
  };
  const who = w.top.join(', ');
  if (!w.quiet && !ALLOW_BUSY) {
    const refusal = new Error(
      `the machine is busy: other processes used ${w.othersCores.toFixed(2)} cores (threshold ${BUSY_CORES}; ${who}) after waiting ${Math.round(w.waitedMs / 1000)} s. Ratios measured now would not hold; run again when it is quiet, or set BENCH_ALLOW_BUSY=1 to measure anyway (the report is then marked as measured on a busy machine).`,
    );
    // benchMain: a refusal, not a failure (exit 2, no logs kept).
    refusal.refused = true;
    throw refusal;
  }
  log(
    w.quiet
      ? `busy guard: quiet (others ${w.othersCores.toFixed(2)} cores)`
      : `busy guard: BUSY (others ${w.othersCores.toFixed(2)} cores: ${who}); going on because BENCH_ALLOW_BUSY=1, the report will say so`,
  );
  return start;
}

/** Before a load step: up to 60 s (quick: 5 s) for a quiet 2 s (quick: 1 s) window. */
export function quietBeforeStep(ownPids) {
  return untilQuiet({
    ownPids,
    windowMs: QUICK ? 1_000 : 2_000,
    maxWaitMs: QUICK ? 5_000 : 60_000,
    what: 'before a load step',
  });
}
