/**
 * The layering of src/, checked by `make test` (dependency-cruiser). Read from the bottom:
 *
 *   shared   logger, metrics, file watching, JSON helpers, paths, the shared errors
 *   review   AdmissionReview / ImageReview in and out, image references, the policy input,
 *            decisions — pure translations        → shared
 *   registry the OCI distribution API: HTTP with an address policy, auth, cosign
 *            signatures, the fact cache             → shared
 *   policy   bundles, signatures, configuration, the wasm engine, loader, holder
 *                                                  → registry, review, shared
 *   distribution  remote bundle sources: oci://, OPA bundle services, the last good
 *            bundle on disk, polling            → policy, registry, review, shared
 *   telemetry decision logs and status to a collector (OPA's APIs)  → shared
 *   tls      certificates, development CA, control-plane files     → shared
 *   check    manifests reviewed offline            → policy, review, shared
 *   audit    what the cluster runs, judged; PolicyReports, leader election
 *                                                  → policy, review, shared
 *   server   the HTTPS gateway, health, reloads, workers, registry facts
 *                     → distribution, policy, registry, review, telemetry, tls, shared
 *   commands one module per CLI command            → everything above
 *   cli.ts   the entry point: Node.js version, env, signals, exit codes → commands, shared
 *
 * docs/architecture.md draws the same picture; change both together.
 */
const layer = (name, mayUse) => {
  const all = [
    'shared',
    'review',
    'registry',
    'policy',
    'distribution',
    'telemetry',
    'tls',
    'check',
    'audit',
    'server',
    'commands',
  ];
  const forbidden = all.filter((other) => other !== name && !mayUse.includes(other));
  return {
    name: `${name}-layer`,
    comment: `src/${name}/ may import only ${mayUse.length ? mayUse.map((l) => `src/${l}/`).join(', ') : 'nothing else in src/'} (and itself); see docs/architecture.md`,
    severity: 'error',
    from: { path: `^src/${name}/` },
    to: { path: `^src/(${forbidden.join('|')})/|^src/cli[.]ts$` },
  };
};

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment:
        'an import cycle: modules that need each other belong in one module, or the shared part below both',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    layer('shared', []),
    layer('review', ['shared']),
    layer('registry', ['shared']),
    layer('policy', ['registry', 'review', 'shared']),
    layer('distribution', ['policy', 'registry', 'review', 'shared']),
    layer('telemetry', ['shared']),
    layer('tls', ['shared']),
    layer('check', ['policy', 'review', 'shared']),
    layer('audit', ['policy', 'review', 'shared']),
    layer('server', ['distribution', 'policy', 'registry', 'review', 'telemetry', 'tls', 'shared']),
    layer('commands', [
      'audit',
      'check',
      'distribution',
      'telemetry',
      'policy',
      'registry',
      'review',
      'server',
      'tls',
      'shared',
    ]),
    {
      name: 'only-the-cli-runs-commands',
      comment: "commands/ are the CLI's: reuse what they call from the layer below instead",
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/(cli[.]ts|commands/)' },
      to: { path: '^src/commands/' },
    },
    {
      name: 'nothing-imports-the-entry-point',
      comment: 'cli.ts has process-wide side effects (arguments, signals, exit codes)',
      severity: 'error',
      from: {},
      to: { path: '^src/cli[.]ts$' },
    },
    {
      name: 'src-stands-alone',
      comment: 'the shipped code never imports tests or their helpers',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^test/' },
    },
    {
      name: 'no-dev-dependencies-in-src',
      comment: 'the image installs production dependencies only (npm ci --omit=dev)',
      severity: 'error',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'no-orphans',
      comment: 'a module nothing imports is dead code (or a forgotten entry point)',
      severity: 'error',
      from: { orphan: true, path: '^src/', pathNot: ['^src/cli[.]ts$', '[.]cjs$'] },
      to: {},
    },
    {
      name: 'resolvable',
      comment: 'every import resolves to a file or an installed package',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.d.ts'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
