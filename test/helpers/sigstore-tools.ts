/**
 * The servers test/e2e/build-sigstore-tools.sh builds (`make sigstore-tools`) — Rekor v2,
 * the timestamp authority, Fulcio — found through its --check mode, which builds nothing;
 * cosign, crane and the registries come from registry-tools.ts. Without ava, like the
 * other helpers the benchmarks use (sigstore-test.ts has the test function).
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './cli.ts';
import { findRegistryTools, type RegistryTools } from './registry-tools.ts';

export interface SigstoreTools {
  /** rekor-tiles' cmd/rekor-server/posix: Rekor v2, its log in a directory. */
  readonly rekor: string;
  /** test/tools/timestamp-server: the timestamp authority's server code (RFC 3161). */
  readonly tsa: string;
  readonly fulcio: string;
}

const SCRIPT = join(ROOT, 'test', 'e2e', 'build-sigstore-tools.sh');

let found: Promise<SigstoreTools | string> | undefined;

/** The servers, or why they can't be used (not built: `make sigstore-tools`). */
export function findSigstoreTools(): Promise<SigstoreTools | string> {
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
      resolve({ rekor: path('REKOR'), tsa: path('TSA'), fulcio: path('FULCIO') });
    });
  });
  return found;
}

export async function sigstoreTools(): Promise<SigstoreTools & RegistryTools> {
  const [sigstore, registry] = await Promise.all([findSigstoreTools(), findRegistryTools()]);
  if (typeof sigstore === 'string') throw new Error(sigstore);
  if (typeof registry === 'string') throw new Error(registry);
  return { ...registry, ...sigstore };
}
