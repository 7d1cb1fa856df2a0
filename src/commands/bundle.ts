/**
 * `imagegate bundle configmap` ships a bundle as a ConfigMap (binaryData), after loading it
 * the way the gateway will, so a broken bundle never reaches the cluster;
 * `imagegate bundle inspect` says what a bundle is.
 */
import { readFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { readBundleArchive, readBundleFile, resolveBundlePath } from '../policy/bundle.ts';
import { verifyBundleSignature } from '../policy/bundle-signature.ts';
import { PolicyEngine } from '../policy/engine.ts';
import { type VerificationSettings, verificationOptions } from '../policy/loader.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import { InputError } from '../shared/input-error.ts';

/** A ConfigMap's whole payload must stay under 1 MiB (etcd's object limit is near it). */
const CONFIGMAP_LIMIT = 1024 * 1024;

export interface ConfigMapOptions {
  readonly bundle: string;
  readonly name: string;
  readonly namespace: string;
  readonly key: string;
  readonly verification?: VerificationSettings | undefined;
}

export async function bundleConfigMap(options: ConfigMapOptions): Promise<string> {
  const file = await resolveBundlePath(options.bundle);
  const payload = await readFile(file);
  const bundle = await readBundleArchive(payload, file);
  // Refuse what the gateway would refuse, signature included.
  if (options.verification !== undefined) {
    await verifyBundleSignature(bundle, await verificationOptions(options.verification));
  }
  await PolicyEngine.create(bundle);
  const encoded = payload.toString('base64');
  if (encoded.length > CONFIGMAP_LIMIT - 4096) {
    throw new InputError(
      `bundle ${options.bundle} is ${payload.length} bytes; a ConfigMap holds at most about 760 KiB of binary data`,
    );
  }
  return stringify({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: options.name,
      namespace: options.namespace,
      labels: {
        'app.kubernetes.io/name': 'imagegate',
        'app.kubernetes.io/component': 'policy-bundle',
      },
      annotations: {
        'imagegate.dev/revision': bundle.revision,
        'imagegate.dev/sha256': bundle.digest,
      },
    },
    binaryData: { [options.key]: encoded },
  });
}

export interface Inspection {
  readonly source: string;
  readonly revision: string;
  readonly digest: string;
  readonly roots: readonly string[];
  readonly entrypoints: readonly string[];
  readonly files: readonly { name: string; bytes: number }[];
  readonly signature: string;
  readonly signatureValid: boolean;
  readonly loads: boolean;
  readonly loadError?: string;
}

/**
 * Signature status: "unsigned", "signed (not verified: no --verification-key)",
 * "verified (key id K)" or "INVALID: why" — never a throw, so inspect can show the rest.
 */
async function signatureStatus(
  bundle: Awaited<ReturnType<typeof readBundleFile>>,
  verification: VerificationSettings | undefined,
): Promise<{ status: string; valid: boolean }> {
  const signed = bundle.files.has('.signatures.json');
  if (verification === undefined) {
    return {
      status: signed ? 'signed (not verified: no --verification-key)' : 'unsigned',
      valid: true,
    };
  }
  try {
    const verified = await verifyBundleSignature(bundle, await verificationOptions(verification));
    return { status: `verified (key id ${verified.keyId}, ${verified.files} files)`, valid: true };
  } catch (error) {
    return { status: `INVALID: ${describeThrown(error)}`, valid: false };
  }
}

export async function inspectBundle(
  path: string,
  verification: VerificationSettings | undefined,
): Promise<Inspection> {
  const bundle = await readBundleFile(path);
  let loads = true;
  let loadError: string | undefined;
  let entrypoints = bundle.entrypoints.map((e) => e.entrypoint);
  try {
    entrypoints = [...(await PolicyEngine.create(bundle)).entrypoints];
  } catch (error) {
    loads = false;
    loadError = error instanceof Error ? error.message : String(error);
  }
  return {
    source: bundle.source,
    revision: bundle.revision,
    digest: bundle.digest,
    roots: bundle.roots,
    entrypoints,
    files: [...bundle.files].map(([name, content]) => ({
      name: `/${name}`,
      bytes: content.length,
    })),
    ...(await signatureStatus(bundle, verification).then((s) => ({
      signature: s.status,
      signatureValid: s.valid,
    }))),
    loads,
    ...(loadError === undefined ? {} : { loadError }),
  };
}

export function formatInspection(i: Inspection): string {
  const lines = [
    `bundle:      ${i.source}`,
    `revision:    ${i.revision || '(none)'}`,
    `sha256:      ${i.digest}`,
    `roots:       ${i.roots.map((r) => r || '(all of data)').join(', ')}`,
    `entrypoints: ${i.entrypoints.join(', ') || '(none)'}`,
    `signature:   ${i.signature}`,
    `loads:       ${i.loads ? 'yes (every entrypoint answers a smoke review)' : `no: ${i.loadError ?? ''}`}`,
    'files:',
    ...i.files.map((f) => `  ${f.name} (${f.bytes} bytes)`),
  ];
  return `${lines.join('\n')}\n`;
}
