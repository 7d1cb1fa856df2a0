/**
 * Signatures made by the real cosign, offline: a key pair (ECDSA P-256, empty password via
 * COSIGN_PASSWORD='') and `cosign sign --key` with no transparency log, so nothing contacts
 * Rekor, Fulcio or a TUF mirror (the sandbox's dead proxy would make that fail loudly):
 *
 * - cosign 3.1.3: `--tlog-upload=false` is refused together with a signing config, and
 *   `--use-signing-config` defaults to true (fetched through TUF), so it is turned off.
 *   With `--key` and no signing config, no trusted root is fetched either. Writes a
 *   Sigstore bundle (v0.3, DSSE envelope around an in-toto statement) as an OCI 1.1
 *   referrer of the image: the referrers API where the registry has it, else the
 *   `sha256-<hex>` tag (go-containerregistry's fallback).
 * - cosign 2.6.5: `--tlog-upload=false` is enough (no signing config by default); writes
 *   the legacy simple-signing payload at the `sha256-<hex>.sig` tag.
 *
 * Measured: cosign 3 with no flags fails fetching the signing config from TUF; with only
 * --tlog-upload=false it refuses to run; with only --use-signing-config=false it posts to
 * Rekor; cosign 2 with no flags posts to Rekor. `--yes` skips the terms prompt cosign shows
 * before a transparency-log upload: there is none here, it guards against a hang on stdin.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestRegistry } from './registry.ts';
import { DEAD_PROXY, type RunResult, registryTools, runTool } from './registry-tools.ts';

export interface KeyPair {
  readonly privateKey: string;
  readonly publicKey: string;
  /** PEM (PUBLIC KEY, ECDSA P-256) */
  readonly publicPem: string;
}

type Registry = Pick<TestRegistry, 'env' | 'tools'>;

/** `cosign generate-key-pair` (cosign 3) into dir: cosign.key, cosign.pub. */
export async function generateKeyPair(dir: string): Promise<KeyPair> {
  const tools = await registryTools();
  const prefix = join(dir, 'cosign');
  // Key generation needs no registry: a sandbox whose HOME is dir, empty password.
  const env = { PATH: process.env.PATH, HOME: dir, HTTPS_PROXY: DEAD_PROXY, COSIGN_PASSWORD: '' };
  await runTool(tools.cosign, ['generate-key-pair', '--output-key-prefix', prefix], env);
  const publicKey = `${prefix}.pub`;
  return { privateKey: `${prefix}.key`, publicKey, publicPem: await readFile(publicKey, 'utf8') };
}

export const OFFLINE_SIGN_FLAGS = {
  v3: ['--tlog-upload=false', '--use-signing-config=false', '--yes'],
  v2: ['--tlog-upload=false', '--yes'],
} as const;

/** Signs `reference` (best by digest: `host/repo@sha256:…`) with the key; returns cosign's output. */
export function signImage(
  registry: Registry,
  reference: string,
  key: Pick<KeyPair, 'privateKey'>,
  options: { cosign: 'v3' | 'v2' },
): Promise<RunResult> {
  const bin = options.cosign === 'v3' ? registry.tools.cosign : registry.tools.cosign2;
  const args = ['sign', '--key', key.privateKey, ...OFFLINE_SIGN_FLAGS[options.cosign], reference];
  return runTool(bin, args, registry.env);
}
