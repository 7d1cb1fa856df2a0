/**
 * Verifies a signed OPA bundle (`.signatures.json`) the way OPA v1.22 does, so a bundle
 * that `opa run --verification-key` refuses is refused here too. The rules and their
 * sources (github.com/open-policy-agent/opa, tag v1.22.2):
 * - v1/bundle/bundle.go `Reader.Read`, `preProcessBundle`: which files are checked;
 * - v1/bundle/verify.go: the JWT, the key id, the scope, each file's digest;
 * - v1/bundle/hash.go: digests, and the canonical JSON of data.json/.manifest;
 * - cmd/build.go `buildVerificationConfig`: what one `--verification-key` means.
 * Docs: https://www.openpolicyagent.org/docs/management-bundles#signing
 */
import { createHash, createPublicKey, type KeyObject, X509Certificate } from 'node:crypto';
import { compactVerify, decodeProtectedHeader, importSPKI } from 'jose';
import { describeThrown } from '../shared/describe-thrown.ts';
import type { Bundle } from './bundle.ts';
import { BundleError } from './bundle-error.ts';
import { GoNumber, GoObject, type GoValue, goCanonical, goTree, parseGoJson } from './go-json.ts';

export interface VerificationOptions {
  /** PEM: a SPKI or PKCS#1 public key, or an X.509 certificate (v1/bundle/verify.go). */
  readonly publicKey: string;
  /** Like `opa run --verification-key-id`; when set, a token naming another key is refused. */
  readonly keyId?: string;
  /** Like `opa run --scope`: must equal the token's `scope` claim, absent meaning "". */
  readonly scope?: string;
  /** Like `opa run --signing-alg`; RS256 by default, as in OPA. */
  readonly algorithm?: string;
}

export interface VerifiedSignature {
  readonly keyId: string;
  /** How many bundle files the signature covered. */
  readonly files: number;
  readonly scope?: string;
}

/**
 * Asymmetric algorithms only: with HS* the "public" key would be an HMAC secret, the
 * classic confusion attack. The kind is what `describeKey` reports for a fitting key.
 */
const KEY_KINDS: Readonly<Record<string, string>> = {
  RS256: 'RSA',
  RS384: 'RSA',
  RS512: 'RSA',
  PS256: 'RSA',
  PS384: 'RSA',
  PS512: 'RSA',
  ES256: 'EC P-256',
  ES384: 'EC P-384',
  ES512: 'EC P-521',
  EdDSA: 'Ed25519',
};

/** OPA's `HashingAlgorithm` names (v1/bundle/hash.go) → node:crypto names. */
const HASHES: Readonly<Record<string, string>> = {
  MD5: 'md5',
  'SHA-1': 'sha1',
  'SHA-224': 'sha224',
  'SHA-256': 'sha256',
  'SHA-384': 'sha384',
  'SHA-512': 'sha512',
  'SHA-512-224': 'sha512-224',
  'SHA-512-256': 'sha512-256',
};

/** `opa run`'s default `--verification-key-id` (cmd/build.go `defaultPublicKeyID`). */
const DEFAULT_KEY_ID = 'default';

interface SignedFile {
  readonly name: string;
  readonly hash: string;
  readonly algorithm: string;
}

export async function verifyBundleSignature(
  bundle: Pick<Bundle, 'files' | 'source'>,
  options: VerificationOptions,
): Promise<VerifiedSignature> {
  const fail: Fail = (message, cause) => {
    throw new BundleError(`bundle ${bundle.source}: ${message}`, { cause });
  };
  const algorithm = options.algorithm ?? 'RS256';
  const keyKind = KEY_KINDS[algorithm];
  if (keyKind === undefined) {
    const known = Object.keys(KEY_KINDS).join(', ');
    return fail(`signature algorithm ${algorithm} is not supported; use one of ${known}`);
  }
  if (isDeltaBundle(bundle.files, fail)) {
    // v1/bundle/bundle.go Read: delta bundles carry no signature.
    fail('delta bundles do not support signature verification');
  }
  const token = signatureToken(bundle.files, fail);
  const [, payloadPart, ...rest] = token.split('.');
  if (rest.length !== 1 || payloadPart === undefined || !isBase64Url(payloadPart)) {
    return fail(
      'the signature in .signatures.json is not a compact JWS (header.payload.signature)',
    );
  }
  let header: { alg?: unknown; kid?: unknown } = {};
  try {
    header = decodeProtectedHeader(token);
  } catch (error) {
    fail(`the signature's JWS header is unreadable: ${describeThrown(error)}`, error);
  }
  const claims = decodeClaims(Buffer.from(payloadPart, 'base64url'), fail);
  if (header.kid !== undefined && typeof header.kid !== 'string') {
    fail('the signature\'s "kid" header is not a string');
  }
  // verify.go verifyJWTSignature: configured id, then header kid, then the deprecated claim.
  const declared = typeof header.kid === 'string' && header.kid !== '' ? header.kid : claims.keyId;
  if (options.keyId !== undefined && declared !== '' && declared !== options.keyId) {
    // Stricter than OPA, which lets a configured keyid override the token's: with one key,
    // a token naming another key was made for another verifier.
    fail(`signed with key id "${declared}", but the verification key id is "${options.keyId}"`);
  }
  const keyId = options.keyId ?? (declared === '' ? DEFAULT_KEY_ID : declared);
  if (header.alg !== algorithm) {
    // OPA verifies with the configured algorithm whatever the header says (jwsbb.Verify); a
    // header that disagrees is refused here before any key is used (alg confusion, "none").
    fail(`signed with alg ${String(header.alg)}, but the verification algorithm is ${algorithm}`);
  }
  const key = await verificationKey(options.publicKey, algorithm, keyKind, fail);
  // From here on, only what the signature covers: the verified payload, not the one above.
  const verified = await compactVerify(token, key, { algorithms: [algorithm] }).catch(
    (error: unknown) => fail(`signature verification failed: ${describeThrown(error)}`, error),
  );
  const payload = decodeClaims(Buffer.from(verified.payload), fail);
  const scope = options.scope ?? '';
  if (payload.scope !== scope) {
    fail(`scope mismatch: the signature's scope is "${payload.scope}", expected "${scope}"`);
  }
  const count = verifyFiles(bundle.files, payload.files, fail);
  return scope === '' ? { keyId, files: count } : { keyId, files: count, scope };
}

/**
 * The hex digest OPA computes for one bundle file (v1/bundle/verify.go VerifyBundleFile):
 * raw bytes, except data.json, data.yaml, data.yml and .manifest (by base name, anywhere),
 * which are parsed and hashed as canonical JSON (v1/bundle/hash.go walk).
 */
export function bundleFileDigest(name: string, bytes: Buffer, algorithm = 'SHA-256'): string {
  const hashName = HASHES[algorithm];
  if (hashName === undefined) throw new BundleError(`unsupported hashing algorithm: ${algorithm}`);
  const hash = createHash(hashName);
  if (!isStructuredDoc(name)) return hash.update(bytes).digest('hex');
  // util.Unmarshal strips a UTF-8 BOM, then reads JSON (with UseNumber) or else YAML.
  const text = bytes.subarray(0, 3).equals(BOM) ? bytes.subarray(3) : bytes;
  let canonical: string;
  try {
    canonical = parseGoJson(text, goCanonical, 'whole');
  } catch (error) {
    // OPA would fall back to YAML here; imagegate only ever loads JSON, so it refuses.
    throw new BundleError(`/${name} is not valid JSON: ${describeThrown(error)}`, { cause: error });
  }
  return hash.update(canonical, 'utf8').digest('hex');
}

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** Go's filepath.Base on the slash-separated names the tar gives us. */
function baseName(name: string): string {
  const trimmed = name.replace(/\/+$/, '');
  if (trimmed === '') return name === '' ? '.' : '/';
  return trimmed.slice(trimmed.lastIndexOf('/') + 1);
}

function isStructuredDoc(name: string): boolean {
  return ['data.json', 'data.yaml', 'data.yml', '.manifest'].includes(baseName(name));
}

/** bundle.go IsSignaturesFile: matched by base name, so in any directory. */
function isSignaturesFile(name: string): boolean {
  return baseName(name) === '.signatures.json';
}

type Fail = (message: string, cause?: unknown) => never;

function isBase64Url(text: string): boolean {
  return /^[A-Za-z0-9_-]*$/.test(text) && text.length % 4 !== 1;
}

/** A patch.json with operations makes a delta bundle (bundle.go Type, preProcessBundle). */
function isDeltaBundle(files: ReadonlyMap<string, Buffer>, fail: Fail): boolean {
  for (const [name, bytes] of files) {
    if (baseName(name) !== 'patch.json') continue;
    let patch: GoValue = null;
    try {
      patch = parseGoJson(bytes, goTree, 'prefix');
    } catch (error) {
      fail(`bundle load failed on patch decode: ${describeThrown(error)}`, error);
    }
    const data = patch instanceof GoObject ? fieldValues(patch, 'data').at(-1) : undefined;
    if (Array.isArray(data) && data.length > 0) return true;
  }
  return false;
}

/** The one JWS of the one `.signatures.json` (bundle.go preProcessBundle, checkSignatures…). */
function signatureToken(files: ReadonlyMap<string, Buffer>, fail: Fail): string {
  const names = [...files.keys()].filter(isSignaturesFile);
  const [name, second] = names;
  if (second !== undefined) fail(`bundle contains multiple signatures files: ${names.join(', ')}`);
  const bytes = name === undefined ? undefined : files.get(name);
  if (bytes === undefined) {
    // GHSA-g2pf-6v5v-qcc8: with a key configured, an unsigned bundle is a failure.
    return fail('bundle is not signed (no .signatures.json) but a verification key is configured');
  }
  let config: GoValue = null;
  try {
    // Decoded like util.NewJSONDecoder(...).Decode: one value, anything after it ignored.
    config = parseGoJson(bytes, goTree, 'prefix');
  } catch (error) {
    fail(`bundle load failed on signatures decode: ${describeThrown(error)}`, error);
  }
  const signatures = decodeStruct(config, '.signatures.json', fail, (object) => ({
    tokens: sliceField(object, 'signatures', (v) => stringValue(v, 'signatures', fail), fail),
    plugin: stringField(object, 'plugin', fail),
  }));
  const tokens = signatures?.tokens;
  const plugin = signatures?.plugin ?? '';
  if (tokens === undefined && plugin === '') {
    fail('bundle is not signed (.signatures.json lists no signatures)');
  }
  if (plugin !== '' && plugin !== '_default') {
    // verify.go GetVerifier: only OPA's built-in verifier exists here.
    fail(`signature plugin "${plugin}" is not supported; imagegate verifies OPA's default JWTs`);
  }
  const [token, extra] = tokens ?? [];
  if (token === undefined) fail('.signatures.json: missing JWT (expected exactly one)');
  if (extra !== undefined) fail('.signatures.json: multiple JWTs not supported (expected one)');
  return token ?? '';
}

interface Claims {
  readonly files: readonly SignedFile[];
  readonly keyId: string;
  readonly scope: string;
}

/** The JWT payload, decoded like json.Unmarshal into verify.go's DecodedSignature. */
function decodeClaims(bytes: Buffer, fail: Fail): Claims {
  let value: GoValue = null;
  try {
    value = parseGoJson(bytes, goTree, 'whole');
  } catch (error) {
    fail(`the signature's payload is not JSON: ${describeThrown(error)}`, error);
  }
  const decoded = decodeStruct(value, 'signature payload', fail, (object) => {
    const iat = fieldValues(object, 'iat').filter((v) => v !== null);
    if (iat.some((v) => !(v instanceof GoNumber) || !isInt64(v.literal))) {
      fail('the signature\'s "iat" claim is not an integer');
    }
    stringField(object, 'iss', fail);
    const files = sliceField(object, 'files', (v) => decodeFile(v, fail), fail) ?? [];
    return {
      files,
      keyId: stringField(object, 'keyid', fail),
      scope: stringField(object, 'scope', fail),
    };
  });
  return decoded ?? { files: [], keyId: '', scope: '' };
}

function decodeFile(value: GoValue, fail: Fail): SignedFile {
  const file = decodeStruct(value, 'files[]', fail, (object) => ({
    name: stringField(object, 'name', fail),
    hash: stringField(object, 'hash', fail),
    algorithm: stringField(object, 'algorithm', fail),
  }));
  return file ?? { name: '', hash: '', algorithm: '' };
}

/** Every bundle file is listed and matches; every listed file exists (verify.go, bundle.go). */
function verifyFiles(
  files: ReadonlyMap<string, Buffer>,
  signed: readonly SignedFile[],
  fail: Fail,
): number {
  // A map keyed by name, as in VerifyBundleSignature: a repeated name keeps its last entry.
  const pending = new Map(signed.map((file) => [file.name, file]));
  let count = 0;
  for (const [name, bytes] of files) {
    if (isSignaturesFile(name)) continue;
    const file = pending.get(name);
    if (file === undefined) return fail(`file ${name} not included in bundle signature`);
    if (file.algorithm === '') fail(`no hashing algorithm provided for file ${name}`);
    // hex.DecodeString: either case, whole bytes only.
    if (!/^(?:[0-9a-fA-F]{2})*$/.test(file.hash)) fail(`${name}: the signed hash is not hex`);
    let actual = '';
    try {
      actual = bundleFileDigest(name, bytes, file.algorithm);
    } catch (error) {
      fail(describeThrown(error), error);
    }
    const want = file.hash.toLowerCase();
    if (want !== actual) fail(`${name}: digest mismatch (want: ${want}, got: ${actual})`);
    pending.delete(name);
    count += 1;
  }
  if (pending.size > 0) {
    const missing = [...pending.keys()].join(', ');
    fail(`file(s) ${missing} specified in bundle signatures but not found in the target bundle`);
  }
  return count;
}

/** The key types verify.go parseVerificationKey reads; private keys are refused here. */
async function verificationKey(pem: string, algorithm: string, kind: string, fail: Fail) {
  const block = /-----BEGIN ([^\r\n-]+)-----\r?\n[\s\S]*?-----END \1-----/.exec(pem);
  if (block === null) return fail('the verification key is not PEM');
  const [text, type] = block;
  let key: KeyObject | undefined;
  try {
    if (type === 'PUBLIC KEY' || type === 'RSA PUBLIC KEY') key = createPublicKey(text);
    else if (type === 'CERTIFICATE') key = new X509Certificate(text).publicKey;
  } catch (error) {
    fail(`the verification key (${type}) is unreadable: ${describeThrown(error)}`, error);
  }
  if (key === undefined) {
    return fail(
      type?.includes('PRIVATE') === true
        ? 'the verification key is a private key; give imagegate only the public key'
        : `unsupported PEM block type for the verification key: ${type}`,
    );
  }
  const actual = describeKey(key);
  if (actual !== kind) fail(`the verification key is ${actual}, but ${algorithm} needs ${kind}`);
  try {
    return await importSPKI(String(key.export({ type: 'spki', format: 'pem' })), algorithm);
  } catch (error) {
    return fail(`the verification key cannot be used: ${describeThrown(error)}`, error);
  }
}

function describeKey(key: KeyObject): string {
  const curves: Record<string, string> = {
    prime256v1: 'P-256',
    secp384r1: 'P-384',
    secp521r1: 'P-521',
  };
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return 'RSA';
    case 'ec':
      return `EC ${curves[key.asymmetricKeyDetails?.namedCurve ?? ''] ?? 'of another curve'}`;
    case 'ed25519':
      return 'Ed25519';
    default:
      return `of type ${String(key.asymmetricKeyType)}`;
  }
}

function isInt64(literal: string): boolean {
  if (!/^-?\d+$/.test(literal)) return false;
  const value = BigInt(literal);
  return value >= -(2n ** 63n) && value < 2n ** 63n;
}

/**
 * encoding/json's struct field matching: the exact name or one that folds to it, where
 * "ſ" folds to "s" and "K" (Kelvin) to "k" (encoding/json/fold.go); every match is
 * applied in document order, so the last one wins.
 */
function fieldValues(object: GoObject, field: string): GoValue[] {
  const folds = (key: string) =>
    key.length === field.length &&
    [...field].every((f, i) => {
      const k = key[i];
      return (
        k === f || k === f.toUpperCase() || (f === 's' && k === 'ſ') || (f === 'k' && k === 'K')
      );
    });
  return object.entries.filter(([key]) => folds(key)).map(([, value]) => value);
}

/** json.Unmarshal into a struct: null leaves it zero, anything but an object is an error. */
function decodeStruct<T>(
  value: GoValue,
  what: string,
  fail: Fail,
  read: (object: GoObject) => T,
): T | undefined {
  if (value === null) return undefined;
  if (!(value instanceof GoObject)) return fail(`${what} is not a JSON object`);
  return read(value);
}

/** A string field: null is a no-op, as in encoding/json. */
function stringField(object: GoObject, field: string, fail: Fail): string {
  let result = '';
  for (const value of fieldValues(object, field)) {
    if (value !== null) result = stringValue(value, field, fail);
  }
  return result;
}

function stringValue(value: GoValue, field: string, fail: Fail): string {
  if (value === null) return '';
  if (typeof value !== 'string') return fail(`"${field}" is not a string`);
  return value;
}

/** A slice field: null makes it nil (undefined), an array replaces it. */
function sliceField<T>(
  object: GoObject,
  field: string,
  element: (value: GoValue) => T,
  fail: Fail,
): T[] | undefined {
  let result: T[] | undefined;
  for (const value of fieldValues(object, field)) {
    if (value === null) result = undefined;
    else if (Array.isArray(value)) result = value.map(element);
    else fail(`"${field}" is not an array`);
  }
  return result;
}
