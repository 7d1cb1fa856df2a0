/**
 * `serve --workers 2` through the real CLI: one port shared by two gateways, health and
 * metrics for all of them on the primary, a bundle swap reaching every worker, and a
 * SIGTERM that drains them and exits 0 with no process left behind.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { defaultBundlePath } from '../../src/shared/paths.ts';
import { buildBundle } from '../helpers/bundles.ts';
import { ROOT } from '../helpers/cli.ts';
import { kubeletSwap, mountConfigMap, until } from '../helpers/configmap.ts';
import { freePort, httpGet, postJson } from '../helpers/gateway.ts';
import { nginxPodReview } from '../helpers/reload-traffic.ts';

interface Readiness {
  ready: boolean;
  workers: number;
  statuses: { bundleDigest: string }[];
}

test('two workers share the port; health, metrics and reloads cover both; SIGTERM exits 0', async (t) => {
  const [port, healthPort] = [await freePort(), await freePort()];
  const state = await mkdtemp(join(tmpdir(), 'imagegate-cluster-'));
  const mount = await mountConfigMap(await readFile(defaultBundlePath()));
  t.teardown(() => rm(mount, { recursive: true, force: true }));
  const child = spawn(
    process.execPath,
    [
      '--import=tsx/esm',
      join(ROOT, 'src', 'cli.ts'),
      'serve',
      '--workers',
      '2',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--health-port',
      String(healthPort),
      '--state-dir',
      state,
      '--bundle',
      mount,
      '--log-level',
      'warn',
    ],
    { cwd: ROOT, env: { ...process.env, IMAGEGATE_WATCH_INTERVAL_MS: '100' }, stdio: 'ignore' },
  );
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const readiness = async () => {
    const result = await httpGet(healthPort, '/readyz').catch(() => undefined);
    return result?.status === 200 ? (result.body as Readiness) : undefined;
  };
  await until(async () => (await readiness())?.ready === true, 'both workers to be ready');
  t.is((await readiness())?.workers, 2);

  const ca = await readFile(join(state, 'ca.crt'), 'utf8');
  for (let i = 0; i < 20; i++) {
    const result = await postJson({ port, ca, path: '/v1/validate' }, nginxPodReview(`r${i}`));
    t.is(result.status, 200);
  }
  const metrics = await httpGet(healthPort, '/metrics');
  t.regex(metrics.text, /imagegate_requests_total\{endpoint="validate",outcome="denied"\} 20/);

  const permissive = await buildBundle(
    {
      'p.rego': `package imagegate.validate

decision := {"allowed": true, "enforcement": "deny", "exempt": false, "breakGlass": false,
  "violations": [], "reasons": [], "warnings": [], "auditAnnotations": {}}
`,
      'm.rego': 'package imagegate.mutate\n\ndecision := {"patch": [], "messages": []}\n',
    },
    ['imagegate/validate/decision', 'imagegate/mutate/decision'],
  );
  const before = (await readiness())?.statuses.map((s) => s.bundleDigest);
  await kubeletSwap(mount, permissive);
  await until(async () => {
    const now = (await readiness())?.statuses.map((s) => s.bundleDigest) ?? [];
    return now.length === 2 && now.every((d) => d !== before?.[0]);
  }, 'both workers to load the new bundle');

  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const [code] = await exited;
  t.is(code, 0);
  await t.throwsAsync(httpGet(healthPort, '/healthz'));
});
