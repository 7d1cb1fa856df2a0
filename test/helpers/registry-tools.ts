/**
 * The binaries test/e2e/build-registry-tools.sh builds (`make registry-tools`), found through
 * its --check mode, which builds nothing; and the sandbox they run in: HOME, DOCKER_CONFIG and
 * TUF_ROOT in a temp dir (never the real ~/.docker or ~/.sigstore), the test CA trusted
 * through SSL_CERT_FILE (Go adds it to the system roots), and a dead proxy, so that a tool
 * reaching for Rekor, Fulcio or a TUF mirror fails at once and visibly instead of hanging.
 */
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT } from './cli.ts';
import { type Teardown, tempDir } from './teardown.ts';

export interface RegistryTools {
  /** The CNCF distribution registry (no referrers API). */
  readonly registry: string;
  /** test/tools/oci-registry: go-containerregistry's registry with the referrers API. */
  readonly referrersRegistry: string;
  readonly crane: string;
  /** cosign 3 (Sigstore bundles) and cosign 2 (the legacy .sig tag). */
  readonly cosign: string;
  readonly cosign2: string;
  /** oras: OPA bundles pushed as OCI artifacts. */
  readonly oras: string;
}

const SCRIPT = join(ROOT, 'test', 'e2e', 'build-registry-tools.sh');

let found: Promise<RegistryTools | string> | undefined;

/** The tools, or why they can't be used (not built: `make registry-tools`). */
export function findRegistryTools(): Promise<RegistryTools | string> {
  found ??= new Promise((resolve) => {
    execFile('bash', [SCRIPT, '--check'], (error, stdout, stderr) => {
      if (error !== null) return resolve(stderr.trim() || error.message);
      const paths = new Map(
        stdout
          .trim()
          .split('\n')
          .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
      );
      const path = (key: string) => paths.get(key) ?? '';
      resolve({
        registry: path('REGISTRY'),
        referrersRegistry: path('REFERRERS_REGISTRY'),
        crane: path('CRANE'),
        cosign: path('COSIGN'),
        cosign2: path('COSIGN2'),
        oras: path('ORAS'),
      });
    });
  });
  return found;
}

export async function registryTools(): Promise<RegistryTools> {
  const tools = await findRegistryTools();
  if (typeof tools === 'string') throw new Error(tools);
  return tools;
}

/** Port 9 (discard) is closed on loopback: a proxied request is refused at once. */
export const DEAD_PROXY = 'http://127.0.0.1:9';

/** A private HOME for crane and cosign that trusts `caFile`; loopback is never proxied. */
export async function toolSandbox(t: Teardown, caFile: string): Promise<NodeJS.ProcessEnv> {
  const home = await tempDir(t, 'imagegate-tools-home-');
  await mkdir(join(home, '.docker'));
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    DOCKER_CONFIG: join(home, '.docker'),
    TUF_ROOT: join(home, '.sigstore', 'root'),
    SSL_CERT_FILE: caFile,
    HTTPS_PROXY: DEAD_PROXY,
    HTTP_PROXY: DEAD_PROXY,
    https_proxy: DEAD_PROXY,
    http_proxy: DEAD_PROXY,
    // cosign's keys are made and read with an empty password.
    COSIGN_PASSWORD: '',
  };
}

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a tool; a non-zero exit rejects with its stderr. */
export function runTool(
  bin: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  options: { cwd?: string; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      bin,
      args,
      { env, cwd: options.cwd, maxBuffer: 32 << 20, timeout: 120_000 },
      (error, stdout, stderr) => {
        if (error === null) return resolve({ stdout, stderr });
        const command = [bin.split('/').at(-1), ...args].join(' ');
        reject(new Error(`${command}: ${error.message}\n${stderr}`, { cause: error }));
      },
    );
    child.stdin?.end(options.input ?? '');
  });
}
