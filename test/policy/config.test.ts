import test from 'ava';
import { parseConfig, sourceProblem } from '../../src/policy/config.ts';
import { ConfigError } from '../../src/policy/config-error.ts';

test('the SPEC example configuration parses as written', (t) => {
  const config = parseConfig(
    `trustedRegistries: [registry.example.com, ghcr.io/acme, "localhost:5000"]
denyLatest: true
pullPolicy: Always
rewriteRegistry: null
rewriteIgnore: []
imagePullSecret: null
imagePullSecretMode: replace
defaultStorageClass: null
excludeNamespaces: [kube-system]
enforcement: deny
breakGlass: false
namespaces:
  "team-*": {trustedRegistries: [registry.example.com/teams], enforcement: warn}
`,
    'spec.yaml',
  );
  t.deepEqual(config.trustedRegistries, ['registry.example.com', 'ghcr.io/acme', 'localhost:5000']);
  t.deepEqual(config.namespaces, {
    'team-*': { trustedRegistries: ['registry.example.com/teams'], enforcement: 'warn' },
  });
});

test('JSON is accepted, and an empty document is an empty configuration', (t) => {
  t.deepEqual(parseConfig('{"denyLatest": false}', 'c.json'), { denyLatest: false });
  t.deepEqual(parseConfig('', 'empty.yaml'), {});
  t.deepEqual(parseConfig('# only a comment\n', 'comment.yaml'), {});
});

const rejects = test.macro<[string, RegExp]>({
  exec(t, text, message) {
    const error = t.throws(() => parseConfig(text, 'bad.yaml'), { instanceOf: ConfigError });
    t.regex(error?.message ?? '', message);
    t.true(error?.message.startsWith('bad.yaml: '));
  },
  title: (_, text) => `rejects ${JSON.stringify(text)}`,
});

test(rejects, 'trustedRegistries: nginx', /trustedRegistries: must be a list/);
test(rejects, 'trustedRegistries: [nginx]', /trustedRegistries\[0\]: "nginx" does not start/);
test(
  rejects,
  'trustedRegistries: ["https://registry.example.com"]',
  /does not start with a registry host/,
);
test(rejects, 'trustedRegistries: ["ghcr.io/Acme"]', /invalid repository path component "Acme"/);
test(rejects, 'trustedRegistries: [""]', /must be a non-empty string/);
test(
  rejects,
  'trustedRegistries: [registry.example.com//x]',
  /invalid repository path component ""/,
);
test(rejects, 'denyLatest: "yes"', /denyLatest: must be true or false/);
test(rejects, 'pullPolicy: always', /pullPolicy: must be one of Always, IfNotPresent, Never/);
test(rejects, 'enforcement: audit', /enforcement: must be one of deny, warn, dryrun/);
test(rejects, 'imagePullSecretMode: merge', /imagePullSecretMode: must be one of replace, append/);
test(rejects, 'imagePullSecret: Reg_Cred', /imagePullSecret: must be a lower-case DNS subdomain/);
test(
  rejects,
  'rewriteRegistry: mirror',
  /rewriteRegistry: "mirror" does not start with a registry host/,
);
test(
  rejects,
  'rewriteRegistry: harbor.example.com/Proxy',
  /invalid repository path component "Proxy"/,
);
test(rejects, 'rewriteIgnore: [docker.io, "nginx"]', /rewriteIgnore\[1\]/);
test(rejects, 'mirrors: [docker.io]', /mirrors: must be a map of source to target/);
test(rejects, 'mirrors: {docker.io: proxy}', /mirrors\["docker.io"\]: "proxy" does not start/);
test(rejects, 'mirrors: {nginx: harbor.example.com}', /mirrors\["nginx"\]: "nginx" does not start/);
test(rejects, 'disallowedTags: ["-dev"]', /disallowedTags\[0\]: "-dev" is not an image tag/);
test(rejects, 'requireDigest: "yes"', /requireDigest: must be true or false/);
for (const glob of [
  '"*"',
  '"*/tools/*"',
  '"*.example.com/tools/*"',
  '"registry.example.com"',
  '"reg?stry.example.com/x"',
]) {
  test(
    rejects,
    `exemptImages: [${glob}]`,
    /exemptImages\[0\]: .* must start with a registry host written out/,
  );
}

test('the keys real mirrors and peers need parse as written', (t) => {
  const config = parseConfig(
    `rewriteRegistry: harbor.example.com/dockerhub-proxy
rewriteIgnore: [registry.example.com, ghcr.io/acme]
mirrors:
  docker.io: harbor.example.com/dockerhub-proxy
  "localhost:5000": harbor.example.com/local
  "[::1]:5000": harbor.example.com/loopback6
disallowedTags: [latest, dev, main]
requireDigest: true
exemptImages: ["registry.example.com/tools/*", "ghcr.io/acme/debug:**"]
namespaces:
  "team-*": {requireDigest: false, disallowedTags: [], exemptImages: [], mirrors: {}}
`,
    'mirrors.yaml',
  );
  t.is(config.rewriteRegistry, 'harbor.example.com/dockerhub-proxy');
  t.deepEqual(Object.keys(config.mirrors as object), ['docker.io', 'localhost:5000', '[::1]:5000']);
  t.deepEqual(config.disallowedTags, ['latest', 'dev', 'main']);
});
test(rejects, 'excludeNamespaces: [Kube-System]', /excludeNamespaces\[0\]/);
test(rejects, 'trustedRegistry: [registry.example.com]', /unknown key "trustedRegistry"/);
test(
  rejects,
  'namespaces: {"team-*": {excludeNamespaces: [x]}}',
  /namespaces\["team-\*"\]: unknown key "excludeNamespaces"/,
);
test(
  rejects,
  'namespaces: {"Team A": {}}',
  /namespaces\["Team A"\]: must be a namespace name or a glob/,
);
test(rejects, 'namespaces: [a]', /namespaces: must be a map/);
test(rejects, '- a\n- b', /the configuration must be a map/);
test(rejects, 'denyLatest: true\ndenyLatest: false', /not valid YAML or JSON/);
test(rejects, 'trustedRegistries: [a', /not valid YAML or JSON/);
test(rejects, '{"__proto__": {"denyLatest": false}}', /unknown key "__proto__"/);

test('a source is a host, optionally with whole repository path components', (t) => {
  for (const ok of [
    'registry.example.com',
    'REGISTRY.example.com',
    'localhost',
    'localhost:5000',
    'ghcr.io/acme',
    'ghcr.io/acme/',
    '[::1]:5000/x',
    'registry:5000',
  ]) {
    t.is(sourceProblem(ok), undefined, ok);
  }
  for (const bad of [
    'nginx',
    'library/nginx',
    'ghcr.io/acme:1.0',
    'ghcr.io/acme@sha256',
    'ghcr .io',
    'ghcr.io/a b',
  ]) {
    t.not(sourceProblem(bad), undefined, bad);
  }
});

for (const value of ['0', '-1', '1.5', '"100"', '2000000', 'null']) {
  test(rejects, `maxImages: ${value}`, /maxImages: must be a whole number from 1 to 1000000/);
}
test(
  rejects,
  'namespaces: {"team-*": {maxImages: 0}}',
  /namespaces\["team-\*"\]\.maxImages: must be/,
);

test('maxImages is accepted at the top and per namespace', (t) => {
  const config = parseConfig('maxImages: 5000\nnamespaces: {small: {maxImages: 10}}\n', 'c.yaml');
  t.is(config.maxImages, 5000);
  t.deepEqual(config.namespaces, { small: { maxImages: 10 } });
});

for (const value of ['0', '1.5', '"8"', '200000']) {
  test(rejects, `maxLookups: ${value}`, /maxLookups: must be a whole number from 1 to 100000/);
}
test(
  rejects,
  'namespaces: {"ci-*": {registries: {harbor.corp.example: {network: private}}}}',
  /namespaces\["ci-\*"\]: unknown key "registries"/,
);
test(rejects, 'registries: [harbor.corp.example]', /registries: must be a map of registry/);
test(
  rejects,
  'registries: {harbor.corp.example/proj: {network: private}}',
  /registries\["harbor.corp.example\/proj"\]: must be a registry host/,
);
test(
  rejects,
  'registries: {harbor.corp.example: {network: internal}}',
  /registries\["harbor.corp.example"\]\.network: must be one of public, private/,
);
test(
  rejects,
  'registries: {harbor.corp.example: {authHosts: ["https://sso.example.com"]}}',
  /authHosts\[0\]: "https:\/\/sso.example.com" is not a host/,
);
test(
  rejects,
  'registries: {harbor.corp.example: {privateNetwork: true}}',
  /unknown key "privateNetwork" \(known: network, authHosts\)/,
);

test('maxLookups per namespace; registries at the top level', (t) => {
  const config = parseConfig(
    `maxLookups: 64
namespaces: {"ci-*": {maxLookups: 8}}
registries:
  harbor.corp.example: {network: private, authHosts: [sso.corp.example, "auth.corp.example:8443"]}
  registry.registry.svc.cluster.local:5000: {network: private}
`,
    'c.yaml',
  );
  t.is(config.maxLookups, 64);
  t.deepEqual(config.registries, {
    'harbor.corp.example': {
      network: 'private',
      authHosts: ['sso.corp.example', 'auth.corp.example:8443'],
    },
    'registry.registry.svc.cluster.local:5000': { network: 'private' },
  });
});

test('pinDigests and signatures parse as SPEC writes them, overrides included', (t) => {
  const config = parseConfig(
    `pinDigests: pods
signatures:
  - images: [registry.example.com/prod, "registry.example.com/*/tools"]
    keys: [/etc/imagegate/keys/release.pub]
namespaces:
  "team-*": {pinDigests: false, signatures: []}
`,
    'signatures.yaml',
  );
  t.is(config.pinDigests, 'pods');
  t.deepEqual(config.signatures, [
    {
      images: ['registry.example.com/prod', 'registry.example.com/*/tools'],
      keys: ['/etc/imagegate/keys/release.pub'],
    },
  ]);
});
test(rejects, 'pinDigests: true', /pinDigests: must be false, pods or all/);
test(rejects, 'pinDigests: templates', /pinDigests: must be false, pods or all/);
test(rejects, 'signatures: {images: [a.io]}', /signatures: must be a list/);
test(
  rejects,
  'signatures: [{images: [a.io/x]}]',
  /signatures\[0\]: needs keys or identities \(a signature by whom\?\)/,
);
test(
  rejects,
  'signatures: [{images: [], keys: [/k.pub]}]',
  /signatures\[0\]\.images: must be a non-empty list/,
);
test(
  rejects,
  'signatures: [{images: ["*.example.com/prod"], keys: [/k.pub]}]',
  /signatures\[0\]\.images\[0\]: "\*\.example\.com\/prod" must start with a registry host written out/,
);
test(
  rejects,
  'signatures: [{images: [a.io/x], keys: [release.pub]}]',
  /signatures\[0\]\.keys\[0\]: "release.pub" must be an absolute path to a PEM public key, or the PEM itself/,
);
test(
  rejects,
  'signatures: [{images: [a.io/x], keys: ["-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----"]}]',
  /an inline key must be one PEM "PUBLIC KEY" block/,
);
test('keyless identities parse beside keys, with every setting of an entry', (t) => {
  const config = parseConfig(
    `trustRoots: {public-good: /etc/imagegate/trust/public-good.json, github: /etc/imagegate/trust/github.json}
signatures:
  - images: [ghcr.io/acme]
    trustRoot: public-good
    keys: [/etc/imagegate/keys/release.pub]
    identities:
      - issuer: https://token.actions.githubusercontent.com
        subject: "https://github.com/acme/*/.github/workflows/release.yml@refs/tags/v*"
        extensions: {sourceRepositoryURI: https://github.com/acme/app, buildTrigger: push}
      - issuerRegExp: 'https://gitlab\\.example\\.com'
        subjectRegExp: 'https://gitlab\\.example\\.com/acme/.+'
        trustRoot: github
    threshold: 2
    require: either
    sct: false
    acceptIndexSignature: true
    attestations: [slsaprovenance1, {type: "https://cosign.sigstore.dev/attestation/vuln/v1", required: false}]
`,
    'keyless.yaml',
  );
  t.like(config.signatures, [{ threshold: 2, require: 'either', sct: false }]);
});
const keyless = (entry: string) => `signatures: [{images: [a.io/x], trustRoot: r, ${entry}}]`;
const identity = (fields: string) => keyless(`identities: [{${fields}}]`);
for (const [config, message] of [
  [identity('subject: s'), /identities\[0\]: needs exactly one of issuer and issuerRegExp/],
  [identity('issuer: i'), /identities\[0\]: needs exactly one of subject and subjectRegExp/],
  [
    identity('issuer: i, subject: s, subjectRegExp: s'),
    /needs exactly one of subject and subjectRegExp/,
  ],
  [identity('issuer: i, subjectRegExp: "(unclosed"'), /subjectRegExp: not a regular expression/],
  [
    identity('issuer: i, subject: s, extensions: {repository: x}'),
    /unknown Fulcio extension "repository"/,
  ],
  [
    identity('issuer: i, subject: s, extensions: {buildTrigger: 7}'),
    /extensions\.buildTrigger: must be a non-empty string/,
  ],
  [identity('issuer: i, subject: s, email: x'), /unknown key "email"/],
  [
    'signatures: [{images: [a.io/x], identities: [{issuer: i, subject: s}]}]',
    /identities\[0\]: needs a trust root \(its own trustRoot, or the entry's\)/,
  ],
  [
    keyless('keys: [/k.pub], require: sometimes'),
    /require: must be one of tlog, timestamp, either, both, none/,
  ],
  [keyless('keys: [/k.pub], threshold: 2'), /threshold: 2 signers cannot sign: the entry has 1/],
  [keyless('keys: [/k.pub], attestations: [{required: true}]'), /attestations\[0\]: needs a type/],
  [keyless('keys: [/k.pub], rekor: https://rekor.example.com'), /unknown key "rekor"/],
] as const) {
  test(rejects, config, message);
}
test(rejects, 'signatures: [{images: [a.io/x], keys: [/k.pub], mode: x}]', /unknown key "mode"/);

test(
  rejects,
  'trustRoots: {bed: relative/root.json}',
  /trustRoots\["bed"\]: must be the absolute path/,
);
test(rejects, 'trustRoots: {Bed_1: /r.json}', /trustRoots\["Bed_1"\]: must be a trust root name/);
test('a trust root kept in a TUF repository parses beside one from a file', (t) => {
  const config = parseConfig(
    `trustRoots:
  file: /etc/imagegate/trust/bed.json
  public-good: {mirror: "https://tuf-repo-cdn.sigstore.dev", root: /etc/imagegate/tuf/public-good.json}
  github: {mirror: "https://tuf-repo.github.com", root: /etc/imagegate/tuf/github.json, target: trusted_root.json}
  local: {mirror: "http://127.0.0.1:8080/tuf/", root: /r.json}
  local6: {mirror: "http://[::1]:8080", root: /r.json, target: sigstore/trusted_root.json}
`,
    'tuf.yaml',
  );
  t.like(config.trustRoots, { 'public-good': { mirror: 'https://tuf-repo-cdn.sigstore.dev' } });
});
for (const [root, message] of [
  ['{root: /r.json}', /trustRoots\["m"\]: needs mirror/],
  ['{mirror: "https://tuf.example.com"}', /trustRoots\["m"\]: needs root/],
  [
    '{mirror: "https://tuf.example.com", root: r.json}',
    /root: must be the absolute path of the TUF root\.json/,
  ],
  [
    '{mirror: "http://tuf.example.com", root: /r.json}',
    /mirror: "http:\/\/tuf\.example\.com" must be https:\/\/ \(http:\/\/ only on a loopback address\)/,
  ],
  ['{mirror: "http://10.0.0.1", root: /r.json}', /must be https:\/\//],
  ['{mirror: "ftp://127.0.0.1", root: /r.json}', /must be https:\/\//],
  ['{mirror: "not a url", root: /r.json}', /mirror: "not a url" is not a URL/],
  [
    '{mirror: "https://u:p@tuf.example.com", root: /r.json}',
    /must carry no credentials, query or fragment/,
  ],
  [
    '{mirror: "https://tuf.example.com/?a=b", root: /r.json}',
    /must carry no credentials, query or fragment/,
  ],
  [
    '{mirror: "https://tuf.example.com", root: /r.json, target: ../etc/passwd}',
    /target: must be a TUF target name/,
  ],
  [
    '{mirror: "https://tuf.example.com", root: /r.json, target: /abs.json}',
    /target: must be a TUF target name/,
  ],
  [
    '{mirror: "https://tuf.example.com", root: /r.json, refresh: 1h}',
    /trustRoots\["m"\]: unknown key "refresh" \(known: mirror, root, target\)/,
  ],
] as const) {
  test(rejects, `trustRoots: {m: ${root}}`, message);
}
test(
  rejects,
  'signatures: [{images: [a.io/x], keys: [/k.pub], trustRoot: 7}]',
  /signatures\[0\]\.trustRoot: must be a trust root name/,
);
test(
  rejects,
  'namespaces: {prod: {trustRoots: {bed: /r.json}}}',
  /namespaces\["prod"\]: unknown key "trustRoots"/,
);
