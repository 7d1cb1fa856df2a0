/**
 * etcd + kube-apiserver on loopback through test/e2e/control-plane.sh, owned by this test
 * process: the script's watchdog stops them if the process dies without cleaning up.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isRecord, stringField } from '../../../src/shared/json.ts';
import { ROOT } from '../../helpers/cli.ts';

const SCRIPT = join(ROOT, 'test', 'e2e', 'control-plane.sh');

export interface ControlPlaneOptions {
  /** Where the script keeps pki, kubeconfig, logs; it must not exist yet (or be empty). */
  readonly dir: string;
  /** An AdmissionConfiguration: enables ImagePolicyWebhook with it. */
  readonly admissionConfig?: string;
  /** More kube-apiserver flags (no spaces inside a flag). */
  readonly apiserverArgs?: readonly string[];
}

export interface ControlPlane {
  readonly dir: string;
  readonly apiserver: string;
  readonly kubeconfig: string;
  readonly kubectl: string;
  /** The API server's gitVersion, e.g. v1.37.2. */
  readonly version: string;
  /** The CA every certificate here is signed by (PEM file), and the API server's own pair. */
  readonly ca: string;
  readonly serving: { readonly cert: string; readonly key: string };
  /** kube-apiserver alone stopped, or started again (same port and flags, until /readyz). */
  stopApiserver(): Promise<void>;
  startApiserver(): Promise<void>;
  stop(): Promise<void>;
}

function script(command: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [SCRIPT, command], { cwd: ROOT, env, stdio: 'pipe' });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      output += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      output += d;
    });
    child.stdin.end();
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(output);
      else reject(new Error(`control-plane.sh ${command} exited ${code}:\n${output}`));
    });
  });
}

/** The environment without any IMAGEGATE_E2E_* a developer may have exported. */
export function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('IMAGEGATE_E2E_')),
  );
}

export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const env: NodeJS.ProcessEnv = {
    ...cleanEnv(),
    IMAGEGATE_E2E_DIR: options.dir,
    IMAGEGATE_E2E_OWNER_PID: String(process.pid),
    // A test run is minutes; anything older is left over.
    IMAGEGATE_E2E_TTL: '1200',
    IMAGEGATE_E2E_APISERVER_ARGS: (options.apiserverArgs ?? []).join(' '),
    ...(options.admissionConfig === undefined
      ? {}
      : { IMAGEGATE_E2E_ADMISSION_CONFIG: options.admissionConfig }),
  };
  await script('start', env);
  const info: unknown = JSON.parse(await readFile(join(options.dir, 'control-plane.json'), 'utf8'));
  if (!isRecord(info)) throw new TypeError('control-plane.json is not an object');
  const stopEnv = { ...cleanEnv(), IMAGEGATE_E2E_DIR: options.dir };
  return {
    dir: options.dir,
    apiserver: stringField(info, 'apiserver'),
    kubeconfig: stringField(info, 'kubeconfig'),
    kubectl: stringField(info, 'kubectl'),
    version: stringField(info, 'version'),
    ca: stringField(info, 'ca'),
    serving: {
      cert: join(options.dir, 'pki', 'apiserver.crt'),
      key: join(options.dir, 'pki', 'apiserver.key'),
    },
    stopApiserver: async () => {
      await script('apiserver-stop', stopEnv);
    },
    startApiserver: async () => {
      await script('apiserver-start', stopEnv);
    },
    stop: async () => {
      await script('stop', stopEnv);
    },
  };
}
