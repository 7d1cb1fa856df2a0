/**
 * Fulcio's identity configuration for the bed's OIDC issuer, and the claims the two kinds of
 * identity need. Fulcio maps each issuer URL to one kind of identity:
 *
 * - `<oidc>/github-actions`: `type: ci-provider, ci-provider: github-workflow`, with the
 *   `ci-issuer-metadata` of Fulcio 1.8.8's own config/identity/config.yaml — how public
 *   Sigstore configures https://token.actions.githubusercontent.com. The certificate's SAN is
 *   `https://github.com/<job_workflow_ref>` and every extension template (OIDs
 *   1.3.6.1.4.1.57264.1.*: source repository, ref, digest, workflow, trigger…) is filled from
 *   the token; a claim a template names that is missing fails the request, so
 *   githubActionsClaims() writes them all.
 * - `<oidc>/email`: `type: email`; the SAN is the `email` claim, which must be verified.
 */
import type { Claims, OidcIssuer } from './oidc-issuer.ts';

const GITHUB = 'github-workflow';

// Fulcio v1.8.8 config/identity/config.yaml, ci-issuer-metadata.github-workflow (verbatim).
const GITHUB_METADATA = {
  'default-template-values': { url: 'https://github.com', environment: '' },
  'extension-templates': {
    'github-workflow-trigger': 'event_name',
    'github-workflow-sha': 'sha',
    'github-workflow-name': 'workflow',
    'github-workflow-repository': 'repository',
    'github-workflow-ref': 'ref',
    'build-signer-uri': '{{ .url }}/{{ .job_workflow_ref }}',
    'build-signer-digest': 'job_workflow_sha',
    'runner-environment': 'runner_environment',
    'source-repository-uri': '{{ .url }}/{{ .repository }}',
    'source-repository-digest': 'sha',
    'source-repository-ref': 'ref',
    'source-repository-identifier': 'repository_id',
    'source-repository-owner-uri': '{{ .url }}/{{ .repository_owner }}',
    'source-repository-owner-identifier': 'repository_owner_id',
    'build-config-uri': '{{ .url }}/{{ .workflow_ref }}',
    'build-config-digest': 'workflow_sha',
    'build-trigger': 'event_name',
    'run-invocation-uri':
      '{{ .url }}/{{ .repository }}/actions/runs/{{ .run_id }}/attempts/{{ .run_attempt }}',
    'source-repository-visibility-at-signing': 'repository_visibility',
    'deployment-environment': 'environment',
  },
  'subject-alternative-name-template': '{{ .url }}/{{ .job_workflow_ref }}',
};

export function fulcioConfig(oidc: OidcIssuer): unknown {
  const issuer = (url: string, kind: object) => ({
    'issuer-url': url,
    'client-id': 'sigstore',
    ...kind,
  });
  return {
    'oidc-issuers': {
      [oidc.url('github-actions')]: issuer(oidc.url('github-actions'), {
        type: 'ci-provider',
        'ci-provider': GITHUB,
      }),
      [oidc.url('email')]: issuer(oidc.url('email'), { type: 'email' }),
    },
    'ci-issuer-metadata': { [GITHUB]: GITHUB_METADATA },
  };
}

export interface GithubWorkflow {
  /** `owner/name` */
  readonly repository: string;
  /** The workflow file's path in the repository: `.github/workflows/release.yml`. */
  readonly workflow?: string;
  /** `refs/heads/main`, `refs/tags/v1.0.0` */
  readonly ref?: string;
  readonly sha?: string;
  readonly event?: string;
}

/**
 * The claims of a GitHub Actions ID token for a run of `workflow` in `repository` (the
 * workflow calls no reusable workflow, so job_workflow_ref = workflow_ref). The certificate
 * identity it gets: `https://github.com/<repository>/<workflow>@<ref>`.
 */
export function githubActionsClaims(run: GithubWorkflow): Claims {
  const { repository, workflow = '.github/workflows/release.yml', ref = 'refs/heads/main' } = run;
  const sha = run.sha ?? 'a'.repeat(40);
  const owner = repository.split('/')[0] ?? repository;
  const workflowRef = `${repository}/${workflow}@${ref}`;
  return {
    sub: `repo:${repository}:ref:${ref}`,
    repository,
    repository_id: '100001',
    repository_owner: owner,
    repository_owner_id: '200002',
    repository_visibility: 'public',
    ref,
    ref_type: ref.startsWith('refs/tags/') ? 'tag' : 'branch',
    sha,
    workflow: workflow.split('/').at(-1) ?? workflow,
    workflow_ref: workflowRef,
    workflow_sha: sha,
    job_workflow_ref: workflowRef,
    job_workflow_sha: sha,
    event_name: run.event ?? 'push',
    run_id: '3000003',
    run_attempt: '1',
    runner_environment: 'github-hosted',
    actor: owner,
  };
}

/** What `cosign verify --certificate-identity` expects for that run. */
export function githubActionsIdentity(run: GithubWorkflow): string {
  const claims = githubActionsClaims(run);
  return `https://github.com/${String(claims.job_workflow_ref)}`;
}

export function emailClaims(email: string): Claims {
  return { sub: email, email, email_verified: true };
}
