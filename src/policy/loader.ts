/**
 * Bundle + configuration (+ signature) → a ready engine: the one path every command
 * loads policy through, so `check`, `bundle configmap` and `serve` refuse the same things.
 */
import { readFile } from 'node:fs/promises';
import { loadKey, type PublicKeyRef } from '../registry/keys.ts';
import {
  type LoadedTrustRoot,
  loadTrustRoot,
  type TufRootSource,
  type TufRootSpec,
} from '../registry/trust-roots.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import { InputError } from '../shared/input-error.ts';
import { isRecord, type JsonObject } from '../shared/json.ts';
import { type Bundle, readBundleArchive, readBundleFile } from './bundle.ts';
import { type VerificationOptions, verifyBundleSignature } from './bundle-signature.ts';
import { loadConfigFile, type PolicyConfig } from './config.ts';
import { ConfigError } from './config-error.ts';
import { PolicyEngine } from './engine.ts';
import { compileSignatures } from './verifications.ts';

export interface VerificationSettings {
  /** Path of the PEM public key (or certificate); read at every load so it can rotate. */
  readonly keyFile: string;
  readonly keyId?: string;
  readonly scope?: string;
  readonly algorithm?: string;
}

export interface PolicySource {
  /** A path, or where `archive` came from (`oci://…`, `https://…`) for messages. */
  readonly bundle: string;
  /** The bundle's bytes, fetched from a remote source: read instead of the path. */
  readonly archive?: Buffer | undefined;
  readonly config?: string | undefined;
  readonly verification?: VerificationSettings | undefined;
  /** Where roots kept in a TUF repository come from; without it such a root is refused. */
  readonly tufRoots?: TufRootSource | undefined;
}

export interface LoadedPolicy {
  readonly engine: PolicyEngine;
  /** "verified (key id)", "signed, not verified" or "unsigned". */
  readonly signature: string;
  /** What another thread needs to build the same engine (evaluation threads). */
  readonly snapshot: PolicySnapshot;
}

/** The bundle as read and verified, and the configuration: plain data, for structured clone. */
export interface PolicySnapshot {
  readonly bundle: Omit<Bundle, 'files'>;
  readonly config: PolicyConfig;
}

export async function loadPolicy(source: PolicySource): Promise<LoadedPolicy> {
  const config = source.config === undefined ? {} : await loadConfigFile(source.config);
  const bundle =
    source.archive === undefined
      ? await readBundleFile(source.bundle)
      : await readBundleArchive(source.archive, source.bundle);
  let signature = bundle.files.has('.signatures.json') ? 'signed, not verified' : 'unsigned';
  if (source.verification !== undefined) {
    // With a key configured, an unsigned bundle is refused (GHSA-g2pf-6v5v-qcc8).
    const verified = await verifyBundleSignature(
      bundle,
      await verificationOptions(source.verification),
    );
    signature = `verified (key id ${verified.keyId})`;
  }
  const name = source.config ?? 'configuration';
  const keys = await loadSignatureKeys(config, name);
  const trustRoots = await loadTrustRoots(config, name, source.tufRoots);
  const compiled = compileSignatures(config, keys, trustRoots, name);
  const engine = await PolicyEngine.create(
    bundle,
    compiled.config,
    keys,
    trustRoots,
    compiled.verifications,
  );
  const { files: _files, ...rest } = bundle;
  // Evaluation threads build their engines from the compiled configuration: the policy there
  // must name entries by the same ids the registry facts are gathered for here.
  return { engine, signature, snapshot: { bundle: rest, config: compiled.config } };
}

/** Every trust root `trustRoots` names, read now; each `signatures` entry's root must be one. */
export async function loadTrustRoots(
  config: PolicyConfig,
  source: string,
  tuf?: TufRootSource,
): Promise<ReadonlyMap<string, LoadedTrustRoot>> {
  const roots = new Map<string, LoadedTrustRoot>();
  if (isRecord(config.trustRoots)) {
    for (const [name, root] of Object.entries(config.trustRoots)) {
      try {
        if (typeof root === 'string') {
          roots.set(name, await loadTrustRoot(name, root));
        } else if (isRecord(root)) {
          if (tuf === undefined) {
            throw new ConfigError(
              `trust root ${name} is kept in a TUF repository, which this command does not read`,
            );
          }
          roots.set(name, await tuf(name, tufSpec(root, config)));
        }
      } catch (error) {
        throw new ConfigError(`${source}: trustRoots: ${describeThrown(error)}`, { cause: error });
      }
    }
  }
  const known = (name: unknown, at: string) => {
    if (typeof name === 'string' && !roots.has(name)) {
      throw new ConfigError(
        `${source}: ${at}: no trust root named ${JSON.stringify(name)} (trustRoots has: ${[...roots.keys()].join(', ') || 'none'})`,
      );
    }
  };
  const check = (part: JsonObject, at: string) => {
    if (!Array.isArray(part.signatures)) return;
    for (const [i, entry] of part.signatures.entries()) {
      if (!isRecord(entry)) continue;
      known(entry.trustRoot, `${at}signatures[${i}].trustRoot`);
      const identities = Array.isArray(entry.identities) ? entry.identities : [];
      for (const [j, identity] of identities.entries()) {
        if (isRecord(identity)) {
          known(identity.trustRoot, `${at}signatures[${i}].identities[${j}].trustRoot`);
        }
      }
    }
  };
  check(config, '');
  if (isRecord(config.namespaces)) {
    for (const [pattern, part] of Object.entries(config.namespaces)) {
      if (isRecord(part)) check(part, `namespaces[${JSON.stringify(pattern)}].`);
    }
  }
  return roots;
}

/**
 * A validated `trustRoots` map entry as the TUF client wants it: the target Sigstore's
 * repositories serve by default, and the private network where `registries.<mirror host>`
 * allows one (the mirror is contacted under the registries' address rules).
 */
function tufSpec(root: JsonObject, config: PolicyConfig): TufRootSpec {
  const mirror = String(root.mirror);
  const host = new URL(mirror).host.toLowerCase();
  const settings = isRecord(config.registries)
    ? Object.entries(config.registries).find(([name]) => name.toLowerCase() === host)?.[1]
    : undefined;
  return {
    mirror,
    root: String(root.root),
    target: typeof root.target === 'string' ? root.target : 'trusted_root.json',
    network: isRecord(settings) && settings.network === 'private' ? 'private' : 'public',
  };
}

/** Every key the `signatures` entries name (top level and overrides), read and parsed now. */
export async function loadSignatureKeys(
  config: PolicyConfig,
  source: string,
): Promise<ReadonlyMap<string, PublicKeyRef>> {
  const refs = new Set<string>();
  const collect = (part: JsonObject) => {
    if (!Array.isArray(part.signatures)) return;
    for (const entry of part.signatures) {
      if (isRecord(entry) && Array.isArray(entry.keys)) {
        for (const key of entry.keys) if (typeof key === 'string') refs.add(key);
      }
    }
  };
  collect(config);
  if (isRecord(config.namespaces))
    for (const part of Object.values(config.namespaces)) if (isRecord(part)) collect(part);
  const keys = new Map<string, PublicKeyRef>();
  for (const ref of refs) {
    try {
      keys.set(ref, await loadKey(ref));
    } catch (error) {
      throw new ConfigError(`${source}: signatures: ${describeThrown(error)}`, { cause: error });
    }
  }
  return keys;
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
