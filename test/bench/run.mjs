/**
 * `make bench`: builds dist/, then runs every benchmark in one go — in-process evaluation,
 * HTTPS end to end against the OPA server and a no-op ceiling, reload under load, hostile
 * reviews beside benign ones, registry facts against a real registry, keyless signatures
 * against a local Sigstore, the audit against
 * the real API server, and a CPU profile — and writes docs/BENCHMARKS.md (machine, versions, method, raw tables,
 * ratios, targets). Not part of the tests.
 *
 *   node test/bench/run.mjs            full run, ~10 minutes, writes docs/BENCHMARKS.md
 *   BENCH_QUICK=1 node test/bench/run.mjs   ~2-minute smoke; writes
 *                                            $TMPDIR/imagegate-BENCHMARKS.quick.md
 *   BENCH_OUT=FILE   write the report there instead
 *   BENCH_KEEP=1     keep the temp dir (logs, bodies, certificates, the .cpuprofile)
 *   BENCH_BASELINE=REV   the "before" build served beside this one (default: the last
 *                        commit before the hot-path work); "none" leaves it out
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runAudit } from './audit.mjs';
import { runHostile } from './hostile.mjs';
import { runHttp } from './http.mjs';
import { runKeyless } from './keyless.mjs';
import {
  benchMain,
  build,
  log,
  machineCpu,
  machineFacts,
  QUICK,
  ROOT,
  settle,
  commandText as text,
} from './lib.mjs';
import { runProfile } from './profile.mjs';
import { runRegistry } from './registry.mjs';
import { runReload } from './reload.mjs';
import { renderReport } from './report.mjs';
import { runTenants } from './tenants.mjs';

const run = promisify(execFile);

/**
 * The last commit before the hot-path work of the benchmark issue (engine: memory reserved
 * up front, input.review left out; body: stream events, one decoder). Served beside the
 * current build in the same run, so "before and after" is a ratio, not two runs' numbers.
 */
const DEFAULT_BASELINE = '692bb0dd2d1125b9b69d84317eaddd6bb6e0d791';

/** Exports the baseline revision into tmp and compiles it against this checkout's packages. */
async function buildBaseline(tmp) {
  const revision = process.env.BENCH_BASELINE ?? DEFAULT_BASELINE;
  if (revision === 'none') return undefined;
  const dir = join(tmp, 'baseline');
  mkdirSync(dir);
  await run('sh', ['-c', 'git archive --format=tar "$1" | tar -x -C "$2"', 'sh', revision, dir], {
    cwd: ROOT,
  });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  await build(dir);
  const cli = join(dir, 'dist', 'src', 'cli.js');
  if (!existsSync(cli)) throw new Error(`the baseline ${revision} did not build ${cli}`);
  return { cli, revision: await text('git', ['rev-parse', '--short', revision]) };
}

async function makeTls(tmp) {
  const { createCa, issueCertificate } = await import(join(ROOT, 'dist', 'src', 'tls', 'certs.js'));
  const ca = createCa('imagegate bench CA', 2);
  const serving = issueCertificate(ca, {
    commonName: 'localhost',
    usage: 'server',
    altNames: ['localhost', '127.0.0.1'],
    validityDays: 1,
  });
  const files = {
    caFile: join(tmp, 'ca.crt'),
    certFile: join(tmp, 'tls.crt'),
    keyFile: join(tmp, 'tls.key'),
  };
  writeFileSync(files.caFile, ca.cert);
  writeFileSync(files.certFile, serving.cert);
  writeFileSync(files.keyFile, serving.key, { mode: 0o600 });
  return { ...files, ca: ca.cert };
}

async function machine() {
  const opa = await text(join(ROOT, '.tools', 'bin', 'opa'), ['version']);
  const autocannon = JSON.parse(
    readFileSync(join(ROOT, 'node_modules', 'autocannon', 'package.json'), 'utf8'),
  ).version;
  return {
    ...(await machineFacts()),
    opa: /^Version: (.*)$/m.exec(opa)?.[1] ?? opa,
    opaGo: /^Go Version: (.*)$/m.exec(opa)?.[1] ?? '',
    autocannon,
  };
}

async function inProcess(tmp) {
  log(`in-process: ${QUICK ? '20k' : '1M'} evaluations in the growth phase; this is the long one`);
  const background = await settle();
  const before = machineCpu();
  const started = performance.now();
  const args = ['--expose-gc', join(ROOT, 'dist', 'test', 'bench', 'inprocess.js')];
  if (QUICK) args.push('--quick');
  const { stdout } = await run(process.execPath, args, {
    cwd: ROOT,
    maxBuffer: 16 << 20,
    timeout: 15 * 60 * 1000,
  });
  writeFileSync(join(tmp, 'inprocess.json'), stdout);
  const after = machineCpu();
  const seconds = (performance.now() - started) / 1000;
  return {
    ...JSON.parse(stdout),
    wallS: seconds,
    machineBusyCores: (after.busy - before.busy) / seconds,
    background,
  };
}

await benchMain('BENCHMARKS', renderReport, async (tmp, started) => {
  const tls = await makeTls(tmp);
  const results = { quick: QUICK, startedAt: new Date(started).toISOString() };
  results.machine = await machine();
  results.inprocess = await inProcess(tmp);
  const baseline = await buildBaseline(tmp);
  results.http = await runHttp({ tmp, tls, quick: QUICK, baseline });
  results.reload = await runReload({ tmp, tls, quick: QUICK });
  // As the Deployment runs it (deploy/base/deployment.yaml's NODE_OPTIONS).
  results.hostile = await runHostile({
    tmp,
    tls,
    quick: QUICK,
    nodeArgs: ['--max-old-space-size=256'],
  });
  results.registry = await runRegistry({ tmp, tls, quick: QUICK });
  results.keyless = await runKeyless({ tmp, quick: QUICK });
  results.tenants = await runTenants({ tmp, tls, quick: QUICK });
  results.audit = await runAudit({ tmp, quick: QUICK });
  results.profile = await runProfile({ tmp, tls, quick: QUICK });
  return results;
});
