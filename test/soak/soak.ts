/**
 * `make soak`: the gateway as a subprocess (`imagegate serve`, as deployed: a bundle in a
 * mounted-ConfigMap directory, a mounted configuration file), mixed traffic on every
 * endpoint for SOAK_SECONDS (default 600) while the bundle and the configuration are
 * swapped every few seconds — two real bundles in turn, now and then a corrupt bundle or
 * an invalid configuration that must be refused — and its RSS sampled from /proc.
 *
 * Passes when no request failed (a deliberate bad request answered 4xx is not a failure),
 * the canaries never flipped, reloads happened and took effect, the RSS slope over the
 * second half stays under SOAK_MAX_SLOPE MiB/min (default 1: a leak that size would take
 * a 512 MiB replica from its ~140 MiB plateau to its limit in about six hours, while the
 * V8 heap's own saw-tooth averages out over five minutes), and SIGTERM exits 0. The
 * numbers are appended to docs/SOAK.md (SOAK_REPORT); the exit code is 1 otherwise. RSS
 * plateaus after about 30 s, so runs shorter than two minutes cannot judge its slope.
 *
 *   SOAK_SECONDS=120 node --import=tsx/esm test/soak/soak.ts
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import {
  appendFile,
  cp,
  mkdir,
  mkdtemp,
  readFile,
  rename,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isRecord } from '../../src/shared/json.ts';
import { packageRoot } from '../../src/shared/paths.ts';
import { createCa, issueCertificate } from '../../src/tls/certs.ts';
import { kubeletSwap } from '../helpers/configmap.ts';
import { markdown, rssFromStatus, type Sample, summarizeRss } from './stats.ts';
import { startGateway } from './subprocess.ts';
import { metricsText, probes, type Result, type Target } from './traffic.ts';

const run = promisify(execFile);

function setting(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
}

const SECONDS = setting('SOAK_SECONDS', 600);
const CONCURRENCY = setting('SOAK_CONCURRENCY', 8);
const SWAP_SECONDS = setting('SOAK_SWAP_SECONDS', 4);
const SAMPLE_SECONDS = setting('SOAK_SAMPLE_SECONDS', 2);
const MAX_SLOPE = setting('SOAK_MAX_SLOPE', 1);
const ROOT = packageRoot();
const REPORT = process.env.SOAK_REPORT ?? join(ROOT, 'docs', 'SOAK.md');
const OPA = join(ROOT, '.tools', 'bin', 'opa');
const ENTRYPOINTS = [
  'imagegate/validate/decision',
  'imagegate/mutate/decision',
  'imagegate/facts/needed',
  'imagegate/facts/decided',
];

const CONFIGS = {
  deny: 'enforcement: deny\n',
  secret: 'enforcement: deny\nimagePullSecret: regcred\nimagePullSecretMode: append\n',
  invalid: 'enforcement: audit\n',
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The repo's Rego built by the real OPA CLI with Docker Hub's library trusted too. */
async function secondBundle(dir: string): Promise<Buffer> {
  if (!existsSync(OPA)) throw new Error(`${OPA} is missing: run \`make tools\``);
  const rego = join(dir, 'rego-b');
  await cp(join(ROOT, 'rego'), rego, { recursive: true });
  const data: unknown = JSON.parse(await readFile(join(rego, 'data.json'), 'utf8'));
  const config = isRecord(data) && isRecord(data.imagegate) ? data.imagegate.config : undefined;
  if (!isRecord(config) || !Array.isArray(config.trustedRegistries)) {
    throw new Error('rego/data.json has no imagegate.config.trustedRegistries');
  }
  config.trustedRegistries = [...config.trustedRegistries, 'docker.io/library'];
  await writeFile(join(rego, 'data.json'), JSON.stringify(data));
  const out = join(dir, 'b.tar.gz');
  const entrypoints = ENTRYPOINTS.flatMap((e) => ['-e', e]);
  await run(OPA, [
    'build',
    '-t',
    'wasm',
    '-b',
    rego,
    ...entrypoints,
    '--ignore',
    '*_test.rego',
    '--revision',
    'soak-b',
    '-o',
    out,
  ]);
  return readFile(out);
}

/** A ConfigMap mount holding config.yaml, swapped as kubelet does. */
async function swapConfig(mount: string, text: string, generation: number): Promise<void> {
  const dir = `..config_${generation}`;
  await mkdir(join(mount, dir));
  await writeFile(join(mount, dir, 'config.yaml'), text);
  await symlink(dir, join(mount, '..data_tmp'));
  await rename(join(mount, '..data_tmp'), join(mount, '..data'));
  await rm(join(mount, `..config_${generation - 2}`), { recursive: true, force: true });
}

async function main(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'imagegate-soak-'));
  try {
    return await soak(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function soak(dir: string): Promise<number> {
  const date = new Date().toISOString();
  const cpu = `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'CPU'}`;
  const load = loadavg()[0]?.toFixed(2) ?? '?';
  const machine = `${cpu}, Node ${process.version}, load average ${load} at start`;
  const bundleA = await readFile(join(ROOT, 'bundles', 'imagegate.tar.gz'));
  const bundleB = await secondBundle(dir);
  const corrupt = bundleA.subarray(0, Math.floor(bundleA.length / 2));
  // Laid out as mountConfigMap does, but inside `dir`, so it goes with it.
  const bundleMount = join(dir, 'bundle');
  await mkdir(bundleMount);
  await kubeletSwap(bundleMount, bundleA);
  await symlink('..data/imagegate.tar.gz', join(bundleMount, 'imagegate.tar.gz'));
  const configMount = join(dir, 'config');
  await mkdir(configMount);
  let configGeneration = 1;
  await swapConfig(configMount, CONFIGS.deny, configGeneration);
  await symlink('..data/config.yaml', join(configMount, 'config.yaml'));
  const ca = createCa('imagegate soak CA');
  const serving = issueCertificate(ca, {
    commonName: 'localhost',
    usage: 'server',
    altNames: ['localhost', '127.0.0.1'],
  });
  await writeFile(join(dir, 'tls.crt'), serving.cert);
  await writeFile(join(dir, 'tls.key'), serving.key);

  const gateway = await startGateway(ROOT, [
    '--port',
    '0',
    '--health-port',
    '0',
    '--host',
    '127.0.0.1',
    '--bundle',
    bundleMount,
    '--config',
    join(configMount, 'config.yaml'),
    '--tls-cert',
    join(dir, 'tls.crt'),
    '--tls-key',
    join(dir, 'tls.key'),
    '--state-dir',
    join(dir, 'state'),
    '--log-level',
    'info',
  ]);
  let gatewayExit: string | undefined;
  let stoppedEarly: string | undefined;
  let stopping = false;
  let started = Date.now();
  void gateway.exited.then((how) => {
    gatewayExit = how;
    // Before the soak's own SIGTERM: killed from outside, or crashed.
    if (!stopping) stoppedEarly = `${how} after ${((Date.now() - started) / 1000).toFixed(1)} s`;
  });
  const target: Target = {
    port: gateway.port,
    healthPort: gateway.healthPort,
    ca: ca.cert,
    agent: new HttpsAgent({ keepAlive: true, maxSockets: CONCURRENCY }),
    healthAgent: new HttpAgent({ keepAlive: true, maxSockets: 2 }),
  };
  process.stdout.write(
    `soak: gateway pid ${gateway.pid} on ${gateway.port}/${gateway.healthPort}; ` +
      `${SECONDS} s, ${CONCURRENCY} clients\n`,
  );

  started = Date.now();
  const end = started + SECONDS * 1000;
  const mix = probes(join(ROOT, 'test', 'fixtures'));
  const counts = new Map<string, number>();
  const latencies = new Map<string, number[]>();
  const failures: string[] = [];
  let failed = 0;
  let issued = 0;
  const seconds = () => ((Date.now() - started) / 1000).toFixed(1);
  const record = (result: Result) => {
    const key = `${result.endpoint}|${result.outcome}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    const ms = latencies.get(key) ?? [];
    if (ms.length < 2_000_000) ms.push(result.ms);
    latencies.set(key, ms);
    if (result.outcome === 'failed') {
      failed += 1;
      if (failures.length < 100) {
        failures.push(`${seconds()} s ${result.endpoint}: ${result.detail ?? ''}`);
      }
    }
  };
  const worker = async () => {
    for (let i = 0; i < 50_000_000 && Date.now() < end && gatewayExit === undefined; i++) {
      const n = issued++;
      const probe = mix[n % mix.length];
      if (probe === undefined) continue;
      try {
        record(await probe.run(target, n));
      } catch (error) {
        record({ endpoint: probe.endpoint, outcome: 'failed', ms: 0, detail: String(error) });
      }
    }
  };

  const swaps = { 'bundle good': 0, 'bundle corrupt': 0, 'config good': 0, 'config invalid': 0 };
  const swapper = async () => {
    for (let i = 1; i < 1_000_000 && Date.now() < end - SWAP_SECONDS * 1000; i++) {
      await sleep(SWAP_SECONDS * 1000);
      const round = Math.ceil(i / 2);
      if (i % 2 === 1) {
        const bad = round % 5 === 0;
        await kubeletSwap(bundleMount, bad ? corrupt : round % 2 === 1 ? bundleB : bundleA);
        swaps[bad ? 'bundle corrupt' : 'bundle good'] += 1;
      } else {
        const bad = round % 4 === 0;
        configGeneration += 1;
        const text = bad ? CONFIGS.invalid : round % 2 === 1 ? CONFIGS.secret : CONFIGS.deny;
        await swapConfig(configMount, text, configGeneration);
        swaps[bad ? 'config invalid' : 'config good'] += 1;
      }
    }
  };

  const samples: Sample[] = [];
  const revisions = new Set<string>();
  const sampler = async () => {
    for (let i = 0; i < 1_000_000 && Date.now() < end && gatewayExit === undefined; i++) {
      const rss = rssFromStatus(
        await readFile(`/proc/${gateway.pid}/status`, 'utf8').catch(() => ''),
      );
      if (rss !== undefined) samples.push({ t: (Date.now() - started) / 1000, rssMiB: rss });
      const ready = await fetch(`http://127.0.0.1:${gateway.healthPort}/readyz`)
        .then((r) => r.json() as Promise<unknown>)
        .catch(() => undefined);
      if (isRecord(ready) && typeof ready.revision === 'string') revisions.add(ready.revision);
      await sleep(SAMPLE_SECONDS * 1000);
    }
  };

  await Promise.all([...Array.from({ length: CONCURRENCY }, worker), swapper(), sampler()]);
  const metrics = gatewayExit === undefined ? await metricsText(target).catch(() => '') : '';
  const reload = (result: string) =>
    Number(
      new RegExp(
        `^imagegate_reloads_total\\{kind="policy",result="${result}"\\} (\\d+)$`,
        'm',
      ).exec(metrics)?.[1] ?? 0,
    );
  const reloads = { ok: reload('ok'), refused: reload('refused') };
  target.agent.destroy();
  target.healthAgent.destroy();

  stopping = true;
  if (gatewayExit === undefined) {
    gateway.child.kill('SIGTERM');
    gatewayExit = await Promise.race([
      gateway.exited,
      sleep(30_000).then(() => 'no exit within 30 s of SIGTERM'),
    ]);
  }

  const rss = summarizeRss(samples);
  const flips = ['allowed', 'denied'].map((o) => counts.get(`validate flip|${o}`) ?? 0);
  const verdict: string[] = [];
  if (failed > 0) verdict.push(`${failed} failed requests`);
  if (rss.slope > MAX_SLOPE) verdict.push(`RSS grows ${rss.slope.toFixed(2)} MiB/min`);
  if (stoppedEarly !== undefined)
    verdict.push(`the gateway stopped during the soak (${stoppedEarly})`);
  else if (gatewayExit !== 'exit code 0') verdict.push(`gateway ${gatewayExit} on SIGTERM`);
  if (reloads.ok === 0 || reloads.refused === 0)
    verdict.push('reloads did not both succeed and get refused');
  if (!revisions.has('soak-b') || revisions.size < 2)
    verdict.push('the bundle swaps never changed the serving revision');
  if (flips.some((n) => n === 0)) verdict.push('the flip pod was never both allowed and denied');
  const unexpected = gateway.logs.get('50 unexpected error') ?? 0;
  if (unexpected > 0) verdict.push(`${unexpected} unexpected errors logged`);
  const section = markdown({
    date,
    seconds: SECONDS,
    concurrency: CONCURRENCY,
    swapSeconds: SWAP_SECONDS,
    machine,
    counts,
    latencies,
    failures,
    failed,
    swaps,
    reloads,
    revisions: [...revisions],
    logs: gateway.logs,
    refusals: [...new Set(gateway.errors)],
    rss,
    series: samples.filter((_, i) => i % Math.max(1, Math.ceil(samples.length / 20)) === 0),
    maxSlope: MAX_SLOPE,
    exit: gatewayExit,
    verdict,
  });
  if (!existsSync(REPORT)) {
    await writeFile(
      REPORT,
      '# Soak runs\n\nAppended by `make soak` (test/soak/soak.ts); newest last.\n\n',
    );
  }
  await appendFile(REPORT, section);
  process.stdout.write(
    `${section}\nsoak: ${verdict.length === 0 ? 'PASS' : 'FAIL'}; appended to ${REPORT}\n`,
  );
  return verdict.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `soak: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(2);
  },
);
