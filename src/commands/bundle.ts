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
import type { Command } from './command.ts';
import { parseFlags, VERIFICATION_FLAGS, verificationSettings } from './flags.ts';

const USAGE = `usage: imagegate bundle configmap --bundle FILE [flags]
       imagegate bundle inspect FILE [flags]

configmap   prints a ConfigMap carrying the bundle (binaryData), after loading it as the
            gateway would, so a bundle the gateway refuses never reaches the cluster
  --bundle FILE         the bundle (.tar.gz, or a directory holding one)
  --name NAME           (default imagegate-bundle)
  -n, --namespace NAME  (default imagegate-system)
  --key NAME            the file name in the mounted directory (default imagegate.tar.gz)
  --verification-key FILE (and --verification-key-id, --verification-scope,
                        --verification-alg) refuse what serve would refuse

inspect     revision, roots, entrypoints, files and signature status
  -o, --output human|json
  --verification-key FILE (and -key-id, -scope, -alg) verify the signature

  -h, --help            this text

Every flag can also be given as IMAGEGATE_<FLAG>.
Exit codes: 0 done; 1 (inspect) the bundle does not load or its signature is invalid;
2 bad input.
`;

const CONFIGMAP_FLAGS = {
  bundle: { type: 'string' },
  name: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  key: { type: 'string' },
  ...VERIFICATION_FLAGS,
} as const;

const INSPECT_FLAGS = { output: { type: 'string', short: 'o' }, ...VERIFICATION_FLAGS } as const;

/** A ConfigMap's whole payload must stay under 1 MiB (etcd's object limit is near it). */
const CONFIGMAP_LIMIT = 1024 * 1024;

interface ConfigMapOptions {
  readonly bundle: string;
  readonly name: string;
  readonly namespace: string;
  readonly key: string;
  readonly verification?: VerificationSettings | undefined;
}

async function bundleConfigMap(options: ConfigMapOptions): Promise<string> {
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

interface Inspection {
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

async function inspectBundle(
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

function formatInspection(i: Inspection): string {
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

export const command: Command = {
  usage: USAGE,
  flags: { ...CONFIGMAP_FLAGS, ...INSPECT_FLAGS },
  async run(args, context) {
    const [sub, ...rest] = args;
    if (sub === 'configmap') {
      const flags = parseFlags('bundle', rest, CONFIGMAP_FLAGS, context.env);
      const file = flags.string('bundle');
      if (file === undefined) throw new InputError('bundle configmap needs --bundle FILE');
      context.write(
        await bundleConfigMap({
          bundle: file,
          name: flags.string('name') ?? 'imagegate-bundle',
          namespace: flags.string('namespace') ?? 'imagegate-system',
          key: flags.string('key') ?? 'imagegate.tar.gz',
          verification: verificationSettings(flags),
        }),
      );
      return 0;
    }
    if (sub === 'inspect') {
      const flags = parseFlags('bundle', rest, INSPECT_FLAGS, context.env, { positionals: true });
      const [file, ...extra] = flags.positionals;
      if (file === undefined || extra.length > 0)
        throw new InputError('bundle inspect needs exactly one FILE');
      const output = flags.choice('output', ['human', 'json'], 'human');
      const inspection = await inspectBundle(file, verificationSettings(flags));
      context.write(
        output === 'json'
          ? `${JSON.stringify(inspection, null, 2)}\n`
          : formatInspection(inspection),
      );
      return inspection.loads && inspection.signatureValid ? 0 : 1;
    }
    throw new InputError(
      'usage: imagegate bundle configmap --bundle FILE | imagegate bundle inspect FILE',
    );
  },
};
