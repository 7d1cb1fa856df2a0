/**
 * A real, private Sigstore for tests, each one owned by the test that starts it (torn down
 * with it), on 127.0.0.1, offline: Rekor v2, the timestamp authority, Fulcio and an OIDC
 * issuer (sigstore-servers.ts, oidc-issuer.ts), started only when asked for — a key-signing
 * test with a transparency log needs Rekor alone (about 0.5 s to start all four). cosign
 * 3.1.3 then describes the bed in the two files cosign and sigstore-go take in place of the
 * public instance's TUF targets:
 *
 * - `cosign trusted-root create --rekor url=…,public-key=…,start-time=…,origin=127.0.0.1
 *   [--fulcio url=…,certificate-chain=…] [--tsa url=…,certificate-chain=…]` → trusted_root.json
 *   (application/vnd.dev.sigstore.trustedroot+json;version=0.1): what verifiers are given.
 *   With `origin`, the log's `logId` is the key ID its checkpoints are signed under
 *   (rekor-tiles pkg/note KeyHash): for Ed25519 a hash of origin, algorithm and key, which
 *   the v1-style ID (SHA-256 of the key's DER) is not; for ECDSA the two are the same.
 * - `cosign signing-config create --rekor url=…,api-version=2,… --rekor-config ANY
 *   [--fulcio …,api-version=1 --oidc-provider …] [--tsa …,api-version=1 --tsa-config ANY]`
 *   → signing_config.json (v0.2): what signers are given (sigstore-sign.ts).
 *
 * Verifying what the bed signed from Node — the calls the production verifier can copy
 * (@sigstore/verify 4.1.3, @sigstore/bundle 5.0, @sigstore/protobuf-specs 0.5; run by
 * sigstore-verify.ts, measured by test/registry/sigstore-{bed,attest}.test.ts):
 *
 *   const root = TrustedRoot.fromJSON(JSON.parse(trustedRootJson));  // protobuf-specs
 *   const material = toTrustMaterial(root, keyFinder);                // keyFinder: keyed only
 *   new Verifier(material, options).verify(toSignedEntity(bundleFromJSON(bundleJson)), policy);
 *
 * - Every cosign 3 bundle (sign and attest, keyed or keyless) is a DSSE envelope whose Rekor
 *   v2 entry is kind `hashedrekord` version `0.0.2` over SHA-256 of the envelope's PAE, with
 *   an inclusion proof and a signed checkpoint, no inclusion promise, no integrated time.
 * - key + Rekor v2: `keyFinder = () => ({ publicKey: createPublicKey(pem), validFor: () =>
 *   true })` — ignore the bundle's hint (base64 SHA-256 of the key's DER); options
 *   `{ tlogThreshold: 1, ctlogThreshold: 0, timestampThreshold: 0 }`: with no TSA there is no
 *   timestamp at all (threshold 1 → TIMESTAMP_ERROR "expected 1 timestamps, got 0").
 *   The log's key must be in the trust material: `tlogs: []` with `tlogThreshold: 0` does not
 *   skip the entry, it fails it (TLOG_INCLUSION_PROOF_ERROR) — issue 22's refused bundles.
 *   Another root's log: TLOG_INCLUSION_PROOF_ERROR; another key: SIGNATURE_ERROR.
 * - keyless (Fulcio) + Rekor v2 + TSA: `toTrustMaterial(root)`; options `{ tlogThreshold: 1,
 *   ctlogThreshold: 0 (no CT log here: no SCT), timestampThreshold: 1 }` — the RFC 3161
 *   timestamp is the only time the certificate's 10-minute validity is checked at; policy
 *   `{ subjectAlternativeName, extensions: { issuer } }` (another SAN or issuer:
 *   PolicyError UNTRUSTED_SIGNER_ERROR). Fulcio's other extensions (source repository
 *   1.3.6.1.4.1.57264.1.12, ref .14…) come back in `signer.identity.oids` as DER
 *   UTF8Strings (two header bytes, then the text).
 * - cosign's own verification needs only `--trusted-root F` besides `--key` or
 *   `--certificate-identity … --certificate-oidc-issuer … --insecure-ignore-sct`.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type OidcIssuer, startOidcIssuer } from './oidc-issuer.ts';
import { DEAD_PROXY, type RegistryTools, runTool } from './registry-tools.ts';
import {
  type CertificateService,
  type Rekor,
  type RekorKeyType,
  startFulcio,
  startRekor,
  startTimestampAuthority,
} from './sigstore-servers.ts';
import { type SigstoreTools, sigstoreTools } from './sigstore-tools.ts';
import { type Teardown, tempDir } from './teardown.ts';

export interface SigstoreBedOptions {
  /** Rekor v2 (default true); without it the signing config names no transparency log. */
  readonly rekor?: boolean;
  /** The checkpoint key's type (default ECDSA P-256; public Rekor v2 uses Ed25519). */
  readonly rekorKey?: RekorKeyType;
  /** Fulcio and the OIDC issuer, for keyless signing (default false). */
  readonly fulcio?: boolean;
  /**
   * The RFC 3161 timestamp authority (default: with Fulcio). cosign 3.1.3 refuses keyless
   * signing against Rekor v2 without one ("a timestamp authority must be provided to request
   * a short-lived certificate that will be logged to Rekor"): a v2 entry has no integrated
   * time, so nothing else would show the certificate was valid when it signed.
   */
  readonly tsa?: boolean;
}

export interface SigstoreBed {
  readonly tools: SigstoreTools & RegistryTools;
  readonly dir: string;
  readonly rekor?: Rekor;
  readonly tsa?: CertificateService;
  readonly fulcio?: CertificateService;
  readonly oidc?: OidcIssuer;
  /** Path of the bed's trusted_root.json (`cosign trusted-root create`). */
  readonly trustedRoot: string;
  /** Path of the bed's signing config (`cosign signing-config create`). */
  readonly signingConfig: string;
  /** Every server's output, for a failing test's log. */
  logs(): string;
}

/** cosign's environment for commands that need no registry: private HOME, dead proxy. */
export function offlineEnv(home: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    TUF_ROOT: join(home, '.sigstore', 'root'),
    HTTPS_PROXY: DEAD_PROXY,
    HTTP_PROXY: DEAD_PROXY,
    COSIGN_PASSWORD: '',
  };
}

export async function startSigstoreBed(
  t: Teardown,
  options: SigstoreBedOptions = {},
): Promise<SigstoreBed> {
  const tools = await sigstoreTools();
  const dir = await tempDir(t, 'imagegate-sigstore-');
  const sub = async (name: string) => {
    const path = join(dir, name);
    await mkdir(path);
    return path;
  };
  const oidc = options.fulcio === true ? await startOidcIssuer(t) : undefined;
  const [rekor, tsa, fulcio] = await Promise.all([
    options.rekor === false
      ? undefined
      : startRekor(t, tools, await sub('rekor'), options.rekorKey),
    (options.tsa ?? options.fulcio === true)
      ? startTimestampAuthority(t, tools, await sub('tsa'))
      : undefined,
    oidc === undefined ? undefined : startFulcio(t, tools, await sub('fulcio'), oidc),
  ]);

  // Validity starts an hour back: a clock a little behind on the signing side still fits.
  const start = new Date(Date.now() - 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z');
  const service = (url: string, apiVersion: number) =>
    `url=${url},api-version=${apiVersion},start-time=${start},operator=imagegate-test`;
  const trustedRoot = join(dir, 'trusted_root.json');
  const signingConfig = join(dir, 'signing_config.json');
  const rootArgs = ['trusted-root', 'create', '--out', trustedRoot];
  const configArgs = ['signing-config', 'create', '--out', signingConfig];
  if (rekor !== undefined) {
    rootArgs.push(
      '--rekor',
      `url=${rekor.url},public-key=${rekor.publicKeyFile},start-time=${start},origin=${rekor.origin}`,
    );
    configArgs.push('--rekor', service(rekor.url, 2), '--rekor-config', 'ANY');
  }
  if (fulcio !== undefined && oidc !== undefined) {
    rootArgs.push('--fulcio', `url=${fulcio.url},certificate-chain=${fulcio.chainFile}`);
    configArgs.push('--fulcio', service(fulcio.url, 1));
    configArgs.push('--oidc-provider', service(oidc.url('github-actions'), 1));
  }
  if (tsa !== undefined) {
    rootArgs.push('--tsa', `url=${tsa.url},certificate-chain=${tsa.chainFile}`);
    configArgs.push('--tsa', service(tsa.url, 1), '--tsa-config', 'ANY');
  }
  const env = offlineEnv(dir);
  await runTool(tools.cosign, rootArgs, env);
  await runTool(tools.cosign, configArgs, env);
  // cosign writes a signing config with no services at all when given none: fine (no tlog).
  await readFile(signingConfig);

  const services = { rekor, tsa, fulcio };
  return {
    tools,
    dir,
    ...(rekor === undefined ? {} : { rekor }),
    ...(tsa === undefined ? {} : { tsa }),
    ...(fulcio === undefined ? {} : { fulcio }),
    ...(oidc === undefined ? {} : { oidc }),
    trustedRoot,
    signingConfig,
    logs: () =>
      Object.entries(services)
        .flatMap(([name, s]) => (s === undefined ? [] : [`== ${name}\n${s.logs()}`]))
        .join('\n'),
  };
}
