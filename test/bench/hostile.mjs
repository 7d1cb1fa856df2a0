/**
 * One hostile-but-accepted review beside benign ones (issue: bounded work). The gateway is
 * served from dist/ as in production (one process with its evaluation threads pinned to one
 * CPU as the Deployment limits it, the same unpinned, then --workers 2); a benign review
 * is sent back to back on its own kept-alive connection, once idle and once while another
 * connection sends hostile reviews back to back. The ratio of the benign latencies is the
 * delay one hostile review costs everyone else; the server's VmHWM (peak RSS) is what the
 * Deployment's memory limit must hold (docs/sizing.md).
 *
 * Hostile reviews, both accepted (within the 4 MiB body and maxImages):
 *   empty  32,768 empty containers, the most maxImages lets through (~100 KB)
 *   long   25,000 untrusted 100-character images pulled IfNotPresent (~3.9 MiB, three
 *          violations each): the costliest shape that fits the body limit
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { promisify } from 'node:util';
import { startImagegate } from './http.mjs';
import { FIXTURE, log, percentile, podCreateReview, settle, sleep, statusBytes } from './lib.mjs';

const run = promisify(execFile);

const MAX_IMAGES = 32_768;

function hostileBody(shape) {
  const containers =
    shape === 'empty'
      ? Array.from({ length: MAX_IMAGES }, () => ({}))
      : Array.from({ length: 25_000 }, (_, i) => ({
          name: `c${i}`,
          image: `evil.example/${'x'.repeat(88)}${i}`,
          imagePullPolicy: 'IfNotPresent',
        }));
  return JSON.stringify(
    podCreateReview(containers, { uid: '00000000-0000-4000-8000-0000000000ff', name: 'hostile' }),
  );
}

/** One POST on `agent`; resolves with the time it took and the code inside the review. */
function post(url, body, { ca, agent }) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request(
      url,
      { method: 'POST', ca, agent, headers: { 'content-type': 'application/json' } },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const ms = performance.now() - started;
          let code = res.statusCode;
          try {
            const answer = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            code = answer.response?.status?.code ?? (answer.response?.allowed ? 200 : code);
          } catch {}
          resolve({ ms, status: res.statusCode, code });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const peakRss = (pid) => ({ rss: statusBytes(pid, 'VmRSS'), hwm: statusBytes(pid, 'VmHWM') });

const summary = (samples) => {
  const sorted = samples.map((s) => s.ms).sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.at(-1),
  };
};

async function benign(url, body, ca, count) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < 20; i++) await post(url, body, { ca, agent });
    const samples = [];
    for (let i = 0; i < count; i++) samples.push(await post(url, body, { ca, agent }));
    return samples;
  } finally {
    agent.destroy();
  }
}

async function scenario({ tmp, tls, quick, workers, cpus, shape, nodeArgs = [] }) {
  const name = `imagegate-hostile-${shape}-w${workers}${cpus === undefined ? '' : `-cpu${cpus}`}`;
  const gateway = await startImagegate(name, {
    tmp,
    cert: tls.certFile,
    key: tls.keyFile,
    logLevel: 'warn',
    workers,
    nodeArgs,
  });
  try {
    // The Deployment's CPU limit is 1: every thread of the gateway on one CPU (`-a`: the
    // evaluation threads and libuv's too; threads made later inherit it).
    if (cpus !== undefined) {
      for (const pid of gateway.pids) await run('taskset', ['-a', '-p', '-c', cpus, String(pid)]);
    }
    const url = gateway.url('validate');
    const benignBody = JSON.stringify(JSON.parse(readFileSync(FIXTURE, 'utf8')));
    const hostile = hostileBody(shape);
    const count = quick ? 100 : 400;
    await settle();
    const idle = await benign(url, benignBody, tls.ca, count);
    const idleRss = gateway.pids.map((pid) => peakRss(pid).rss);

    // Hostile reviews back to back on their own connection, until the benign run is done.
    const hostileAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    const hostileAnswers = [];
    let stop = false;
    const flood = (async () => {
      while (!stop)
        hostileAnswers.push(await post(url, hostile, { ca: tls.ca, agent: hostileAgent }));
    })();
    await sleep(50);
    const during = await benign(url, benignBody, tls.ca, count);
    stop = true;
    await flood;
    hostileAgent.destroy();
    const peaks = gateway.pids.map((pid) => peakRss(pid));
    const result = {
      shape,
      workers,
      cpus: cpus ?? 'any',
      hostileBytes: Buffer.byteLength(hostile),
      hostile: {
        ...summary(hostileAnswers),
        codes: [...new Set(hostileAnswers.map((a) => a.code))],
      },
      idle: summary(idle),
      during: summary(during),
      idleRssBytes: idleRss,
      peakRssBytes: peaks.map((p) => p.hwm),
    };
    log(
      `hostile ${shape}, --workers ${workers}, CPUs ${cpus ?? 'any'}: hostile answered ${result.hostile.codes.join('/')} in ` +
        `${result.hostile.p50.toFixed(0)} ms; benign p50 ${result.idle.p50.toFixed(2)} → ` +
        `${result.during.p50.toFixed(2)} ms, p99 ${result.idle.p99.toFixed(2)} → ` +
        `${result.during.p99.toFixed(2)} ms; peak RSS ${peaks.map((p) => (p.hwm / 2 ** 20).toFixed(0)).join('+')} MiB`,
    );
    return result;
  } finally {
    await gateway.kill();
  }
}

export async function runHostile({ tmp, tls, quick, nodeArgs = [] }) {
  const results = [];
  // The default Deployment (one process, its two evaluation threads, one CPU), then the
  // same unpinned, then two processes.
  for (const { workers, cpus } of [{ workers: 1, cpus: '0' }, { workers: 1 }, { workers: 2 }]) {
    for (const shape of ['empty', 'long']) {
      results.push(await scenario({ tmp, tls, quick, workers, cpus, shape, nodeArgs }));
    }
  }
  return results;
}
