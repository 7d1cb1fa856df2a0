/**
 * The load client for `make bench-cluster`, in its own process: creates pods through the
 * API server (what every pod creation in a cluster costs), `--concurrency` requests in
 * flight over kept-alive connections, for `--duration` seconds after `--warmup`, and
 * prints one JSON line: creations per second, latency percentiles (µs), status counts.
 *
 *   node test/bench/cluster/load.mjs --kubeconfig FILE --namespace NS --concurrency 8 \
 *     [--duration 10] [--warmup 2] [--prefix p] [--image registry.example.com/app:1.0]
 *
 * Authenticates with the kubeconfig's client certificate (client.mjs).
 */
import { parseArgs } from 'node:util';
import { percentile } from '../lib.mjs';
import { podOf } from './cases.mjs';
import { kubeClient } from './client.mjs';

const { values } = parseArgs({
  options: {
    kubeconfig: { type: 'string' },
    namespace: { type: 'string', default: 'bench' },
    concurrency: { type: 'string', default: '8' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    prefix: { type: 'string', default: 'p' },
    image: { type: 'string', default: 'registry.example.com/app:1.0' },
  },
});

const concurrency = Number(values.concurrency);
const client = kubeClient(values.kubeconfig ?? '', { maxSockets: concurrency });

/** Two containers of the same image, pull policy IfNotPresent (so mutation has work). */
function create(name) {
  const pod = podOf(name, { app: values.image, sidecar: values.image });
  pod.metadata.namespace = values.namespace;
  return client.createPod(pod);
}

const warmupMs = Number(values.warmup) * 1000;
const durationMs = Number(values.duration) * 1000;
const start = performance.now();
const measureFrom = start + warmupMs;
const end = measureFrom + durationMs;
const latencies = [];
const status = {};
let n = 0;
let firstError;
async function worker() {
  while (performance.now() < end) {
    const began = performance.now();
    const result = await create(`${values.prefix}-${n++}`);
    if (began >= measureFrom) {
      latencies.push(result.us);
      status[result.status] = (status[result.status] ?? 0) + 1;
      if (result.status !== 201) firstError ??= result.body.slice(0, 500);
    }
  }
}
await Promise.all(Array.from({ length: concurrency }, worker));
latencies.sort((a, b) => a - b);
const pct = (p) => percentile(latencies, p);
process.stdout.write(
  `${JSON.stringify({
    concurrency,
    requests: latencies.length,
    // Pods created (201) per second of the measured window.
    rps: (status[201] ?? 0) / (durationMs / 1000),
    status,
    firstError,
    latencyUs: { p50: pct(50), p90: pct(90), p99: pct(99), max: latencies.at(-1) ?? Number.NaN },
  })}\n`,
);
client.close();
