/** A bundle directory laid out as kubelet mounts a ConfigMap, and swapped as kubelet does. */
import { mkdir, mkdtemp, readFile, rename, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VerificationSettings } from '../../src/policy/loader.ts';
import { type Gateway, startGateway } from '../../src/server/gateway.ts';
import { createLogger } from '../../src/shared/logger.ts';

let generations = 0;

/** kubelet's atomic writer: a new timestamped dir, then `..data` renamed over in one step. */
export async function kubeletSwap(mount: string, bundle: Buffer): Promise<void> {
  generations += 1;
  const dir = `..2026_11_23_${process.pid}_${generations}`;
  await mkdir(join(mount, dir));
  await writeFile(join(mount, dir, 'imagegate.tar.gz'), bundle);
  await symlink(dir, join(mount, '..data_tmp'));
  await rename(join(mount, '..data_tmp'), join(mount, '..data'));
}

/** A fresh mount holding `bundle` as imagegate.tar.gz → ..data/imagegate.tar.gz. */
export async function mountConfigMap(bundle: Buffer): Promise<string> {
  const mount = await mkdtemp(join(tmpdir(), 'imagegate-configmap-'));
  await kubeletSwap(mount, bundle);
  await symlink('..data/imagegate.tar.gz', join(mount, 'imagegate.tar.gz'));
  return mount;
}

/** Polls `check` every 50 ms, at most 15 s, instead of sleeping a guessed time. */
export async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export interface LocalGatewayOptions {
  readonly bundle: string;
  readonly config?: string;
  readonly verification?: VerificationSettings;
  readonly stateDir?: string;
}

/**
 * A silent gateway on loopback with its own self-signed CA (returned as `ca`), polling
 * watched files every 50 ms, closed when the test ends.
 */
export async function startLocalGateway(
  t: { teardown(fn: () => unknown): void },
  options: LocalGatewayOptions,
): Promise<{ gateway: Gateway; ca: Buffer }> {
  const stateDir = options.stateDir ?? (await mkdtemp(join(tmpdir(), 'imagegate-state-')));
  const gateway = await startGateway(
    {
      port: 0,
      healthPort: 0,
      host: '127.0.0.1',
      bundle: options.bundle,
      config: options.config,
      tlsCert: undefined,
      tlsKey: undefined,
      clientCa: undefined,
      stateDir,
      watchIntervalMs: 50,
      verification: options.verification,
    },
    createLogger('silent'),
  );
  t.teardown(() => gateway.close(100));
  return { gateway, ca: await readFile(join(stateDir, 'ca.crt')) };
}
