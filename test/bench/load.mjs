/**
 * The load generator, always in its own process. Prints one JSON line.
 *
 *   node test/bench/load.mjs --url URL --body FILE [--connections 64] [--warmup 2]
 *     [--duration 10] [--rate REQ_PER_S --ca FILE] [--pid PID]...
 *
 * Closed loop (default): autocannon, each of the connections sends its next request when
 * the previous answer arrives, warm-up and measured seconds over the same kept-alive
 * connections. Open loop (--rate): requests start on a uniform schedule over at most
 * `connections` kept-alive node:https sockets (verifying --ca), and latency runs from the
 * scheduled start, so a stalled server cannot hide its queue (coordinated omission).
 * autocannon's own rate limit is not used: it releases each second's quota in a burst.
 *
 * Either way every response's latency is kept at µs resolution (autocannon's histogram has
 * 1 ms buckets), only requests started inside the measured window count, and CPU of the
 * servers under test (--pid), of this process and of the machine is sampled over that
 * window. Bounded: the run stops after warm-up + duration; only loopback targets.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { machineCpu, percentile, processCpu, threadCpu } from './lib.mjs';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    body: { type: 'string' },
    connections: { type: 'string', default: '64' },
    warmup: { type: 'string', default: '2' },
    duration: { type: 'string', default: '10' },
    rate: { type: 'string' },
    ca: { type: 'string' },
    pid: { type: 'string', multiple: true, default: [] },
  },
});
const url = new URL(values.url ?? '');
if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
  throw new Error(`refusing to load ${url.hostname}: only loopback targets are allowed`);
}
const connections = Number(values.connections);
const warmupS = Number(values.warmup);
const durationS = Number(values.duration);
const rate = values.rate === undefined ? undefined : Number(values.rate);
if (!(durationS > 0 && durationS <= 120 && warmupS >= 0 && warmupS <= 30)) {
  throw new Error('duration must be in (0, 120] s and warm-up in [0, 30] s');
}
if (rate !== undefined && !(rate > 0 && rate <= 50_000)) throw new Error('rate out of range');
const body = readFileSync(values.body ?? '');
const pids = values.pid.map(Number);
const TIMEOUT_MS = 10_000;

const latenciesUs = [];
const status = { '2xx': 0, other: 0 };
let windowStart = Number.POSITIVE_INFINITY;
let before;
/** CLOCK_MONOTONIC µs: the clock of V8's .cpuprofile, so a profile can be cut to the window. */
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);
let monotonicStart;

function snapshot() {
  return {
    at: performance.now(),
    servers: pids.map(processCpu),
    mainThreads: pids.map((pid) => threadCpu(pid, pid)),
    self: process.cpuUsage(),
    machine: machineCpu(),
  };
}

/** One answered request; `startedAt` is when it was sent (closed) or scheduled (open). */
function record(startedAt, statusCode, latencyMs) {
  if (startedAt < windowStart) return;
  latenciesUs.push(latencyMs * 1000);
  if (statusCode >= 200 && statusCode < 300) status['2xx']++;
  else status.other++;
}

function finish(counts) {
  const after = snapshot();
  const seconds = (after.at - windowStart) / 1000;
  latenciesUs.sort((a, b) => a - b);
  const selfCpu =
    (after.self.user - before.self.user + after.self.system - before.self.system) / 1e6;
  const out = {
    url: url.href,
    mode: rate === undefined ? 'closed' : 'open',
    connections,
    rate: rate ?? null,
    warmupS,
    durationS: seconds,
    monotonicWindowUs: [monotonicStart, monotonicUs()],
    requests: latenciesUs.length,
    rps: latenciesUs.length / seconds,
    status,
    ...counts,
    latencyUs: {
      p50: percentile(latenciesUs, 50),
      p90: percentile(latenciesUs, 90),
      p99: percentile(latenciesUs, 99),
      p999: percentile(latenciesUs, 99.9),
      max: latenciesUs.at(-1) ?? Number.NaN,
      mean: latenciesUs.reduce((a, b) => a + b, 0) / Math.max(1, latenciesUs.length),
    },
    cpuCores: {
      servers: after.servers.map((s, i) => (s - before.servers[i]) / seconds),
      // The event loop's own thread; the rest of a server's CPU is GC helpers and libuv.
      serverMainThreads: after.mainThreads.map((s, i) => (s - before.mainThreads[i]) / seconds),
      loadgen: selfCpu / seconds,
      machineBusy: (after.machine.busy - before.machine.busy) / seconds,
      machineSoftirq: (after.machine.softirq - before.machine.softirq) / seconds,
    },
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

function closedLoop() {
  const instance = autocannon(
    {
      url: url.href,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      connections,
      pipelining: 1,
      duration: warmupS + durationS,
      timeout: TIMEOUT_MS / 1000,
    },
    (error, result) => {
      if (error) throw error;
      finish({
        errors: result.errors,
        timeouts: result.timeouts,
        non2xx: result.non2xx,
        resets: result.resets ?? 0,
        totalRequests: result.requests.total,
      });
    },
  );
  instance.on('response', (_client, statusCode, _bytes, latencyMs) => {
    record(performance.now() - latencyMs, statusCode, latencyMs);
  });
}

function openLoop() {
  const agent = new Agent({
    keepAlive: true,
    maxSockets: connections,
    ca: values.ca === undefined ? undefined : readFileSync(values.ca),
  });
  const counts = { errors: 0, timeouts: 0, non2xx: 0, resets: 0, totalRequests: 0 };
  const total = Math.round(rate * (warmupS + durationS));
  const start = performance.now();
  let sent = 0;
  let done = 0;
  const complete = () => {
    done++;
    if (done === total) {
      agent.destroy();
      finish(counts);
    }
  };
  const fire = (scheduledAt) => {
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      complete();
    };
    const req = request(url, {
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/json', 'content-length': body.length },
      timeout: TIMEOUT_MS,
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => {
        counts.totalRequests++;
        if (res.statusCode < 200 || res.statusCode >= 300) counts.non2xx++;
        record(scheduledAt, res.statusCode, performance.now() - scheduledAt);
        settle();
      });
    });
    req.on('timeout', () => {
      counts.timeouts++;
      req.destroy(new Error('timeout'));
    });
    req.on('error', (error) => {
      if (error.message !== 'timeout') {
        if (error.code === 'ECONNRESET') counts.resets++;
        else counts.errors++;
      }
      settle();
    });
    req.end(body);
  };
  const tick = () => {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate));
    while (sent < due) fire(start + (sent++ * 1000) / rate);
    if (sent < total) setTimeout(tick, 1);
  };
  tick();
}

setTimeout(() => {
  before = snapshot();
  windowStart = before.at;
  monotonicStart = monotonicUs();
}, warmupS * 1000);
if (rate === undefined) closedLoop();
else openLoop();
