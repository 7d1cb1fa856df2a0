/**
 * `imagegate audit` as a real subprocess (src/cli.ts through tsx), its JSON log kept in a
 * file and in memory, and the access it runs with in a cluster: the ServiceAccount and
 * RBAC deploy/components/audit renders, through a token kubeconfig (to the API server, or
 * to a proxy in front of it).
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments, stringify } from 'yaml';
import { isRecord, type JsonObject } from '../../../src/shared/json.ts';
import { ROOT } from '../../helpers/cli.ts';
import type { E2e } from './environment.ts';
import { exited, spawnImagegate } from './gateway-process.ts';
import { eventually } from './poll.ts';

const run = promisify(execFile);

export interface AuditProcess {
  readonly child: ChildProcess;
  readonly healthPort: number;
  readonly logFile: string;
  readonly lines: JsonObject[];
  /** Parsed log lines with this `msg`. */
  messages(msg: string): JsonObject[];
  /** GET on the health port: status and parsed JSON (or text). */
  health(path: string): Promise<{ status: number; body: unknown }>;
  /** Resolves with the exit code once it exits on its own (or is stopped). */
  readonly exit: Promise<number | null>;
  /** SIGTERM (as kubelet stops it); resolves with the exit code. */
  stop(): Promise<number | null>;
}

export async function startAuditProcess(
  name: string,
  args: readonly string[],
  logDir: string,
): Promise<AuditProcess> {
  const logFile = join(logDir, `audit-${name}.log`);
  const { child, watchdog, lines, log } = spawnImagegate(
    'audit',
    ['--health-port=0', '--watch-interval-ms=200', ...args],
    logFile,
  );
  const exit = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      if (watchdog.exitCode === null) watchdog.kill('SIGTERM');
      resolve(code);
    });
  });
  const messages = (msg: string) => lines.filter((line) => line.msg === msg);
  await eventually(
    `audit ${name} to serve health (${logFile})`,
    async () => messages('imagegate audit serving health').length > 0 || child.exitCode !== null,
    { timeoutMs: 60_000 },
  );
  const port = messages('imagegate audit serving health')[0]?.healthPort;
  if (typeof port !== 'number') throw new Error(`audit ${name} did not start; see ${logFile}`);
  return {
    child,
    healthPort: port,
    logFile,
    lines,
    messages,
    exit,
    async health(path) {
      const response = await fetch(`http://127.0.0.1:${port}${path}`);
      const text = await response.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // plain text
      }
      return { status: response.status, body };
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        if (!(await exited(child, 20_000))) child.kill('SIGKILL');
      }
      const code = await exit;
      await new Promise<void>((resolve) => log.end(resolve));
      return code;
    },
  };
}

/**
 * The audit's ServiceAccount, ClusterRole, Role and their bindings as deploy/overlays/audit
 * renders them, applied; then a kubeconfig for it (a bound token) per server given.
 */
export async function auditAccess(
  e2e: E2e,
  servers: Record<string, string>,
): Promise<Record<string, string>> {
  const { stdout } = await run(
    join(ROOT, '.tools', 'bin', 'kustomize'),
    ['build', join(ROOT, 'deploy', 'overlays', 'audit')],
    { maxBuffer: 16 << 20 },
  );
  const access = parseAllDocuments(stdout)
    .map((d) => d.toJS() as unknown)
    .filter(isRecord)
    .filter((o) =>
      ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(
        String(o.kind),
      ),
    );
  await e2e.kubectl.must(['apply', '-f', '-'], access.map((o) => stringify(o)).join('---\n'));
  const token = (
    await e2e.kubectl.must([
      'create',
      'token',
      'imagegate-audit',
      '-n',
      'imagegate-system',
      '--duration=2h',
    ])
  ).stdout.trim();
  const files: Record<string, string> = {};
  for (const [name, server] of Object.entries(servers)) {
    const file = join(e2e.work, `audit-${name}.kubeconfig`);
    await writeFile(
      file,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          { name: 'e2e', cluster: { server, 'certificate-authority': e2e.controlPlane.ca } },
        ],
        users: [{ name: 'imagegate-audit', user: { token } }],
        contexts: [{ name: 'e2e', context: { cluster: 'e2e', user: 'imagegate-audit' } }],
        'current-context': 'e2e',
      }),
      { mode: 0o600 },
    );
    files[name] = file;
  }
  return files;
}

/** The PolicyReport CRDs deploy/crds vendors, installed and established. */
export async function installPolicyReportCrds(e2e: E2e): Promise<void> {
  await e2e.kubectl.must([
    'apply',
    '--server-side',
    '-k',
    join(ROOT, 'deploy', 'crds', 'policy-reports'),
  ]);
  await e2e.kubectl.must([
    'wait',
    '--for=condition=Established',
    'crd/policyreports.wgpolicyk8s.io',
    'crd/clusterpolicyreports.wgpolicyk8s.io',
    '--timeout=30s',
  ]);
}
