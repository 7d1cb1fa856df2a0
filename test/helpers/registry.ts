/**
 * Real registries for tests, each owned by the test that starts it (torn down with it), on
 * 127.0.0.1 with a free port and TLS from a throwaway CA:
 *
 * - the CNCF distribution registry with a generated config.yml — filesystem storage in a
 *   temp dir, auth none, htpasswd (bcrypt by bcryptjs) or token (test/helpers/token-server.ts);
 * - with `referrers: true`, test/tools/oci-registry (the OCI 1.1 referrers API; auth none).
 *
 * `stop()` ends the process and `start()` runs it again on the same port and storage: the
 * same content, as after a registry outage. Image and signature helpers are re-exported
 * here so tests import one module.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { stringify } from 'yaml';
import { createCa, issueCertificate } from '../../src/tls/certs.ts';
import { type RegistryTools, registryTools, runTool, toolSandbox } from './registry-tools.ts';
import { freePort, poll, type Teardown, tempDir } from './teardown.ts';
import { startTokenServer, type TokenServer } from './token-server.ts';

export { generateKeyPair, type KeyPair, signImage } from './cosign.ts';
export { type PushedImage, pushImage } from './images.ts';

export type RegistryAuth = 'none' | 'htpasswd' | 'token';

export interface RegistryOptions {
  readonly auth: RegistryAuth;
  /** Serve the OCI 1.1 referrers API (test/tools/oci-registry; auth none only). */
  readonly referrers?: boolean;
  /**
   * With referrers: go-containerregistry's answer uncorrected — each descriptor's
   * artifactType is its config's media type (cosign 3: application/vnd.oci.empty.v1+json),
   * and ?artifactType= is ignored.
   */
  readonly rawReferrers?: boolean;
  /** Token auth: the token server's `expires_in` in seconds (default 300). */
  readonly tokenExpiresIn?: number;
  /**
   * The address it listens on and is named by (default 127.0.0.1): the e2e node's bridge
   * (10.244.0.1) makes it reachable from pods. Distribution registry only.
   */
  readonly address?: string;
}

export interface TestRegistry {
  /** `127.0.0.1:PORT`, as image references and docker config files name it. */
  readonly host: string;
  readonly auth: RegistryAuth;
  readonly referrers: boolean;
  /** PEM of the CA that issued the serving certificate (and the token server's). */
  readonly ca: string;
  readonly caFile: string;
  readonly username?: string;
  readonly password?: string;
  readonly tokenServer?: TokenServer;
  readonly tools: RegistryTools;
  /** crane's and cosign's environment: a private HOME, logged in to this registry. */
  readonly env: NodeJS.ProcessEnv;
  /** What the registry process printed, every run. */
  logs(): string;
  stop(): Promise<void>;
  start(): Promise<void>;
}

// Runs "$@" until stdin closes: the test's stop(), or the test process dying (no orphans).
const WATCHDOG =
  'exec 3<&0; "$@" & child=$!; { read -r _ <&3; kill "$child"; } >/dev/null 2>&1 & wait "$child"';

export async function startRegistry(t: Teardown, options: RegistryOptions): Promise<TestRegistry> {
  const referrers = options.referrers === true;
  if (referrers && options.auth !== 'none') {
    throw new TypeError('startRegistry: the referrers registry (oci-registry) has no auth');
  }
  const tools = await registryTools();
  const dir = await tempDir(t, 'imagegate-registry-');
  const port = await freePort();
  const address = options.address ?? '127.0.0.1';
  const host = `${address}:${port}`;
  const ca = createCa('imagegate test registry CA');
  const serving = issueCertificate(ca, {
    commonName: address,
    usage: 'server',
    altNames: [...new Set([address, '127.0.0.1', 'localhost'])],
  });
  const file = (name: string) => join(dir, name);
  await writeFile(file('ca.crt'), ca.cert);
  await writeFile(file('tls.crt'), serving.cert);
  await writeFile(file('tls.key'), serving.key, { mode: 0o600 });
  const credentials =
    options.auth === 'none'
      ? undefined
      : { username: 'imagegate', password: randomBytes(12).toString('hex') };

  let tokenServer: TokenServer | undefined;
  let command: string[];
  if (referrers) {
    command = [tools.referrersRegistry, '--address', host, '--cert', file('tls.crt')];
    command.push('--key', file('tls.key'), '--dir', file('storage'));
    if (options.rawReferrers === true) command.push('--raw-referrers');
  } else {
    let auth: Record<string, unknown> = {};
    if (credentials !== undefined && options.auth === 'htpasswd') {
      // Cost 5: the registry compares the hash on every request.
      const hash = bcrypt.hashSync(credentials.password, 5);
      await writeFile(file('htpasswd'), `${credentials.username}:${hash}\n`);
      auth = { htpasswd: { realm: 'imagegate-test', path: file('htpasswd') } };
    } else if (credentials !== undefined) {
      tokenServer = await startTokenServer(t, {
        service: 'imagegate-test-registry',
        tls: serving,
        users: { [credentials.username]: credentials.password },
        ...(options.tokenExpiresIn === undefined ? {} : { expiresIn: options.tokenExpiresIn }),
      });
      await writeFile(file('token-ca.crt'), tokenServer.rootCertBundle);
      auth = {
        token: {
          realm: tokenServer.realm,
          service: tokenServer.service,
          issuer: tokenServer.issuer,
          rootcertbundle: file('token-ca.crt'),
        },
      };
    }
    const config = {
      version: 0.1,
      log: { level: 'info', formatter: 'text', accesslog: { disabled: false } },
      storage: {
        filesystem: { rootdirectory: file('storage') },
        delete: { enabled: true },
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: {
        addr: host,
        secret: randomBytes(16).toString('hex'),
        tls: { certificate: file('tls.crt'), key: file('tls.key') },
      },
      ...(options.auth === 'none' ? {} : { auth }),
    };
    await writeFile(file('config.yml'), stringify(config));
    command = [tools.registry, 'serve', file('config.yml')];
  }

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = '';
  const stop = async () => {
    const running = child;
    if (running === undefined) return;
    child = undefined;
    running.stdin?.end();
    const timer = setTimeout(() => killGroup(running), 10_000);
    await exited;
    clearTimeout(timer);
  };
  const start = async () => {
    if (child !== undefined) return;
    // The distribution registry reads REGISTRY_* variables as configuration: pass none.
    const running = spawn('bash', ['-c', WATCHDOG, 'registry', ...command], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir },
      detached: true, // its own process group, for killGroup
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child = running;
    let gone = false;
    exited = new Promise((resolve) => running.once('exit', () => resolve()));
    void exited.then(() => {
      gone = true;
    });
    running.stdout?.setEncoding('utf8').on('data', (d: string) => {
      output += d;
    });
    running.stderr?.setEncoding('utf8').on('data', (d: string) => {
      output += d;
    });
    await poll(async () => {
      if (gone) throw new Error(`registry exited before serving:\n${output}`);
      const status = await v2Status(host, ca.cert);
      return status === 200 || status === 401 ? status : undefined;
    }, `the registry on ${host}`);
  };
  t.teardown(stop);
  await start();

  const sandbox = await toolSandbox(t, file('ca.crt'));
  // Loopback is never proxied; another address is, to the dead proxy, unless exempted.
  const env =
    address === '127.0.0.1' ? sandbox : { ...sandbox, NO_PROXY: address, no_proxy: address };
  if (credentials !== undefined) {
    await runTool(
      tools.crane,
      ['auth', 'login', host, '--username', credentials.username, '--password-stdin'],
      env,
      { input: credentials.password },
    );
  }
  return {
    host,
    auth: options.auth,
    referrers,
    ca: ca.cert,
    caFile: file('ca.crt'),
    ...credentials,
    ...(tokenServer === undefined ? {} : { tokenServer }),
    tools,
    env,
    logs: () => output,
    stop,
    start,
  };
}

function killGroup(child: ChildProcess): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** GET /v2/ → the status, or undefined while nothing listens. */
function v2Status(host: string, ca: string): Promise<number | undefined> {
  const [hostname, port] = host.split(':');
  return new Promise((resolve) => {
    const req = request({ host: hostname, port, path: '/v2/', ca, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

/** A `.dockerconfigjson` (the kubernetes.io/dockerconfigjson Secret's key) for the registry. */
export function dockerConfigJson(
  registry: Pick<TestRegistry, 'host' | 'username' | 'password'>,
  credentials = { username: registry.username, password: registry.password },
): string {
  const { username, password } = credentials;
  if (username === undefined || password === undefined) {
    throw new TypeError(`dockerConfigJson: no credentials for ${registry.host}`);
  }
  const auth = Buffer.from(`${username}:${password}`).toString('base64');
  return JSON.stringify({ auths: { [registry.host]: { username, password, auth } } });
}

/** Writes dockerConfigJson to a temp file; returns its path. */
export async function writeDockerConfigJson(
  t: Teardown,
  registry: Pick<TestRegistry, 'host' | 'username' | 'password'>,
  credentials?: { username: string; password: string },
): Promise<string> {
  const path = join(await tempDir(t, 'imagegate-pull-secret-'), '.dockerconfigjson');
  await writeFile(path, dockerConfigJson(registry, credentials), { mode: 0o600 });
  return path;
}

/**
 * What the configuration's `registries` must say of these test registries: a token-auth
 * registry's realm is on another host (`localhost`, while the registry is 127.0.0.1), and
 * the gateway sends a registry's credentials there only when it is named as an auth host.
 */
export function authHostsOf(
  registries: readonly Pick<TestRegistry, 'host' | 'tokenServer'>[],
): Map<string, { authHosts: string[] }> {
  const settings = new Map<string, { authHosts: string[] }>();
  for (const registry of registries) {
    if (registry.tokenServer === undefined) continue;
    settings.set(registry.host, { authHosts: [new URL(registry.tokenServer.realm).host] });
  }
  return settings;
}

/** authHostsOf as configuration YAML (a `registries:` block; empty when none is needed). */
export function authHostsYaml(
  registries: readonly Pick<TestRegistry, 'host' | 'tokenServer'>[],
): string {
  const entries = [...authHostsOf(registries)].map(
    ([host, { authHosts }]) =>
      `  "${host}": {authHosts: [${authHosts.map((h) => `"${h}"`).join(', ')}]}`,
  );
  return entries.length === 0 ? '' : `registries:\n${entries.join('\n')}\n`;
}
