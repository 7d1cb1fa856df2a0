/**
 * Every way deploy/ installs imagegate, checked by the real API server: each kustomize
 * kustomization and the Helm chart (default values and every ci/*-values.yaml, which
 * between them turn every option on) applied with `kubectl apply --dry-run=server`, so a
 * field or value the API server would refuse fails here. cert-manager's CRDs (from its Go
 * module, pinned in build-control-plane.sh) are installed first, so its objects are
 * validated against their schemas too.
 */
import { execFile } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { ROOT } from '../helpers/cli.ts';
import { eventually } from './helpers/poll.ts';
import { useE2e } from './helpers/scenario.ts';

const run = promisify(execFile);
const e2e = useE2e(test, { imagePolicyWebhook: false });
const TOOLS = join(ROOT, '.tools', 'bin');
const CHART = join(ROOT, 'deploy', 'helm', 'imagegate');

/** deploy/base and every overlay: each kustomization but components and the vendored CRDs. */
async function kustomizations(): Promise<string[]> {
  const overlays = await readdir(join(ROOT, 'deploy', 'overlays'));
  return ['deploy/base', ...overlays.sort().map((o) => `deploy/overlays/${o}`)];
}

async function renders(): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for (const dir of await kustomizations()) {
    const { stdout } = await run(join(TOOLS, 'kustomize'), ['build', join(ROOT, dir)], {
      maxBuffer: 16 << 20,
    });
    out.push([dir, stdout]);
  }
  const values = (await readdir(join(CHART, 'ci'))).filter((f) => f.endsWith('-values.yaml'));
  for (const file of ['', ...values.sort()]) {
    const args = file === '' ? [] : ['-f', join(CHART, 'ci', file)];
    const { stdout } = await run(
      join(TOOLS, 'helm'),
      ['template', 'imagegate', CHART, '-n', 'imagegate-system', ...args],
      { maxBuffer: 16 << 20 },
    );
    out.push([`chart ${file || 'default values'}`, stdout]);
  }
  return out;
}

async function crdDirs(): Promise<{ certManager: string; monitoring: string }> {
  const { stdout } = await run(join(ROOT, 'test', 'e2e', 'build-control-plane.sh'), [], {
    maxBuffer: 1 << 20,
  });
  const certManager = /^CERT_MANAGER_CRDS=(.*)$/m.exec(stdout)?.[1];
  const monitoring = /^MONITORING_CRDS=(.*)$/m.exec(stdout)?.[1];
  if (certManager === undefined || monitoring === undefined) {
    throw new Error('build-control-plane.sh printed no CERT_MANAGER_CRDS or MONITORING_CRDS');
  }
  return { certManager, monitoring };
}

test.serial(
  'cert-manager and prometheus-operator CRDs are installed for the dry runs',
  async (t) => {
    const { kubectl } = e2e();
    const dirs = await crdDirs();
    const crds = [
      join(dirs.certManager, 'cert-manager.io_certificates.yaml'),
      join(dirs.certManager, 'cert-manager.io_issuers.yaml'),
      join(dirs.monitoring, 'monitoring.coreos.com_podmonitors.yaml'),
      join(dirs.monitoring, 'monitoring.coreos.com_prometheusrules.yaml'),
    ];
    for (const crd of crds) await kubectl.must(['apply', '--server-side', '-f', crd]);
    await eventually('the CRDs to be established', async () => {
      const r = await kubectl.run([
        'wait',
        '--for=condition=Established',
        'crd/certificates.cert-manager.io',
        'crd/issuers.cert-manager.io',
        'crd/podmonitors.monitoring.coreos.com',
        'crd/prometheusrules.monitoring.coreos.com',
        '--timeout=5s',
      ]);
      return r.code === 0;
    });
    t.pass();
  },
);

test.serial('every kustomization and chart variant passes the API server’s dry run', async (t) => {
  const { kubectl, work } = e2e();
  const all = await renders();
  t.true(all.length >= 16, `${all.length} renders`);
  for (const [name, yaml] of all) {
    const file = join(work, `${name.replaceAll(/[^a-z0-9-]+/gi, '_')}.yaml`);
    await writeFile(file, yaml);
    const applied = await kubectl.run(['apply', '--dry-run=server', '-f', file]);
    t.is(applied.code, 0, `${name}: ${applied.stderr}`);
    t.notRegex(applied.stdout, /unchanged \(server dry run\)$/m, `${name}: nothing was checked`);
    const objects = applied.stdout.trim().split('\n').length;
    t.log(`${name}: ${objects} objects accepted`);
  }
});

// The check has teeth: the same dry run refuses what the API server would.
test.serial('a field the API server refuses fails the dry run', async (t) => {
  const { kubectl, work } = e2e();
  const [, base] = (await renders())[0] ?? ['', ''];
  const broken = base.replace('failurePolicy: Fail', 'failurePolicy: Sometimes');
  t.not(broken, base);
  const file = join(work, 'broken.yaml');
  await writeFile(file, broken);
  const applied = await kubectl.run(['apply', '--dry-run=server', '-f', file]);
  t.not(applied.code, 0);
  t.regex(applied.stderr, /failurePolicy/);
});
