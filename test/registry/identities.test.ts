/**
 * Keyless identities as patterns: globs and regular expressions are matched whole, `*`
 * stays within a `/` segment — the bypasses a pattern over a workflow URI invites.
 */
import test from 'ava';
import {
  bounded,
  MAX_STATEMENT_BYTES,
  predicateType,
} from '../../src/registry/sigstore/attestations.ts';
import { compileIdentity, globPattern } from '../../src/registry/sigstore/identities.ts';
import { mostTelling } from '../../src/registry/sigstore/reasons.ts';

const ISSUER = 'https://token.actions.githubusercontent.com';
const claim = (subject: string, extensions: Record<string, string> = {}, issuer = ISSUER) => ({
  issuer,
  subject,
  extensions,
});

const globs: [string, string, boolean][] = [
  [
    'https://github.com/acme/*/.github/workflows/release.yml@refs/tags/v*',
    'https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0',
    true,
  ],
  [
    'https://github.com/acme/*/.github/workflows/release.yml@refs/tags/v*',
    'https://github.com/acme/app/x/.github/workflows/release.yml@refs/tags/v1',
    false,
  ],
  [
    'https://github.com/acme/*/.github/workflows/release.yml@refs/tags/v*',
    'https://github.com/acme-evil/app/.github/workflows/release.yml@refs/tags/v1',
    false,
  ],
  [
    'https://github.com/acme/*',
    'https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main',
    false,
  ],
  [
    'https://github.com/acme/**',
    'https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main',
    true,
  ],
  ['https://github.com/acme/**', 'https://github.com/acmeevil/app', false],
  ['https://github.com/acme/app?', 'https://github.com/acme/app2', true],
  ['https://github.com/acme/app?', 'https://github.com/acme/app/', false],
  ['release@acme.example', 'release@acme.example', true],
  ['release@acme.example', 'release@acme.examplex', false],
  ['https://github.com/acme/(app)', 'https://github.com/acme/(app)', true],
];

for (const [glob, subject, matches] of globs) {
  test(`glob ${glob} ${matches ? 'matches' : 'does not match'} ${subject}`, (t) => {
    t.is(globPattern(glob).test(subject), matches);
    t.is(compileIdentity({ issuer: ISSUER, subject: glob }, 'r').matches(claim(subject)), matches);
  });
}

test('a regular expression is matched whole, never as a substring', (t) => {
  const identity = compileIdentity(
    { issuer: ISSUER, subjectRegExp: 'https://github\\.com/acme/app/.*' },
    'r',
  );
  t.true(
    identity.matches(claim('https://github.com/acme/app/.github/workflows/x.yml@refs/heads/main')),
  );
  t.false(identity.matches(claim('https://github.com/mallory/app/?https://github.com/acme/app/x')));
  const loose = compileIdentity({ issuer: ISSUER, subjectRegExp: 'acme' }, 'r');
  t.false(loose.matches(claim('https://github.com/acme/app')));
});

test('the issuer is compared exactly, or by a whole regular expression', (t) => {
  const exact = compileIdentity({ issuer: ISSUER, subject: 's' }, 'r');
  t.false(exact.matches(claim('s', {}, `${ISSUER}/`)));
  t.false(exact.matches(claim('s', {}, 'https://token.actions.githubusercontent.com.evil.io')));
  const pattern = compileIdentity(
    { issuerRegExp: 'https://gitlab\\.(com|example\\.com)', subject: 's' },
    'r',
  );
  t.true(pattern.matches(claim('s', {}, 'https://gitlab.example.com')));
  t.false(pattern.matches(claim('s', {}, 'https://gitlab.example.com.evil.io')));
});

test('every named extension must be present and equal', (t) => {
  const identity = compileIdentity(
    {
      issuer: ISSUER,
      subject: 's',
      extensions: { sourceRepositoryURI: 'https://github.com/acme/app', buildTrigger: 'push' },
    },
    'r',
  );
  t.true(
    identity.matches(
      claim('s', {
        sourceRepositoryURI: 'https://github.com/acme/app',
        buildTrigger: 'push',
        runnerEnvironment: 'github-hosted',
      }),
    ),
  );
  t.false(identity.matches(claim('s', { sourceRepositoryURI: 'https://github.com/acme/app' })));
  t.false(
    identity.matches(
      claim('s', { sourceRepositoryURI: 'https://github.com/acme/app2', buildTrigger: 'push' }),
    ),
  );
  t.is(identity.trustRoot, 'r');
  t.is(
    compileIdentity({ issuer: ISSUER, subject: 's', trustRoot: 'github' }, 'r').trustRoot,
    'github',
  );
});

test('attestation types: cosign short names, and statements bounded', (t) => {
  t.is(predicateType('slsaprovenance1'), 'https://slsa.dev/provenance/v1');
  t.is(predicateType('vuln'), 'https://cosign.sigstore.dev/attestation/vuln/v1');
  t.is(predicateType('https://example.com/custom/v1'), 'https://example.com/custom/v1');
  const small = { predicateType: 'x', predicate: { a: 1 } };
  t.deepEqual(bounded(small), { statement: small });
  const large = { predicateType: 'x', predicate: { sbom: 'x'.repeat(MAX_STATEMENT_BYTES) } };
  const left = bounded(large);
  t.is(left.statement, null);
  t.regex(left.omitted ?? '', /^the statement is \d+ bytes, more than 65536$/);
});

test('the reason shown is the one closest to passing', (t) => {
  t.deepEqual(mostTelling([]), { reason: 'no signature' });
  t.deepEqual(
    mostTelling([
      { reason: 'signed by another key' },
      { reason: 'transparency-log entry invalid', detail: 'bed: …' },
      { reason: 'malformed signature' },
    ]),
    { reason: 'transparency-log entry invalid', detail: 'bed: …' },
  );
});
