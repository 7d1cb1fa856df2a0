/**
 * The `noop` backend of `make bench-cluster`: the floor of any webhook. noop-webhook.mjs
 * on this machine, registered exactly as imagegate is (kube.mjs loopbackWebhooks: the same
 * validating and mutating configurations, rules, failure policy, timeout, a CA bundle and
 * TLS), answering every review "allowed" without a patch. What it adds over `none` is
 * what any webhook costs: the API server's two HTTPS calls, TLS, and a JSON review each
 * way. Since it judges nothing it is checked for that instead: every pod admitted as
 * written, and its request counts show that the API server called it.
 */
import { join } from 'node:path';
import { freePort, httpsJson, ROOT, sleep, startProcess, waitFor } from '../lib.mjs';
import { podOf } from './cases.mjs';
import { apply, kubectl, loopbackWebhooks, servingCertificate } from './kube.mjs';

export const name = 'noop';
/** The report does not hold it to the policy: it must admit every pod unchanged. */
export const judges = false;

export async function start({ plane, work }) {
  const certs = await servingCertificate(join(work, 'noop-certs'), 'noop');
  const port = await freePort();
  const proc = startProcess(
    'noop',
    process.execPath,
    [
      join(ROOT, 'test', 'bench', 'cluster', 'noop-webhook.mjs'),
      '--port',
      String(port),
      '--cert',
      join(certs.dir, 'tls.crt'),
      '--key',
      join(certs.dir, 'tls.key'),
    ],
    { logDir: work },
  );
  const base = `https://127.0.0.1:${port}`;
  const requests = async () => (await httpsJson(`${base}/requests`, { ca: certs.caPem })).json;
  try {
    await waitFor('noop webhook', async () => (await requests()) !== undefined, { proc });
    await apply(
      plane,
      loopbackWebhooks('noop', {
        port,
        caPem: certs.caPem,
        validatePath: '/v1/validate',
        mutatePath: '/v1/mutate',
      }),
    );
    await untilCalled(plane, requests, proc);
  } catch (error) {
    await proc.kill();
    throw error;
  }
  return {
    pids: () => (proc.exited ? [] : [proc.pid]),
    stop: () => proc.kill(),
    requests,
    notes: [
      `test/bench/cluster/noop-webhook.mjs (node:https + Koa, ${process.version}): parses each review and answers allowed, no patch; registered as imagegate is (kube.mjs loopbackWebhooks)`,
    ],
  };
}

/**
 * Webhook configurations take effect a moment after they are created: waits until a
 * server-side dry run reaches both of noop's endpoints (nothing is stored).
 */
async function untilCalled(plane, requests, proc, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  const before = await requests();
  let last = '';
  while (Date.now() < deadline) {
    if (proc.exited) throw new Error(`noop exited while starting (see ${proc.logs.err})`);
    const r = await kubectl(
      plane,
      ['create', '--dry-run=server', '-o', 'name', '-f', '-'],
      JSON.stringify(podOf('probe-noop', { app: 'quay.io/evil/miner:1.0' })),
    );
    const now = await requests();
    if (r.code === 0 && Object.keys(before).every((path) => (now?.[path] ?? 0) > before[path])) {
      return;
    }
    last = r.code === 0 ? `answered: ${JSON.stringify(now)}` : r.stderr.trim();
    await sleep(250);
  }
  throw new Error(
    `noop: the API server did not call both webhooks within ${timeoutMs / 1000} s: ${last}`,
  );
}
