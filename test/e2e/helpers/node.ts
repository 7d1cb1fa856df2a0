/**
 * A real node beside the e2e control plane, through test/e2e/node.sh: containerd, a
 * kubelet and kube-scheduler, and the bed's registry with its busybox image. Only inside
 * test/e2e/isolate.sh (`make e2e` runs there): node.sh refuses a network namespace with a
 * route out.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isRecord, stringField } from '../../../src/shared/json.ts';
import { ROOT } from '../../helpers/cli.ts';

const SCRIPT = join(ROOT, 'test', 'e2e', 'node.sh');

export interface NodeOptions {
  /** KubeletConfiguration lines added to the bed's (e.g. a credential verification policy). */
  readonly kubeletConfig?: string;
}

export interface BedNode {
  readonly name: string;
  /** The bed's registry (plain HTTP on loopback): `127.0.0.1:PORT`. */
  readonly registry: string;
  /** A busybox image in the bed's registry (sh, cat, sleep …). */
  readonly busybox: string;
  /** Where containerd, the kubelet and the scheduler keep files and logs. */
  readonly dir: string;
  /** containerd pulls from this TLS registry trusting its CA (certs.d/<host>/hosts.toml). */
  trustRegistry(host: string, caFile: string): Promise<void>;
  /** The kubelet again with these KubeletConfiguration lines (its pull records stay). */
  restartKubelet(kubeletConfig: string): Promise<void>;
  stop(): Promise<void>;
}

export function nodeScript(command: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [SCRIPT, command], { cwd: ROOT, env, stdio: 'pipe' });
    let output = '';
    const append = (d: string) => {
      output += d;
    };
    child.stdout.setEncoding('utf8').on('data', append);
    child.stderr.setEncoding('utf8').on('data', append);
    child.stdin.end();
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(output);
      else reject(new Error(`node.sh ${command} exited ${code}:\n${output}`));
    });
  });
}

/** Starts a node for the control plane in `dir` (its IMAGEGATE_E2E_DIR). */
export async function startNode(
  dir: string,
  env: NodeJS.ProcessEnv,
  options: NodeOptions = {},
): Promise<BedNode> {
  const base = { ...env, IMAGEGATE_E2E_DIR: dir };
  await nodeScript('start', { ...base, IMAGEGATE_E2E_KUBELET_CONFIG: options.kubeletConfig ?? '' });
  const info: unknown = JSON.parse(await readFile(join(dir, 'node.json'), 'utf8'));
  if (!isRecord(info) || !isRecord(info.images)) throw new TypeError('node.json: no images');
  const certsDir = stringField(info, 'certsDir');
  return {
    name: stringField(info, 'nodeName'),
    registry: stringField(info, 'registry'),
    busybox: stringField(info.images, 'busybox'),
    dir: stringField(info, 'dir'),
    trustRegistry: async (host, caFile) => {
      await mkdir(join(certsDir, host), { recursive: true });
      await writeFile(
        join(certsDir, host, 'hosts.toml'),
        `server = "https://${host}"\n\n[host."https://${host}"]\n  capabilities = ["pull", "resolve"]\n  ca = "${caFile}"\n`,
      );
    },
    restartKubelet: async (kubeletConfig) => {
      await nodeScript('restart-kubelet', { ...base, IMAGEGATE_E2E_KUBELET_CONFIG: kubeletConfig });
    },
    stop: async () => {
      await nodeScript('stop', base);
    },
  };
}
