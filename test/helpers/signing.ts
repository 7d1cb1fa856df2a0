/**
 * Signed bundles for tests: keys from node:crypto, bundles signed by the pinned OPA CLI,
 * hand-made tokens (jose) for attacks OPA would never produce, and OPA's own verifier
 * (`opa build -b bundle.tar.gz --verification-key ...`) as the reference to agree with.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CompactSign, importPKCS8 } from 'jose';
import forge from 'node-forge';
import { MUTATE_ENTRYPOINT, VALIDATE_ENTRYPOINT } from '../../src/policy/engine.ts';
import { arrayField, isRecord, type JsonObject } from '../../src/shared/json.ts';
import { packageRoot } from '../../src/shared/paths.ts';
import { OPA } from './bundles.ts';

const run = promisify(execFile);

export type SigningAlgorithm = 'RS256' | 'PS256' | 'ES256' | 'EdDSA';

export interface TestKey {
  readonly algorithm: SigningAlgorithm;
  readonly privatePem: string;
  readonly publicPem: string;
}

export function testKey(algorithm: SigningAlgorithm): TestKey {
  const pems = { publicKeyEncoding: { type: 'spki', format: 'pem' } } as const;
  const privateKeyEncoding = { type: 'pkcs8', format: 'pem' } as const;
  const pair =
    algorithm === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256', ...pems, privateKeyEncoding })
      : algorithm === 'EdDSA'
        ? generateKeyPairSync('ed25519', { ...pems, privateKeyEncoding })
        : generateKeyPairSync('rsa', { modulusLength: 2048, ...pems, privateKeyEncoding });
  return { algorithm, privatePem: pair.privateKey, publicPem: pair.publicKey };
}

/** A self-signed X.509 certificate for an RSA test key (OPA accepts a CERTIFICATE block). */
export function certificateFor(key: TestKey): string {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(key.publicPem);
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date();
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  const attrs = [{ name: 'commonName', value: 'imagegate bundle signer' }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.sign(forge.pki.privateKeyFromPem(key.privatePem), forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

/**
 * Policy data that exercises canonical JSON: number lexemes OPA keeps (`1.0`, `1e3`),
 * characters Go escapes or not (`<&>`, U+2028, a control character), and keys whose byte
 * order differs from UTF-16 order (U+E000 sorts before U+1F600 in UTF-8, after in UTF-16).
 */
export const SIGNED_DATA_JSON = `{
  "imagegate": {"config": {"trustedRegistries": ["registry.example.com"], "denyLatest": true}},
  "signing": {
    "one": 1.0, "thousand": 1e3, "big": 12345678901234567890123, "negativeZero": -0,
    "text": "caf\\u00e9 <&> \\u2028 \\u0001 \\ud83d\\ude00 \\"quoted\\"",
    "\\ue000": "private use", "\\ud83d\\ude00": "astral"
  }
}
`;

export interface BuildOptions {
  /** Written to a `--claims-file` (e.g. `{scope}`); OPA then omits the `keyid` claim. */
  readonly claims?: Record<string, unknown>;
  /** The `kid` OPA puts in the header (`--verification-key-id`, default "default"). */
  readonly keyId?: string;
}

/** `opa build -t wasm -b` over a copy of the repository's rego/, signed with `key`. */
export async function buildSignedBundle(key: TestKey, options: BuildOptions = {}): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'imagegate-signed-'));
  try {
    await cp(join(packageRoot(), 'rego'), join(dir, 'rego'), { recursive: true });
    await writeFile(join(dir, 'rego', 'data.json'), SIGNED_DATA_JSON);
    await writeFile(join(dir, 'signing.pem'), key.privatePem);
    const args = ['build', '-t', 'wasm', '-b', 'rego', '--ignore', '*_test.rego'];
    args.push('-e', VALIDATE_ENTRYPOINT, '-e', MUTATE_ENTRYPOINT, '--revision', 'signed');
    args.push('--signing-key', 'signing.pem', '--signing-alg', key.algorithm);
    if (options.keyId !== undefined) args.push('--verification-key-id', options.keyId);
    if (options.claims !== undefined) {
      await writeFile(join(dir, 'claims.json'), JSON.stringify(options.claims));
      args.push('--claims-file', 'claims.json');
    }
    await run(OPA, [...args, '-o', 'bundle.tar.gz'], { cwd: dir });
    return await readFile(join(dir, 'bundle.tar.gz'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface OpaVerification {
  readonly publicKey: string;
  readonly algorithm?: string;
  readonly keyId?: string;
  readonly scope?: string;
}

/**
 * OPA's verdict on a bundle: undefined when `opa build` accepts it, else OPA's message.
 * The flags are those of `opa run`, so this is how OPA itself would load the bundle.
 */
export async function opaVerdict(
  bundle: Buffer,
  options: OpaVerification,
): Promise<string | undefined> {
  const dir = await mkdtemp(join(tmpdir(), 'imagegate-opa-verify-'));
  try {
    await writeFile(join(dir, 'in.tar.gz'), bundle);
    await writeFile(join(dir, 'key.pem'), options.publicKey);
    const args = ['build', '-b', 'in.tar.gz', '--verification-key', 'key.pem'];
    args.push('--signing-alg', options.algorithm ?? 'RS256', '-o', 'out.tar.gz');
    if (options.keyId !== undefined) args.push('--verification-key-id', options.keyId);
    if (options.scope !== undefined) args.push('--scope', options.scope);
    await run(OPA, args, { cwd: dir });
    return undefined;
  } catch (error) {
    // OPA prints its load errors on stdout.
    const output = ['stdout', 'stderr'].map((stream) =>
      isRecord(error) && typeof error[stream] === 'string' ? error[stream] : '',
    );
    return output.join('').trim() || String(error);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A compact JWS over `payload`, signed by `key` (or by an HMAC secret for attacks). */
export async function signToken(
  payload: unknown,
  key: TestKey | { readonly hmacSecret: Uint8Array },
  header: Record<string, unknown> = {},
): Promise<string> {
  const bytes = new TextEncoder().encode(JSON.stringify(payload));
  if ('hmacSecret' in key) {
    return new CompactSign(bytes)
      .setProtectedHeader({ alg: 'HS256', ...header })
      .sign(key.hmacSecret);
  }
  const privateKey = await importPKCS8(key.privatePem, key.algorithm);
  return new CompactSign(bytes)
    .setProtectedHeader({ alg: key.algorithm, kid: 'default', ...header })
    .sign(privateKey);
}

/** An unsigned token (`alg: none`), as an attacker would write it. */
export function unsecuredToken(payload: unknown): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'none', kid: 'default' })}.${part(payload)}.`;
}

/** The first token in a bundle's `.signatures.json`. */
export function tokenOf(files: ReadonlyMap<string, Buffer>): string {
  const config: unknown = JSON.parse(files.get('.signatures.json')?.toString() ?? '{}');
  const tokens = isRecord(config) ? arrayField(config, 'signatures') : undefined;
  const token = tokens?.[0];
  if (typeof token !== 'string') throw new Error('bundle has no signature to read');
  return token;
}

/** The (unverified) claims of that token. */
export function claimsOf(files: ReadonlyMap<string, Buffer>): JsonObject {
  const payload = tokenOf(files).split('.')[1] ?? '';
  const claims: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  if (!isRecord(claims)) throw new Error('the token payload is not an object');
  return claims;
}

export function signaturesFile(...tokens: string[]): Buffer {
  return Buffer.from(JSON.stringify({ signatures: tokens }));
}
