/**
 * What the benchmark scripts share: child processes that announce readiness, free ports,
 * CPU accounting from /proc, TLS clients that verify against the bench CA, the request
 * bodies, and small statistics and Markdown helpers. No measurement lives here.
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual, promisify } from 'node:util';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const OPA = join(ROOT, '.tools', 'bin', 'opa');
export const CLI = join(ROOT, 'dist', 'src', 'cli.js');
export const QUICK = process.env.BENCH_QUICK === '1';
/** Clock ticks per second for /proc/<pid>/stat (USER_HZ; 100 on every Linux we run on). */
const HZ = 100;

/** Compiles `dir` (this checkout by default) into its dist/ with the project's tsc. */
export async function build(dir = ROOT) {
  log(`building ${dir === ROOT ? 'dist/' : `${dir}/dist/`} (tsc)`);
  try {
    await promisify(execFile)(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], {
      cwd: dir,
    });
  } catch (error) {
    // tsc emits even with type errors; the bench needs the JavaScript, not a clean check.
    log(`tsc reported errors (continuing with what it emitted):\n${error.stdout ?? error}`);
  }
}

/**
 * A benchmark's whole run: builds dist/, gives `measure(tmp, startedAt)` a temp dir for
 * logs (ending the children it started on an interrupt), then writes docs/REPORT.md from
 * what it returns with `render` — or $TMPDIR/imagegate-REPORT.quick.md for a quick run,
 * or BENCH_OUT. The temp dir goes unless the run failed, BENCH_KEEP=1, or the results ask
 * to keep it (`keepLogs`: a reason, e.g. a backend that could not run). A measurement that
 * refuses to run (an Error with `refused: true`, e.g. a busy machine) is no failure to
 * debug: its message, exit code 2, nothing kept.
 */
export async function benchMain(report, render, measure) {
  const startedAt = Date.now();
  const tmp = mkdtempSync(join(tmpdir(), `imagegate-${report.toLowerCase()}-`));
  // An interrupted run ends the servers it started (load processes end with their own timers).
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      killRunning();
      log(`interrupted; logs kept in ${tmp}`);
      process.exit(130);
    });
  }
  let failed = false;
  let refused = false;
  let keepFor;
  try {
    await build();
    const results = await measure(tmp, startedAt);
    keepFor = results.keepLogs;
    results.machine.loadAverageAtEnd = loadavg();
    results.totalS = (Date.now() - startedAt) / 1000;
    writeFileSync(join(tmp, 'results.json'), JSON.stringify(results, null, 2));
    // A smoke run never overwrites the full run's numbers unless asked to.
    const out =
      process.env.BENCH_OUT ??
      (QUICK ? join(tmpdir(), `imagegate-${report}.quick.md`) : join(ROOT, 'docs', `${report}.md`));
    mkdirSync(join(out, '..'), { recursive: true });
    writeFileSync(out, render(results));
    log(`wrote ${out} after ${results.totalS.toFixed(0)} s`);
  } catch (error) {
    if (error?.refused === true) {
      refused = true;
      log(`benchmark not run: ${error.message}`);
      process.exitCode = 2;
    } else {
      failed = true;
      log(`benchmark failed: ${error.stack ?? error}`);
      log(`logs kept in ${tmp}`);
      process.exitCode = 1;
    }
  } finally {
    if (refused || (!failed && !keepFor && process.env.BENCH_KEEP !== '1')) {
      rmSync(tmp, { recursive: true, force: true });
    } else if (!failed) log(`kept ${tmp} (results.json, logs)${keepFor ? `: ${keepFor}` : ''}`);
  }
}

/** A command's output in the checkout, trimmed; 'unknown' when it fails. */
export async function commandText(command, args) {
  try {
    return (await promisify(execFile)(command, args, { cwd: ROOT })).stdout.trim();
  } catch {
    return 'unknown';
  }
}

/** What every benchmark report says about the machine and the checkout it measured. */
export async function machineFacts() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const dirty = await commandText('git', ['status', '--porcelain', '--untracked-files=no']);
  return {
    nproc: Number(await commandText('nproc', [])),
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? 'unknown',
    memoryBytes: totalmem(),
    kernel: release(),
    node: process.version,
    commit: await commandText('git', ['rev-parse', '--short', 'HEAD']),
    dirty: dirty !== '' && dirty !== 'unknown',
    loadAverageAtStart: loadavg(),
  };
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function freePort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Children still running, so an interrupted run can end exactly what it started. */
const running = new Set();

export function killRunning(signal = 'SIGTERM') {
  for (const child of running) child.kill(signal);
}

/**
 * Starts a child whose output goes to files (a server's logs are part of its work, and a
 * pipe the parent drains would bill the parent). `kill()` ends exactly this child.
 */
export function startProcess(name, command, args, { logDir, env = {}, cwd = ROOT } = {}) {
  const out = openSync(join(logDir, `${name}.out.log`), 'w');
  const err = openSync(join(logDir, `${name}.err.log`), 'w');
  const child = spawn(command, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', out, err],
  });
  let exited = false;
  running.add(child);
  const exit = once(child, 'exit').then(([code, signal]) => {
    exited = true;
    running.delete(child);
    return { code, signal };
  });
  return {
    name,
    child,
    pid: child.pid,
    logs: { out: join(logDir, `${name}.out.log`), err: join(logDir, `${name}.err.log`) },
    get exited() {
      return exited;
    },
    exit,
    async kill(signal = 'SIGTERM', graceMs = 10_000) {
      if (exited) return exit;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const result = await exit;
      clearTimeout(timer);
      return result;
    },
  };
}

/** Polls until `probe` resolves truthy; fails with the child's stderr if it died. */
export async function waitFor(what, probe, { timeoutMs = 30_000, proc } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    if (proc?.exited) {
      throw new Error(`${what}: ${proc.name} exited: ${readFileSync(proc.logs.err, 'utf8')}`);
    }
    try {
      if (await probe()) return;
    } catch (error) {
      last = error;
    }
    await sleep(50);
  }
  throw new Error(`${what}: not ready after ${timeoutMs} ms (${last?.message ?? 'no answer'})`);
}

/** One HTTPS request that verifies the server against the bench CA. */
export function httpsJson(url, { ca, method = 'GET', body, timeoutMs = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        method,
        ca,
        agent: false,
        timeout: timeoutMs,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode, text, json });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${url}: timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

export function httpJson(url) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false, timeout: 5_000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode, json: JSON.parse(text), text });
        } catch {
          resolve({ status: res.statusCode, json: undefined, text });
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export const sameJson = (a, b) => isDeepStrictEqual(a, b);

// --- CPU accounting ---

/** utime + stime of a process and its reaped children, in seconds. */
export function processCpu(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the ")" of the command name: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / HZ;
  } catch {
    return Number.NaN;
  }
}

/** The pids of a process's children (a cluster primary's workers). */
export function childPids(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** utime + stime of one thread (the main thread's id is the process id), in seconds. */
export function threadCpu(pid, tid) {
  return processCpu(`${pid}/task/${tid}`);
}

/** Machine-wide busy and total CPU seconds (all cores) from /proc/stat. */
export function machineCpu() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const [, ...values] = line.trim().split(/\s+/);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = values.map(Number);
  const busy = user + nice + system + irq + softirq + steal;
  return { busy: busy / HZ, total: (busy + idle + iowait) / HZ, softirq: softirq / HZ };
}

/**
 * Waits (bounded) for the machine to be quiet before a measurement: other sessions share
 * this machine. Returns the cores busy in the last 500 ms window and how long it waited;
 * the report shows both, it does not hide a noisy run.
 */
export async function settle({ thresholdCores = 0.35, maxWaitMs = QUICK ? 0 : 3_000 } = {}) {
  const started = Date.now();
  const windowMs = maxWaitMs === 0 ? 200 : 500;
  let busyCores = Number.NaN;
  do {
    const before = machineCpu();
    await sleep(windowMs);
    const after = machineCpu();
    // total counts every core's ticks: divide by the cores to get wall-clock seconds.
    busyCores = (after.busy - before.busy) / ((after.total - before.total) / cores());
    if (busyCores < thresholdCores) break;
  } while (Date.now() - started < maxWaitMs);
  return { busyCores, waitedMs: Date.now() - started };
}

function cores() {
  return readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .filter((l) => /^cpu\d/.test(l)).length;
}

// --- request bodies ---

/** A Pod CREATE AdmissionReview in namespace shop, as the API server sends one, for these containers. */
export function podCreateReview(containers, { uid, name, namespace = 'shop' }) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      operation: 'CREATE',
      namespace,
      name,
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace },
        spec: { containers },
      },
    },
  };
}

export const FIXTURE = join(ROOT, 'test', 'fixtures', 'admission', 'pod-create-v1.json');

/** What the API server's ImagePolicyWebhook sends for the same pod: its images, flattened. */
export function imageReviewFor(admissionReview) {
  const spec = admissionReview.request.object.spec;
  const lists = ['containers', 'initContainers', 'ephemeralContainers'];
  return {
    apiVersion: 'imagepolicy.k8s.io/v1alpha1',
    kind: 'ImageReview',
    spec: {
      containers: lists.flatMap((list) => (spec[list] ?? []).map((c) => ({ image: c.image }))),
      annotations: {},
      namespace: admissionReview.request.namespace,
    },
  };
}

// --- statistics and formatting ---

/** Nearest-rank percentile of an ascending array. */
/** A byte count from /proc/<pid>/status (VmRSS, VmHWM, …); NaN when the process is gone. */
export function statusBytes(pid, field) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1]) * 1024;
  } catch {
    return Number.NaN;
  }
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export function fixed(value, digits = 1) {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

export function ms(us, digits = 2) {
  return Number.isFinite(us) ? (us / 1000).toFixed(digits) : 'n/a';
}

export function mib(bytes, digits = 1) {
  return Number.isFinite(bytes) ? (bytes / 1024 / 1024).toFixed(digits) : 'n/a';
}

export function table(header, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function log(message) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}
