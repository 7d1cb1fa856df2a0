/**
 * Hot reload as operators use it: a ConfigMap mounted as a directory, swapped by kubelet
 * through a `..data` symlink, while the gateway is under load. No request may fail, the
 * new policy must take effect without a restart, and a bad bundle must be refused while
 * the old policy keeps serving.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { Gateway } from '../../src/server/gateway.ts';
import { packageRoot } from '../../src/shared/paths.ts';
import { repoPolicyBundle } from '../helpers/bundles.ts';
import { kubeletSwap, mountConfigMap, startLocalGateway, until } from '../helpers/configmap.ts';
import { httpGet, record } from '../helpers/gateway.ts';
import { nginxPodReview } from '../helpers/reload-traffic.ts';

const REVIEW = (uid: string) => JSON.stringify(nginxPodReview(uid));

/** The repo's policies with other default data: Docker Hub's library trusted too. */
async function bundleTrustingDockerHub(): Promise<Buffer> {
  const data = JSON.parse(await readFile(join(packageRoot(), 'rego', 'data.json'), 'utf8')) as {
    imagegate: { config: { trustedRegistries: string[] } };
  };
  return repoPolicyBundle({
    trustedRegistries: [...data.imagegate.config.trustedRegistries, 'docker.io/library'],
  });
}

function post(
  gateway: Gateway,
  ca: Buffer,
  agent: Agent,
  body: string,
): Promise<{ status: number; allowed: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: gateway.port,
        path: '/v1/validate',
        method: 'POST',
        ca,
        agent,
        servername: 'localhost',
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => {
          text += d;
        });
        res.on('end', () => {
          try {
            const parsed = JSON.parse(text) as { response?: { allowed?: unknown } };
            resolve({ status: res.statusCode ?? 0, allowed: parsed.response?.allowed });
          } catch (error) {
            reject(error);
          }
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

test('bundles swapped in a mounted ConfigMap change decisions under load; zero failed requests; a bad one is refused', async (t) => {
  const original = await readFile(join(packageRoot(), 'bundles', 'imagegate.tar.gz'));
  const permissive = await bundleTrustingDockerHub();
  const mount = await mountConfigMap(original);
  t.teardown(() => rm(mount, { recursive: true, force: true }));
  const { gateway, ca } = await startLocalGateway(t, { bundle: mount });
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  t.teardown(() => agent.destroy());
  const firstRevision = gateway.policy.engine?.revision;

  // Load: 8 concurrent clients until told to stop (bounded by count as well as by signal).
  let stop = false;
  const failures: string[] = [];
  const answers = { allowed: 0, denied: 0 };
  const client = async (id: number) => {
    for (let i = 0; i < 20_000 && !stop; i++) {
      try {
        const { status, allowed } = await post(gateway, ca, agent, REVIEW(`c${id}-${i}`));
        if (status !== 200 || typeof allowed !== 'boolean')
          failures.push(`${status} ${String(allowed)}`);
        else answers[allowed ? 'allowed' : 'denied'] += 1;
      } catch (error) {
        failures.push(String(error));
      }
    }
  };
  const load = Promise.all(Array.from({ length: 8 }, (_, id) => client(id)));

  await until(async () => answers.denied > 50, 'load under the original policy');
  t.is(answers.allowed, 0, 'nginx is untrusted under the original bundle');

  await kubeletSwap(mount, permissive);
  await until(
    async () => (await post(gateway, ca, agent, REVIEW('probe'))).allowed === true,
    'the new bundle to take effect',
  );
  t.not(gateway.policy.engine?.revision, firstRevision);
  const swappedRevision = gateway.policy.engine?.revision;

  // A corrupt bundle is refused; the permissive one keeps serving.
  await kubeletSwap(mount, original.subarray(0, original.length / 2));
  await until(
    async () => gateway.policy.lastLoad?.ok === false,
    'the corrupt bundle to be refused',
  );
  t.is(gateway.policy.engine?.revision, swappedRevision);
  t.regex(gateway.policy.lastLoad?.error ?? '', /not a readable (gzip|tar) archive/);
  t.true((await post(gateway, ca, agent, REVIEW('after-refusal'))).allowed === true);
  const metrics = await gateway.metrics.registry.getSingleMetricAsString('imagegate_reloads_total');
  t.regex(metrics, /imagegate_reloads_total\{kind="policy",result="ok"\} 1/);
  t.regex(metrics, /imagegate_reloads_total\{kind="policy",result="refused"\} 1/);

  // And back to the original: decisions flip back.
  await kubeletSwap(mount, original);
  await until(
    async () => (await post(gateway, ca, agent, REVIEW('probe-2'))).allowed === false,
    'the original bundle again',
  );

  stop = true;
  await load;
  t.deepEqual(failures, []);
  t.true(answers.allowed > 0 && answers.denied > 50);
});

test('a configuration file edited in place is reloaded; an invalid one is refused and the last good stays', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imagegate-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const config = join(dir, 'config.yaml');
  await writeFile(config, 'enforcement: deny\n');
  const bundle = join(packageRoot(), 'bundles', 'imagegate.tar.gz');
  const { gateway, ca } = await startLocalGateway(t, { bundle, config, stateDir: dir });
  const agent = new Agent({ keepAlive: true });
  t.teardown(() => agent.destroy());
  t.false((await post(gateway, ca, agent, REVIEW('1'))).allowed);

  await writeFile(config, 'trustedRegistries: [docker.io/library]\n');
  await until(
    async () => (await post(gateway, ca, agent, REVIEW('2'))).allowed === true,
    'the new configuration',
  );

  await writeFile(config, 'trustedRegistries: docker.io\n');
  await until(
    async () => gateway.policy.lastLoad?.ok === false,
    'the invalid configuration to be refused',
  );
  t.regex(gateway.policy.lastLoad?.error ?? '', /trustedRegistries: must be a list/);
  t.true((await post(gateway, ca, agent, REVIEW('3'))).allowed === true);
});

// SECURITY.md 2.1: a valid but permissive configuration is the policy, so it cannot be
// refused; it must at least be visible where operators look, not only in a log line.
test('the configuration in force shows on /readyz and in imagegate_config_info, and follows reloads', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'imagegate-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const config = join(dir, 'config.yaml');
  await writeFile(config, 'enforcement: deny\n');
  const bundle = join(packageRoot(), 'bundles', 'imagegate.tar.gz');
  const { gateway } = await startLocalGateway(t, { bundle, config, stateDir: dir });
  const healthPort = gateway.healthPort ?? 0;
  const inForce = async () => {
    const ready = await httpGet(healthPort, '/readyz');
    const metrics = (await httpGet(healthPort, '/metrics')).text;
    return {
      config: record(record(ready.body, '/readyz').config, 'config'),
      series: metrics.split('\n').filter((line) => line.startsWith('imagegate_config_info{')),
    };
  };
  const first = await inForce();
  t.like(first.config, { enforcement: 'deny', breakGlass: false });
  t.regex(String(first.config.digest), /^[0-9a-f]{64}$/);
  t.deepEqual(first.series, [
    `imagegate_config_info{digest="${first.config.digest}",enforcement="deny",break_glass="false"} 1`,
  ]);

  // The same keys in another order and layout: the same configuration, the same digest.
  await writeFile(config, '{"breakGlass": true, "enforcement": "warn"}\n');
  await until(async () => (await inForce()).config.enforcement === 'warn', 'the reload');
  const second = await inForce();
  t.like(second.config, { enforcement: 'warn', breakGlass: true });
  t.not(second.config.digest, first.config.digest);
  t.deepEqual(second.series, [
    `imagegate_config_info{digest="${second.config.digest}",enforcement="warn",break_glass="true"} 1`,
  ]);
  const loadedAt = gateway.policy.lastLoad?.at;
  await writeFile(config, 'enforcement: warn\nbreakGlass: true\n');
  await until(async () => gateway.policy.lastLoad?.at !== loadedAt, 'the reload of the same keys');
  t.true(gateway.policy.lastLoad?.ok);
  const third = await inForce();
  t.is(third.config.digest, second.config.digest);
});
