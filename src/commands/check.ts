/**
 * `imagegate check -f FILE|DIR|-`: exit 0 all allowed, 1 something denied (or, with
 * --offline, left unverified), 2 bad input.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { checkManifest, formatResults, summarize } from '../check/check.ts';
import { type Manifest, parseManifests } from '../check/manifests.ts';
import type { FactsStep } from '../policy/engine.ts';
import { PolicyHolder } from '../policy/holder.ts';
import { loadPolicy, type VerificationSettings } from '../policy/loader.ts';
import { type RegistryOptions, startRegistryFacts } from '../server/registry-facts.ts';
import { standaloneTufRoots, type TufRootsOptions } from '../server/tuf-roots.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import { InputError } from '../shared/input-error.ts';
import { createLogger } from '../shared/logger.ts';
import { createMetrics } from '../shared/metrics.ts';
import { defaultBundlePath } from '../shared/paths.ts';
import type { Command } from './command.ts';
import {
  parseFlags,
  REGISTRY_FLAGS,
  registryOptions,
  TUF_FLAGS,
  tufOptions,
  VERIFICATION_FLAGS,
  verificationSettings,
} from './flags.ts';

const USAGE = `usage: imagegate check -f FILE|DIR|- [flags]

Reviews Kubernetes manifests (multi-document YAML, JSON, kind: List) as the API server
would on CREATE: the mutating policy first, its patch applied, then the validating one.

flags:
  -f, --file FILE|DIR|-   manifests: a file, every *.yaml, *.yml, *.json below a directory,
                          or - for standard input (repeatable)
  --bundle PATH           policy bundle (.tar.gz or a directory holding one)
                          (default: the embedded bundles/imagegate.tar.gz)
  --config FILE           policy configuration (YAML or JSON)
  -o, --output human|json
  -n, --namespace NAME    namespace for manifests that name none (default "default")
  --verification-key FILE (and --verification-key-id, --verification-scope,
                          --verification-alg) refuse a bundle serve would refuse
  --registry-credentials FILE, --registry-ca FILE, --registry-timeout-ms N,
  --registry-budget-ms N  registry access for pinDigests and signatures, as for serve
  --tuf-cache-dir DIR     trust roots kept in TUF repositories, as for serve: a verified
                          copy there is used while it holds, else the mirror is asked
  --offline               ask no registry: images that pinDigests or signatures need
                          facts about are listed as unverified, and make the exit code 1;
                          TUF-kept trust roots come from the cache alone
  --allow-unverified      with --offline: unverified images alone do not fail the check
  -h, --help              this text

Every flag can also be given as IMAGEGATE_<FLAG> (IMAGEGATE_CONFIG=...).
Exit codes: 0 everything allowed; 1 something denied, or left unverified by --offline
(unless --allow-unverified); 2 bad input (flags, manifests, bundle, configuration).
`;

const FLAGS = {
  file: { type: 'string', short: 'f', multiple: true },
  bundle: { type: 'string' },
  config: { type: 'string' },
  output: { type: 'string', short: 'o' },
  namespace: { type: 'string', short: 'n' },
  offline: { type: 'boolean' },
  'allow-unverified': { type: 'boolean' },
  ...VERIFICATION_FLAGS,
  ...REGISTRY_FLAGS,
  'tuf-cache-dir': TUF_FLAGS['tuf-cache-dir'],
} as const;

interface CheckCommandOptions {
  readonly files: readonly string[];
  readonly bundle: string;
  readonly config: string | undefined;
  readonly verification?: VerificationSettings | undefined;
  readonly output: 'human' | 'json';
  readonly namespace: string;
  /** Registry access; with `offline`, none (images needing facts are listed unverified). */
  readonly registry?: RegistryOptions | undefined;
  readonly offline?: boolean | undefined;
  /** Trust roots kept in TUF repositories (the cache alone with offline). */
  readonly tuf?: TufRootsOptions | undefined;
  /** With offline: images left unverified do not make the exit code 1. */
  readonly allowUnverified?: boolean | undefined;
  readonly stdin: () => Promise<string>;
  readonly write: (text: string) => void;
  readonly tell: (text: string) => void;
}

const MANIFEST_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

async function manifestFiles(path: string): Promise<string[]> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (error) {
    throw new InputError(`cannot read ${path}: ${describeThrown(error)}`, { cause: error });
  }
  if (!info.isDirectory()) return [path];
  const entries = await readdir(path, { withFileTypes: true });
  const nested = await Promise.all(
    entries
      .filter((e) => !e.name.startsWith('.'))
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .map((e) => {
        const full = join(path, e.name);
        if (e.isDirectory()) return manifestFiles(full);
        return Promise.resolve(MANIFEST_EXTENSIONS.has(extname(e.name)) ? [full] : []);
      }),
  );
  return nested.flat();
}

async function readManifests(options: CheckCommandOptions): Promise<Manifest[]> {
  const manifests: Manifest[] = [];
  for (const file of options.files) {
    if (file === '-') {
      manifests.push(...parseManifests(await options.stdin(), '<stdin>'));
      continue;
    }
    for (const path of await manifestFiles(file)) {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (error) {
        throw new InputError(`cannot read ${path}: ${describeThrown(error)}`, { cause: error });
      }
      manifests.push(...parseManifests(text, path));
    }
  }
  return manifests;
}

/** Returns the exit code; errors it cannot map (bad bundle, bad config) propagate. */
async function runCheck(options: CheckCommandOptions): Promise<number> {
  if (options.files.length === 0) throw new InputError('check needs -f FILE, DIR or -');
  const tuf = await standaloneTufRoots(
    options.tuf ?? {},
    options.registry ?? {},
    createLogger('silent'),
  );
  const { engine } = await loadPolicy({ ...options, tufRoots: tuf.source }).finally(() =>
    tuf.close(),
  );
  for (const warning of engine.config.warnings) options.tell(`imagegate: warning: ${warning}\n`);
  const manifests = await readManifests(options);
  let facts: FactsStep | undefined;
  let close = async () => {};
  if (options.offline !== true && engine.registries.size > 0) {
    const policy = new PolicyHolder();
    policy.swap(engine, options.bundle);
    const registry = await startRegistryFacts(options.registry ?? {}, {
      policy,
      metrics: createMetrics({ processMetrics: false }),
      logger: createLogger('silent'),
      intervalMs: 60_000,
    });
    facts = (e, input, decision) => registry.withFacts(e, input, decision);
    close = () => registry.close();
  }
  const results = [];
  try {
    for (const [i, m] of manifests.entries()) {
      results.push(await checkManifest(engine, m, i, { namespace: options.namespace, facts }));
    }
  } finally {
    await close();
  }
  const summary = summarize(results);
  const unverifiedFails = summary.unverified > 0 && options.allowUnverified !== true;
  if (options.output === 'json') {
    options.write(`${JSON.stringify({ revision: engine.revision, summary, results }, null, 2)}\n`);
  } else {
    options.write(formatResults(results));
    if (unverifiedFails) {
      options.write(
        `exit 1: ${summary.unverified} object(s) have images --offline could not verify (--allow-unverified accepts that)\n`,
      );
    }
  }
  return summary.denied > 0 || unverifiedFails ? 1 : 0;
}

export const command: Command = {
  usage: USAGE,
  flags: FLAGS,
  run(args, context) {
    const flags = parseFlags('check', args, FLAGS, context.env);
    const allowUnverified = flags.boolean('allow-unverified');
    const offline = flags.boolean('offline');
    if (allowUnverified && !offline) throw new InputError('--allow-unverified needs --offline');
    return runCheck({
      files: flags.list('file'),
      bundle: flags.string('bundle') ?? defaultBundlePath(),
      config: flags.string('config'),
      verification: verificationSettings(flags),
      output: flags.choice('output', ['human', 'json'], 'human'),
      namespace: flags.string('namespace') ?? 'default',
      registry: registryOptions(flags),
      offline,
      tuf: tufOptions(flags, offline),
      allowUnverified,
      stdin: context.stdin,
      write: context.write,
      tell: context.tell,
    });
  },
};
