/**
 * Signed bundles built by the pinned OPA CLI, tampered with, and verified twice: by
 * verifyBundleSignature and by OPA's own verifier (`opa build --verification-key`). Every
 * case asserts that both agree, except the few where imagegate is deliberately stricter.
 */
import { createHash, createPublicKey } from 'node:crypto';
import test from 'ava';
import { readBundleArchive } from '../../src/policy/bundle.ts';
import { BundleError } from '../../src/policy/bundle-error.ts';
import {
  bundleFileDigest,
  type VerificationOptions,
  verifyBundleSignature,
} from '../../src/policy/bundle-signature.ts';
import type { JsonObject } from '../../src/shared/json.ts';
import { packBundle } from '../helpers/bundles.ts';
import {
  type BuildOptions,
  buildSignedBundle,
  certificateFor,
  claimsOf,
  opaVerdict,
  signaturesFile,
  signToken,
  type TestKey,
  testKey,
  tokenOf,
  unsecuredToken,
} from '../helpers/signing.ts';

const keys = {
  rsa: testKey('RS256'),
  pss: testKey('PS256'),
  ec: testKey('ES256'),
  ed: testKey('EdDSA'),
  otherRsa: testKey('RS256'),
};

const builds = new Map<string, Promise<Buffer>>();

/** One OPA build per key and options, shared by the cases that tamper with it. */
function signed(key: TestKey, options: BuildOptions = {}): Promise<Buffer> {
  const id = `${key.algorithm}:${key.publicPem}:${JSON.stringify(options)}`;
  let build = builds.get(id);
  if (build === undefined) {
    build = buildSignedBundle(key, options);
    builds.set(id, build);
  }
  return build;
}

/** Repacks `bytes` (names with OPA's leading "/") after `edit` changed its files. */
async function repack(
  bytes: Promise<Buffer>,
  edit: (files: Map<string, Buffer>) => void | Promise<void>,
): Promise<Buffer> {
  const files = new Map((await readBundleArchive(await bytes)).files);
  await edit(files);
  return packBundle(files);
}

function replaceIn(files: Map<string, Buffer>, name: string, from: string, to: string): void {
  const text = files.get(name)?.toString('utf8') ?? '';
  if (!text.includes(from)) throw new Error(`${name} has no ${from}`);
  files.set(name, Buffer.from(text.replace(from, to)));
}

/** Re-signs every file of the bundle with `key`, hashing with imagegate's own digests. */
async function resigned(
  bytes: Promise<Buffer>,
  key: TestKey,
  edit: (files: Map<string, Buffer>) => void = () => {},
  algorithm = 'SHA-256',
): Promise<Buffer> {
  return repack(bytes, async (files) => {
    edit(files);
    files.delete('.signatures.json');
    const entries = [...files].map(([name, content]) => ({
      name,
      hash: bundleFileDigest(name, content, algorithm),
      algorithm,
    }));
    files.set('.signatures.json', signaturesFile(await signToken({ files: entries }, key)));
  });
}

/** Re-signs the bundle's own claims with every file entry passed through `edit`. */
function relisted(bytes: Promise<Buffer>, edit: (file: object) => object): Promise<Buffer> {
  return repack(bytes, async (files) => {
    const claims = claimsOf(files);
    const listed: unknown[] = Array.isArray(claims.files) ? claims.files : [];
    const entries = listed.map((file) =>
      edit(typeof file === 'object' && file !== null ? file : {}),
    );
    const token = await signToken({ ...claims, files: entries }, keys.rsa);
    files.set('.signatures.json', signaturesFile(token));
  });
}

interface Case {
  readonly bundle: () => Promise<Buffer>;
  readonly options: VerificationOptions;
  /** What imagegate says; undefined when the bundle must verify. */
  readonly refused?: RegExp;
  /** Where OPA would accept what imagegate refuses on purpose, and why. */
  readonly stricterThanOpa?: string;
  readonly keyId?: string;
}

/** Verifies with imagegate and with OPA, and checks both verdicts. */
const verifies = test.macro(async (t, c: Case) => {
  const bytes = await c.bundle();
  const bundle = await readBundleArchive(bytes, 'signed.tar.gz');
  const [ours, opa] = await Promise.all([
    verifyBundleSignature(bundle, c.options).catch((error: unknown) => error),
    opaVerdict(bytes, c.options),
  ]);
  if (c.refused === undefined) {
    if (ours instanceof Error) t.fail(ours.message);
    t.like(ours, { keyId: c.keyId ?? 'default', files: bundle.files.size - 1 });
    t.is(opa, undefined, 'OPA accepts it too');
    return;
  }
  t.log(`OPA: ${opa ?? 'accepted'}`);
  t.true(ours instanceof BundleError, String(ours));
  t.regex(ours instanceof Error ? ours.message : '', c.refused);
  if (c.stricterThanOpa === undefined) t.not(opa, undefined, 'OPA refuses it too');
  else t.is(opa, undefined, `OPA accepts it: ${c.stricterThanOpa}`);
});

const rsa = { publicKey: keys.rsa.publicPem } as const;
const withAlg = (key: TestKey) => ({ publicKey: key.publicPem, algorithm: key.algorithm });

for (const key of [keys.rsa, keys.pss, keys.ec, keys.ed]) {
  test(`an OPA-signed ${key.algorithm} bundle verifies`, verifies, {
    bundle: () => signed(key),
    options: withAlg(key),
  });
}

test('the public key may be an X.509 certificate', verifies, {
  bundle: () => signed(keys.rsa),
  options: { publicKey: certificateFor(keys.rsa) },
});

test('the public key may be PKCS#1 (RSA PUBLIC KEY)', verifies, {
  bundle: () => signed(keys.rsa),
  options: {
    publicKey: String(createPublicKey(keys.rsa.publicPem).export({ type: 'pkcs1', format: 'pem' })),
  },
});

test('a configured key id matching the kid verifies', verifies, {
  bundle: () => signed(keys.rsa, { keyId: 'prod' }),
  options: { ...rsa, keyId: 'prod' },
  keyId: 'prod',
});

test('without a configured key id, the kid is reported', verifies, {
  bundle: () => signed(keys.rsa, { keyId: 'prod' }),
  options: rsa,
  keyId: 'prod',
});

test('a scope claim matching the configured scope verifies', verifies, {
  bundle: () => signed(keys.ec, { claims: { scope: 'write' } }),
  options: { ...withAlg(keys.ec), scope: 'write' },
});

test('data.json is hashed as canonical JSON: whitespace and escapes may change', verifies, {
  bundle: () =>
    repack(signed(keys.rsa), (files) => {
      const text = files.get('data.json')?.toString('utf8') ?? '';
      // This data has no "," or ":" inside strings, so spacing them out keeps every value.
      const spaced = text.replaceAll(',', ',\n  ').replaceAll(':', ' : ');
      files.set('data.json', Buffer.from(spaced.replace('\\u003c\\u0026\\u003e', '<&>')));
    }),
  options: rsa,
});

test('.manifest is hashed as canonical JSON: re-indenting it is no change', verifies, {
  bundle: () =>
    repack(signed(keys.rsa), (files) => {
      const manifest: unknown = JSON.parse(files.get('.manifest')?.toString('utf8') ?? '');
      files.set('.manifest', Buffer.from(JSON.stringify(manifest, null, 4)));
    }),
  options: rsa,
});

test('every hash algorithm OPA knows is accepted (here SHA-512-256)', verifies, {
  bundle: () => resigned(signed(keys.rsa), keys.rsa, undefined, 'SHA-512-256'),
  options: rsa,
});

test('MD5 too, as OPA accepts it', verifies, {
  bundle: () => resigned(signed(keys.rsa), keys.rsa, undefined, 'MD5'),
  options: rsa,
});

test('a repeated file entry: the last one counts, as in OPA', verifies, {
  bundle: () =>
    repack(signed(keys.rsa), async (files) => {
      const claims = claimsOf(files);
      const listed: unknown[] = Array.isArray(claims.files) ? claims.files : [];
      const wrong = { name: 'policy.wasm', hash: '00', algorithm: 'SHA-256' };
      const token = await signToken({ ...claims, files: [wrong, ...listed] }, keys.rsa);
      files.set('.signatures.json', signaturesFile(token));
    }),
  options: rsa,
});

test('upper-case hex digests verify, as Go decodes them', verifies, {
  bundle: () =>
    relisted(signed(keys.rsa), (file) => {
      const hash = 'hash' in file && typeof file.hash === 'string' ? file.hash : '';
      return { ...file, hash: hash.toUpperCase() };
    }),
  options: rsa,
});

// --- refusals ---------------------------------------------------------------------------

test('refuses a tampered policy.wasm', verifies, {
  bundle: () =>
    repack(signed(keys.rsa), (files) => {
      const wasm = Buffer.from(files.get('policy.wasm') ?? Buffer.alloc(0));
      wasm[wasm.length - 1] = (wasm[wasm.length - 1] ?? 0) ^ 0xff;
      files.set('policy.wasm', wasm);
    }),
  options: rsa,
  refused: /policy\.wasm: digest mismatch/,
});

test('refuses a tampered data.json value', verifies, {
  bundle: () =>
    repack(signed(keys.rsa), (files) =>
      replaceIn(files, 'data.json', 'registry.example.com', 'evil.example.com'),
    ),
  options: rsa,
  refused: /data\.json: digest mismatch/,
});

test('refuses data.json with 1.0 rewritten as 1 (number lexemes are signed)', verifies, {
  bundle: () =>
    repack(signed(keys.rsa), (files) => replaceIn(files, 'data.json', '"one":1.0', '"one":1')),
  options: rsa,
  refused: /data\.json: digest mismatch/,
});

test('refuses a tampered .manifest', verifies, {
  bundle: () =>
    repack(signed(keys.rsa), (files) =>
      replaceIn(files, '.manifest', '"revision":"signed"', '"revision":"evil"'),
    ),
  options: rsa,
  refused: /\.manifest: digest mismatch/,
});

test('refuses an extra file in the tar', verifies, {
  bundle: () =>
    repack(signed(keys.rsa), (files) => {
      files.set('rego/imagegate/evil.rego', Buffer.from('package imagegate.evil\n'));
    }),
  options: rsa,
  refused: /file rego\/imagegate\/evil\.rego not included in bundle signature/,
});

test('refuses a signed file removed from the tar', verifies, {
  bundle: () =>
    repack(signed(keys.rsa), (files) => {
      files.delete('rego/imagegate/settings/settings.rego');
    }),
  options: rsa,
  refused: /settings\.rego specified in bundle signatures but not found in the target bundle/,
});

test('refuses a bundle whose signature was stripped (GHSA-g2pf-6v5v-qcc8)', verifies, {
  bundle: () =>
    repack(signed(keys.rsa), (files) => {
      files.delete('.signatures.json');
    }),
  options: rsa,
  refused: /bundle signed\.tar\.gz: bundle is not signed \(no \.signatures\.json\)/,
});

test('refuses an empty signatures list', verifies, {
  bundle: () =>
    repack(signed(keys.rsa), (files) => {
      files.set('.signatures.json', signaturesFile());
    }),
  options: rsa,
  refused: /missing JWT \(expected exactly one\)/,
});

test('refuses two signatures in .signatures.json', verifies, {
  bundle: () =>
    repack(signed(keys.rsa), (files) => {
      const token = tokenOf(files);
      files.set('.signatures.json', signaturesFile(token, token));
    }),
  options: rsa,
  refused: /multiple JWTs not supported/,
});

test('refuses a second .signatures.json in a subdirectory', verifies, {
  bundle: () =>
    repack(signed(keys.rsa), (files) => {
      files.set('rego/.signatures.json', files.get('.signatures.json') ?? Buffer.alloc(0));
    }),
  options: rsa,
  refused: /multiple signatures files/,
});

test('refuses a garbage JWS', verifies, {
  bundle: () =>
    repack(signed(keys.rsa), (files) => {
      files.set('.signatures.json', signaturesFile('not-a-jws'));
    }),
  options: rsa,
  refused: /not a compact JWS/,
});

test('refuses a signature plugin imagegate does not have', verifies, {
  bundle: () =>
    repack(signed(keys.rsa), (files) => {
      const config = { signatures: [tokenOf(files)], plugin: 'kms' };
      files.set('.signatures.json', Buffer.from(JSON.stringify(config)));
    }),
  options: rsa,
  refused: /signature plugin "kms" is not supported/,
});

test('refuses a bundle signed by another key', verifies, {
  bundle: () => signed(keys.rsa),
  options: { publicKey: keys.otherRsa.publicPem },
  refused: /signature verification failed/,
});

test('refuses an RSA key for an ES256 bundle', verifies, {
  bundle: () => signed(keys.ec),
  options: { publicKey: keys.rsa.publicPem, algorithm: 'ES256' },
  refused: /the verification key is RSA, but ES256 needs EC P-256/,
});

test('refuses an ES256 bundle where RS256 is configured', verifies, {
  bundle: () => signed(keys.ec),
  options: { publicKey: keys.ec.publicPem },
  refused: /signed with alg ES256, but the verification algorithm is RS256/,
});

test('refuses a scope other than the configured one', verifies, {
  bundle: () => signed(keys.ec, { claims: { scope: 'write' } }),
  options: { ...withAlg(keys.ec), scope: 'read' },
  refused: /scope mismatch: the signature's scope is "write", expected "read"/,
});

test('refuses a scoped signature where no scope is configured', verifies, {
  bundle: () => signed(keys.ec, { claims: { scope: 'write' } }),
  options: withAlg(keys.ec),
  refused: /scope mismatch: the signature's scope is "write", expected ""/,
});

test('refuses a kid other than the configured key id', verifies, {
  bundle: () => signed(keys.rsa, { keyId: 'prod' }),
  options: { ...rsa, keyId: 'staging' },
  refused: /signed with key id "prod", but the verification key id is "staging"/,
  stricterThanOpa: 'a configured keyid overrides the kid (v1/bundle/verify.go)',
});

test('refuses an alg "none" token', verifies, {
  bundle: () =>
    repack(signed(keys.rsa), (files) => {
      files.set('.signatures.json', signaturesFile(unsecuredToken(claimsOf(files))));
    }),
  options: rsa,
  refused: /signed with alg none, but the verification algorithm is RS256/,
});

test('refuses an HS256 token keyed with the public key bytes (alg confusion)', verifies, {
  bundle: () =>
    repack(signed(keys.rsa), async (files) => {
      const hmacSecret = Buffer.from(keys.rsa.publicPem);
      const token = await signToken(claimsOf(files), { hmacSecret }, { kid: 'default' });
      files.set('.signatures.json', signaturesFile(token));
    }),
  options: rsa,
  refused: /signed with alg HS256, but the verification algorithm is RS256/,
});

test('refuses HS256 configured with a PEM key', verifies, {
  bundle: () =>
    repack(signed(keys.rsa), async (files) => {
      const hmacSecret = Buffer.from(keys.rsa.publicPem);
      const token = await signToken(claimsOf(files), { hmacSecret }, { kid: 'default' });
      files.set('.signatures.json', signaturesFile(token));
    }),
  options: { ...rsa, algorithm: 'HS256' },
  refused: /signature algorithm HS256 is not supported/,
  stricterThanOpa: 'OPA would use the PEM text as the HMAC secret',
});

test('refuses a private key given as the verification key', verifies, {
  bundle: () => signed(keys.rsa),
  options: { publicKey: keys.rsa.privatePem },
  refused: /is a private key; give imagegate only the public key/,
  stricterThanOpa: 'OPA derives the public key from a private one',
});

test('refuses a file listed without a hash algorithm', verifies, {
  bundle: () => relisted(signed(keys.rsa), (file) => ({ ...file, algorithm: '' })),
  options: rsa,
  refused: /no hashing algorithm provided for file/,
});

test('refuses a hash algorithm OPA does not know', verifies, {
  bundle: () => relisted(signed(keys.rsa), (file) => ({ ...file, algorithm: 'SHA3-256' })),
  options: rsa,
  refused: /unsupported hashing algorithm: SHA3-256/,
});

test('refuses a delta bundle (patch.json with operations)', verifies, {
  bundle: () =>
    resigned(signed(keys.rsa), keys.rsa, (files) => {
      const patch = { data: [{ op: 'upsert', path: '/x', value: 1 }] };
      files.set('patch.json', Buffer.from(JSON.stringify(patch)));
    }),
  options: rsa,
  refused: /delta bundles do not support signature verification/,
});

// --- JSON decoded as Go's encoding/json decodes it, checked against OPA ----------------

/** `.signatures.json` texts around the bundle's own token, and whether OPA reads them. */
const signatureConfigs: ReadonlyArray<[string, (token: string) => string, RegExp?]> = [
  ['field names match case-insensitively', (token) => `{"Signatures": ["${token}"]}`],
  ['"ſ" folds to "s" in field names', (token) => `{"ſignatures": ["${token}"]}`],
  ['bytes after the JSON value are ignored', (token) => `{"signatures": ["${token}"]} ...`],
  [
    'a later null field wins',
    (token) => `{"signatures": ["${token}"], "signatures": null}`,
    /bundle is not signed/,
  ],
];

for (const [title, text, refused] of signatureConfigs) {
  test(`.signatures.json: ${title}`, verifies, {
    bundle: () =>
      repack(signed(keys.rsa), (files) => {
        files.set('.signatures.json', Buffer.from(text(tokenOf(files))));
      }),
    options: rsa,
    ...(refused === undefined ? {} : { refused }),
  });
}

/** Signed payloads around the bundle's own file list, and whether OPA accepts them. */
const payloads: ReadonlyArray<[string, (claims: JsonObject) => object, RegExp?]> = [
  ['an integer iat', (claims) => ({ ...claims, iat: 1_700_000_000 })],
  ['a fractional iat', (claims) => ({ ...claims, iat: 1.5 }), /"iat" claim is not an integer/],
  ['a numeric iss', (claims) => ({ ...claims, iss: 3 }), /"iss" is not a string/],
  ['a null scope', (claims) => ({ ...claims, scope: null })],
];

for (const [title, payload, refused] of payloads) {
  test(`signature payload: ${title}`, verifies, {
    bundle: () =>
      repack(signed(keys.rsa), async (files) => {
        const token = await signToken(payload(claimsOf(files)), keys.rsa);
        files.set('.signatures.json', signaturesFile(token));
      }),
    options: rsa,
    ...(refused === undefined ? {} : { refused }),
  });
}

test('the deprecated keyid claim names the key when the header has no kid', verifies, {
  bundle: () =>
    repack(signed(keys.rsa), async (files) => {
      const claims = { files: claimsOf(files).files, keyid: 'legacy' };
      const token = await signToken(claims, keys.rsa, { kid: undefined });
      files.set('.signatures.json', signaturesFile(token));
    }),
  options: rsa,
  keyId: 'legacy',
});

// --- canonical JSON, checked against OPA's verifier ------------------------------------

/**
 * A data.json OPA would never write: spacing, escapes of every kind, lone surrogates,
 * invalid UTF-8, duplicate keys, number lexemes, keys whose UTF-8 and UTF-16 orders differ.
 */
const TRICKY_DATA = Buffer.concat([
  Buffer.from(`{ "signing" : { "one" : 1.0 , "exp": 1E+3, "neg": -0.0e-0, "zero": 0,
    "escapes": "\\/ \\u00e9 \\u003c&> \\ud83d\\ude00 \\ud800 \\udc00x \\ud800\\u0041",
    "controls": "\\b\\f\\n\\r\\t \\u001f \\u007f \\u2028\\u2029 \\"",
    "raw": "`),
  Buffer.from([0xff, 0x20, 0xe2, 0x82, 0x20, 0xed, 0xa0, 0x80, 0x20, 0xc0, 0xaf, 0x20]),
  Buffer.from([0xf4, 0x90, 0x80, 0x80, 0x20, 0xc3, 0xa9]),
  Buffer.from(`",
    "dup": 1, "dup": [2], "\\ue000": 1, "\u{1F600}": 2, "a\\u0000b": 3, "": 4,
    "nested": {"z": {}, "y": [], "x": [[[{"deep": null, "t": true, "f": false}]]]}},
  "imagegate": {"config": {"trustedRegistries": ["registry.example.com"]}} }
`),
]);

test('canonical JSON: digests imagegate computes for odd JSON are what OPA verifies', verifies, {
  bundle: () =>
    resigned(signed(keys.rsa), keys.rsa, (files) => {
      files.set('data.json', TRICKY_DATA);
    }),
  options: rsa,
});

test('canonical JSON: the same odd data.json hashed naively is refused by both', verifies, {
  bundle: () =>
    repack(signed(keys.rsa), async (files) => {
      files.set('data.json', TRICKY_DATA);
      const naive = JSON.stringify(JSON.parse(TRICKY_DATA.toString('utf8')));
      const hash = createHash('sha256').update(naive).digest('hex');
      const entries = [...files]
        .filter(([name]) => name !== '.signatures.json')
        .map(([name, content]) => ({
          name,
          hash: name === 'data.json' ? hash : bundleFileDigest(name, content),
          algorithm: 'SHA-256',
        }));
      files.set('.signatures.json', signaturesFile(await signToken({ files: entries }, keys.rsa)));
    }),
  options: rsa,
  refused: /data\.json: digest mismatch/,
});

/** `json` hashes to the SHA-256 of `expected`, the form OPA's hash.go writes. */
const canonical = test.macro((t, json: string | Buffer, expected: string) => {
  const bytes = typeof json === 'string' ? Buffer.from(json) : json;
  const want = createHash('sha256').update(expected, 'utf8').digest('hex');
  t.is(bundleFileDigest('data.json', bytes), want);
});

test(
  'canonical JSON: numbers are kept as written',
  canonical,
  '[1.0, 1e3, -0, 1E+3, 0.10]',
  '[1.0,1e3,-0,1E+3,0.10]',
);
test(
  'canonical JSON: keys sort by UTF-8 bytes',
  canonical,
  '{"\u{1F600}":1,"\uE000":2,"b":3,"B":4}',
  '{"B":4,"b":3,"\uE000":2,"\u{1F600}":1}',
);
test('canonical JSON: the last duplicate key wins', canonical, '{"a":1,"a":2}', '{"a":2}');
test(
  'canonical JSON: HTML characters stay, U+2028 is escaped',
  canonical,
  '"\\u003c&>\u2028"',
  '"<&>\\u2028"',
);
test(
  'canonical JSON: control characters are escaped the Go way',
  canonical,
  '"\\u0001\\b\\u007f"',
  '"\\u0001\\b\u007f"',
);
test(
  'canonical JSON: a lone surrogate escape becomes U+FFFD',
  canonical,
  '"\\ud800x"',
  '"\uFFFDx"',
);
test(
  'canonical JSON: each invalid UTF-8 byte becomes U+FFFD',
  canonical,
  Buffer.from([0x22, 0xe2, 0x82, 0x22]),
  '"\uFFFD\uFFFD"',
);
test('canonical JSON: a UTF-8 BOM is skipped', canonical, '\uFEFF{"a":1}', '{"a":1}');

test('nesting as deep as Go allows (10000) is hashed without recursion', (t) => {
  const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
  t.is(bundleFileDigest('a/data.json', Buffer.from(deep)).length, 64);
  t.throws(() => bundleFileDigest('data.json', Buffer.from(`[${deep}]`)), {
    instanceOf: BundleError,
    message: /exceeded max depth/,
  });
});

test('data.json is structured by base name; other JSON files are raw bytes', (t) => {
  const a = Buffer.from('{"a": 1}');
  const b = Buffer.from('{"a":1}');
  t.is(bundleFileDigest('x/y/data.json', a), bundleFileDigest('x/y/data.json', b));
  t.is(bundleFileDigest('x/.manifest', a), bundleFileDigest('x/.manifest', b));
  t.not(bundleFileDigest('x/other.json', a), bundleFileDigest('x/other.json', b));
  t.throws(() => bundleFileDigest('data.yaml', Buffer.from('a: 1')), {
    instanceOf: BundleError,
    message: /data\.yaml is not valid JSON/,
  });
});
