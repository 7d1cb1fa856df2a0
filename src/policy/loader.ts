/**
 * Bundle + configuration (+ signature) → a ready engine: the one path every command
 * loads policy through, so `check`, `bundle configmap` and `serve` refuse the same things.
 */
import { readFile } from 'node:fs/promises';
import { describeThrown } from '../shared/describe-thrown.ts';
import { InputError } from '../shared/input-error.ts';
import { readBundleFile } from './bundle.ts';
import { type VerificationOptions, verifyBundleSignature } from './bundle-signature.ts';
import { loadConfigFile } from './config.ts';
import { PolicyEngine } from './engine.ts';

export interface VerificationSettings {
  /** Path of the PEM public key (or certificate); read at every load so it can rotate. */
  readonly keyFile: string;
  readonly keyId?: string;
  readonly scope?: string;
  readonly algorithm?: string;
}

export interface PolicySource {
  readonly bundle: string;
  readonly config?: string | undefined;
  readonly verification?: VerificationSettings | undefined;
}

export interface LoadedPolicy {
  readonly engine: PolicyEngine;
  /** "verified (key id)", "signed, not verified" or "unsigned". */
  readonly signature: string;
}

export async function loadPolicy(source: PolicySource): Promise<LoadedPolicy> {
  const config = source.config === undefined ? {} : await loadConfigFile(source.config);
  const bundle = await readBundleFile(source.bundle);
  let signature = bundle.files.has('.signatures.json') ? 'signed, not verified' : 'unsigned';
  if (source.verification !== undefined) {
    // With a key configured, an unsigned bundle is refused (GHSA-g2pf-6v5v-qcc8).
    const verified = await verifyBundleSignature(
      bundle,
      await verificationOptions(source.verification),
    );
    signature = `verified (key id ${verified.keyId})`;
  }
  return { engine: await PolicyEngine.create(bundle, config), signature };
}

export async function verificationOptions(
  settings: VerificationSettings,
): Promise<VerificationOptions> {
  let publicKey: string;
  try {
    publicKey = await readFile(settings.keyFile, 'utf8');
  } catch (error) {
    throw new InputError(
      `cannot read verification key ${settings.keyFile}: ${describeThrown(error)}`,
      {
        cause: error,
      },
    );
  }
  return {
    publicKey,
    ...(settings.keyId === undefined ? {} : { keyId: settings.keyId }),
    ...(settings.scope === undefined ? {} : { scope: settings.scope }),
    ...(settings.algorithm === undefined ? {} : { algorithm: settings.algorithm }),
  };
}
