/**
 * Signing as people do, against a Sigstore bed (sigstore.ts): the real cosign with its
 * defaults, given only the bed's signing config and trusted root in place of the public
 * instance's (which cosign would fetch through TUF):
 *
 * - cosign 3.1.3 `sign` / `attest` with `--signing-config F --trusted-root F --yes` and either
 *   `--key cosign.key` or `--identity-token <JWT>` (keyless: Fulcio issues a certificate for
 *   the token's identity). Nothing else: the bundle format (Sigstore bundle v0.3, DSSE), the
 *   Rekor upload (the config's Rekor v2) and the RFC 3161 timestamp (when the config names a
 *   TSA) are cosign's defaults. `--trusted-root` matters: with a signing config cosign loads
 *   trusted material, from TUF unless given a file. `--yes` only answers the upload prompt.
 * - cosign 2.6.5 (the legacy `sha256-<hex>.sig` tag, which cosign 3 no longer writes), as far
 *   as it can offline: no Rekor v2 (cosign 2 writes legacy signatures to Rekor v1 only, which
 *   needs Trillian and MySQL), so `--tlog-upload=false`; keyless through `--fulcio-url` with
 *   `--insecure-skip-verify` (there is no CT log, so no SCT to check) and, from the bed's TSA,
 *   an RFC 3161 timestamp (`--timestamp-server-url`) — the only proof of signing time a
 *   keyless signature without a log has. See cosign2Sign.
 *
 * cosign runs in the registry's sandbox (private HOME and TUF_ROOT, a dead proxy for
 * everything but loopback), so reaching for anything public fails at once.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeyPair } from './cosign.ts';
import type { TestRegistry } from './registry.ts';
import { type RunResult, runTool } from './registry-tools.ts';
import type { SigstoreBed } from './sigstore.ts';

type Registry = Pick<TestRegistry, 'env' | 'tools'>;
type Bed = Pick<SigstoreBed, 'dir' | 'signingConfig' | 'trustedRoot' | 'fulcio' | 'tsa'>;

/** A cosign key pair (`--key`), or an OIDC identity token for keyless signing. */
export type Signer =
  | { readonly key: Pick<KeyPair, 'privateKey'> }
  | { readonly identityToken: string };

/**
 * `--key`, or `--identity-token FILE`: cosign takes the flag's value as a path when such a
 * file could exist, and a JWT with Fulcio's GitHub claims is longer than a file name may be
 * ("open eyJ…: file name too long"), so the token goes through a file, as in CI.
 */
async function signerArgs(bed: Pick<SigstoreBed, 'dir'>, signer: Signer): Promise<string[]> {
  if ('key' in signer) return ['--key', signer.key.privateKey];
  const file = join(bed.dir, `token-${randomBytes(6).toString('hex')}.jwt`);
  await writeFile(file, signer.identityToken, { mode: 0o600 });
  return ['--identity-token', file];
}

const bedArgs = (bed: Bed) => [
  '--signing-config',
  bed.signingConfig,
  '--trusted-root',
  bed.trustedRoot,
];

/** cosign 3 `sign`: a bundle v0.3 referrer of `reference` (best by digest). */
export async function cosignSign(
  bed: Bed,
  registry: Registry,
  reference: string,
  signer: Signer,
): Promise<RunResult> {
  const args = ['sign', ...(await signerArgs(bed, signer)), ...bedArgs(bed), '--yes', reference];
  return runTool(registry.tools.cosign, args, registry.env);
}

export interface Predicate {
  /** cosign's `--type`: a short name (`slsaprovenance1`, `vuln`…) or a predicate type URI. */
  readonly type: string;
  readonly predicate: unknown;
}

/** cosign 3 `attest`: the predicate in an in-toto statement about `reference`, as a bundle. */
export async function cosignAttest(
  bed: Bed,
  registry: Registry,
  reference: string,
  signer: Signer,
  predicate: Predicate,
): Promise<RunResult> {
  const file = join(bed.dir, `predicate-${randomBytes(6).toString('hex')}.json`);
  await writeFile(file, JSON.stringify(predicate.predicate));
  const args = [
    'attest',
    '--predicate',
    file,
    '--type',
    predicate.type,
    ...(await signerArgs(bed, signer)),
  ];
  return runTool(
    registry.tools.cosign,
    [...args, ...bedArgs(bed), '--yes', reference],
    registry.env,
  );
}

/**
 * A SLSA v1 provenance predicate (https://slsa.dev/provenance/v1) for a build of
 * `repository` at `ref` by `builderId`: what GitHub's and slsa-github-generator's look like,
 * trimmed to the fields policies read.
 */
export function slsaProvenance(build: {
  builderId: string;
  repository: string;
  ref?: string;
  sha?: string;
}): Predicate {
  const { builderId, repository, ref = 'refs/heads/main', sha = 'a'.repeat(40) } = build;
  return {
    type: 'slsaprovenance1',
    predicate: {
      buildDefinition: {
        buildType: 'https://actions.github.io/buildtypes/workflow/v1',
        externalParameters: {
          workflow: {
            ref,
            repository: `https://github.com/${repository}`,
            path: '.github/workflows/release.yml',
          },
        },
        internalParameters: { github: { event_name: 'push', repository_id: '100001' } },
        resolvedDependencies: [
          { uri: `git+https://github.com/${repository}@${ref}`, digest: { gitCommit: sha } },
        ],
      },
      runDetails: {
        builder: { id: builderId },
        metadata: {
          invocationId: `https://github.com/${repository}/actions/runs/3000003/attempts/1`,
        },
      },
    },
  };
}

/**
 * cosign 2.6.5 `sign` writing the legacy `sha256-<hex>.sig` tag: with a key, no log; keyless,
 * a Fulcio certificate (annotations `dev.sigstore.cosign/certificate`, `…/chain`) and, when
 * the bed has a TSA, an RFC 3161 timestamp (`dev.sigstore.cosign/rfc3161timestamp`).
 */
export async function cosign2Sign(
  bed: Bed,
  registry: Registry,
  reference: string,
  signer: Signer,
): Promise<RunResult> {
  const args = ['sign', ...(await signerArgs(bed, signer)), '--tlog-upload=false', '--yes'];
  if (!('key' in signer)) {
    if (bed.fulcio === undefined)
      throw new TypeError('cosign2Sign: keyless needs a bed with Fulcio');
    args.push(
      '--fulcio-url',
      bed.fulcio.url,
      '--insecure-skip-verify',
      '--trusted-root',
      bed.trustedRoot,
    );
  }
  if (bed.tsa !== undefined) args.push('--timestamp-server-url', bed.tsa.url);
  return runTool(registry.tools.cosign2, [...args, reference], registry.env);
}

/** Who must have signed, for `cosign verify`: a public key file, or a keyless identity. */
export type Expectation =
  | { readonly key: string }
  | { readonly identity: string; readonly issuer: string };

/**
 * cosign 3 `verify` (or `verify-attestation --type T`) against the bed's trusted root only.
 * `--insecure-ignore-sct`: the bed's certificates have no SCT (no CT log).
 */
export function cosignVerify(
  bed: Pick<SigstoreBed, 'trustedRoot'>,
  registry: Registry,
  reference: string,
  expected: Expectation,
  options: { attestationType?: string; extraArgs?: readonly string[] } = {},
): Promise<RunResult> {
  const command =
    options.attestationType === undefined
      ? ['verify']
      : ['verify-attestation', '--type', options.attestationType];
  const who =
    'key' in expected
      ? ['--key', expected.key]
      : [
          '--certificate-identity',
          expected.identity,
          '--certificate-oidc-issuer',
          expected.issuer,
          '--insecure-ignore-sct',
        ];
  const args = [
    ...command,
    ...who,
    '--trusted-root',
    bed.trustedRoot,
    ...(options.extraArgs ?? []),
  ];
  return runTool(registry.tools.cosign, [...args, reference], registry.env);
}
