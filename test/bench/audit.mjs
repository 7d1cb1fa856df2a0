/**
 * `imagegate audit` at scale against the real API server (the e2e control plane, no
 * kubelet): pods created through the API server in two steps (1,000, then up to 10,000),
 * each step audited by `imagegate audit --once` from dist/, timing the run and sampling
 * its peak RSS (VmHWM). The audit keeps results, not objects, and reads 500 objects per
 * page, so memory should grow with the results only.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { CLI, log, ROOT, statusBytes } from './lib.mjs';

const dist = (path) => import(join(ROOT, 'dist', path));

const vmHwm = (pid) => statusBytes(pid, 'VmHWM') || 0;

/** POSTs pods with the admin client certificate, `concurrency` at a time. */
async function createPods(kubeconfigFile, namespace, from, to, concurrency = 16) {
  const { parse } = await import('yaml');
  const kc = parse(readFileSync(kubeconfigFile, 'utf8'));
  const cluster = kc.clusters[0].cluster;
  const user = kc.users[0].user;
  const decode = (b64) => Buffer.from(b64, 'base64');
  const server = new URL(cluster.server);
  const options = {
    host: server.hostname,
    port: server.port,
    ca: cluster['certificate-authority-data']
      ? decode(cluster['certificate-authority-data'])
      : readFileSync(cluster['certificate-authority']),
    cert: user['client-certificate-data']
      ? decode(user['client-certificate-data'])
      : readFileSync(user['client-certificate']),
    key: user['client-key-data']
      ? decode(user['client-key-data'])
      : readFileSync(user['client-key']),
  };
  const post = (path, body) =>
    new Promise((resolve, reject) => {
      const req = request(
        { ...options, method: 'POST', path, headers: { 'content-type': 'application/json' } },
        (res) => {
          res.resume();
          res.on('end', () =>
            res.statusCode < 300 || res.statusCode === 409
              ? resolve()
              : reject(new Error(`POST ${path}: ${res.statusCode}`)),
          );
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
  await post('/api/v1/namespaces', {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: namespace },
  });
  let next = from;
  const worker = async () => {
    while (next < to) {
      const i = next++;
      // A realistic pod: two containers, one from an untrusted registry (a failing result).
      await post(`/api/v1/namespaces/${namespace}/pods`, {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: `pod-${i}`, labels: { app: `app-${i % 50}` } },
        spec: {
          containers: [
            {
              name: 'app',
              image: `registry.example.com/team/app-${i % 50}:1.${i % 7}`,
              imagePullPolicy: 'Always',
            },
            {
              name: 'proxy',
              image: 'docker.io/library/nginx:1.27',
              imagePullPolicy: 'IfNotPresent',
            },
          ],
        },
      });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

function auditOnce(kubeconfig) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(
      process.execPath,
      [
        '--max-old-space-size=256',
        CLI,
        'audit',
        '--once',
        '--output',
        'json',
        `--kubeconfig=${kubeconfig}`,
      ],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let peak = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, vmHwm(child.pid));
    }, 20);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(sampler);
      const seconds = (performance.now() - started) / 1000;
      let summary;
      try {
        summary = JSON.parse(stdout).summary;
      } catch {
        return reject(
          new Error(`audit --once printed no JSON (exit ${code}): ${stderr.slice(0, 2000)}`),
        );
      }
      resolve({
        seconds,
        peakRssBytes: peak,
        code,
        summary,
        objects: JSON.parse(stdout).objects.length,
      });
    });
  });
}

export async function runAudit({ tmp, quick }) {
  const { startControlPlane } = await dist('test/e2e/helpers/control-plane.js');
  const plane = await startControlPlane({ dir: join(tmp, 'audit-control-plane') });
  try {
    const steps = quick ? [0, 200, 1000] : [0, 1000, 10000];
    const rows = [];
    let created = 0;
    for (const pods of steps) {
      if (pods > created) {
        log(`audit: creating pods ${created}..${pods} through the API server`);
        const started = performance.now();
        await createPods(plane.kubeconfig, 'bench', created, pods);
        log(
          `audit: ${pods - created} pods in ${((performance.now() - started) / 1000).toFixed(1)} s`,
        );
        created = pods;
      }
      log(`audit: imagegate audit --once over ${pods} pods`);
      rows.push({ pods, ...(await auditOnce(plane.kubeconfig)) });
    }
    return { version: plane.version, rows };
  } finally {
    await plane.stop();
  }
}
