/**
 * `imagegate check`: each manifest is reviewed as the API server would on CREATE —
 * mutating webhook first, its patch applied, then the validating webhook on the result.
 */
import fastJsonPatch from 'fast-json-patch';
import { decisionWith, type FactsStep, type PolicyEngine } from '../policy/engine.ts';
import {
  type Enforcement,
  type PatchOperation,
  toMutateDecision,
  toValidateDecision,
} from '../review/decision.ts';
import { admissionInput, imageCount } from '../review/policy-input.ts';
import { createRequestFor } from '../review/synthetic.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import type { JsonObject } from '../shared/json.ts';
import type { Manifest } from './manifests.ts';

export type Verdict = 'allowed' | 'denied' | 'skipped';

export interface CheckResult {
  readonly origin: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace: string;
  readonly verdict: Verdict;
  readonly enforcement?: Enforcement;
  readonly exempt: boolean;
  readonly reasons: readonly string[];
  readonly warnings: readonly string[];
  readonly mutations: readonly string[];
  readonly patch: readonly PatchOperation[];
  /** What the API server would record in the audit event (exemptions, break-glass, …). */
  readonly auditAnnotations?: Readonly<Record<string, string>>;
  /** The object after mutation, when the policy changed it. */
  readonly mutated?: JsonObject;
  /** Images whose registry facts were not asked for (--offline), and what went unchecked. */
  readonly unverified?: readonly string[];
}

export interface CheckOptions {
  /** Namespace for manifests that name none (kubectl's default). */
  readonly namespace: string;
  /** Registry facts; without it, offline: the images that needed some are listed unverified. */
  readonly facts?: FactsStep | undefined;
}

/**
 * Offline: each image a decision wants facts for is marked unverified, which the policy
 * leaves unjudged (pinDigests, signatures) instead of denying for missing facts; only
 * `check` does this, the gateway never does.
 */
export function offlineFacts(unverified: Set<string>): FactsStep {
  return async (engine, input, decision) => {
    const wanted = engine.factsNeeded(input, decision)[decision];
    if (wanted.length === 0) return { input };
    const indexes = new Set(wanted.map((r) => r.index));
    for (const request of wanted) {
      const image = input.images[request.index]?.raw ?? '';
      unverified.add(
        request.verification !== ''
          ? `${image}: signature not verified`
          : `${image}: tag not resolved, so not pinned`,
      );
    }
    return {
      input: {
        ...input,
        images: input.images.map((image, i) =>
          indexes.has(i) ? { ...image, facts: { unverified: 'offline' } } : image,
        ),
      },
    };
  };
}

export async function checkManifest(
  engine: PolicyEngine,
  manifest: Manifest,
  index: number,
  options: CheckOptions,
): Promise<CheckResult> {
  const namespace = manifest.namespace || options.namespace;
  const base = {
    origin: manifest.origin,
    kind: manifest.kind,
    name: manifest.name,
    namespace,
    exempt: false,
    reasons: [],
    warnings: [],
    mutations: [],
    patch: [],
  };
  const synthetic = {
    apiVersion: manifest.apiVersion,
    kind: manifest.kind,
    namespace,
    name: manifest.name,
    uid: `imagegate-check-${index + 1}`,
  };
  const request = (object: JsonObject) => createRequestFor(object, synthetic);
  const created = request(manifest.object);
  if (created === undefined) return { ...base, verdict: 'skipped' };

  const images = imageCount(created);
  if (images > engine.config.maxImages) {
    // The gateway refuses such a review before evaluating it; so does check.
    const reason = `the object has ${images} images; a review may have at most ${engine.config.maxImages} (maxImages)`;
    return { ...base, verdict: 'denied', reasons: [reason] };
  }
  const unverified = new Set<string>();
  const facts = options.facts ?? offlineFacts(unverified);
  const mutationInput = admissionInput('admission.k8s.io/v1', created);
  const mutation = toMutateDecision(
    decisionWith(engine, await facts(engine, mutationInput, 'mutate'), 'mutate'),
  );
  let object = manifest.object;
  if (mutation.patch.length > 0) {
    try {
      object = fastJsonPatch.applyPatch(
        structuredClone(manifest.object),
        mutation.patch.map((op) => ({ ...op }) as fastJsonPatch.Operation),
        true,
        false,
      ).newDocument;
    } catch (error) {
      // The API server refuses a request whose webhook patch does not apply.
      return {
        ...base,
        verdict: 'denied',
        reasons: [
          `the mutating policy produced a patch that does not apply: ${describeThrown(error)}`,
        ],
        mutations: mutation.messages,
        patch: mutation.patch,
      };
    }
  }
  const validated = request(object);
  if (validated === undefined) return { ...base, verdict: 'skipped' };
  const validationInput = admissionInput('admission.k8s.io/v1', validated);
  const decision = toValidateDecision(
    decisionWith(engine, await facts(engine, validationInput, 'validate'), 'validate'),
  );
  return {
    ...base,
    verdict: decision.allowed ? 'allowed' : 'denied',
    enforcement: decision.enforcement,
    exempt: decision.exempt,
    reasons: decision.reasons,
    warnings: decision.warnings,
    mutations: mutation.messages,
    patch: mutation.patch,
    auditAnnotations: decision.auditAnnotations,
    ...(mutation.patch.length > 0 ? { mutated: object } : {}),
    ...(unverified.size > 0 ? { unverified: [...unverified] } : {}),
  };
}

export interface CheckSummary {
  readonly objects: number;
  readonly allowed: number;
  readonly denied: number;
  readonly skipped: number;
  /** Objects with images whose registry facts were never asked for (--offline). */
  readonly unverified: number;
}

export function summarize(results: readonly CheckResult[]): CheckSummary {
  const count = (verdict: Verdict) => results.filter((r) => r.verdict === verdict).length;
  return {
    objects: results.length,
    allowed: count('allowed'),
    denied: count('denied'),
    skipped: count('skipped'),
    unverified: results.filter((r) => (r.unverified?.length ?? 0) > 0).length,
  };
}

export function formatResults(results: readonly CheckResult[]): string {
  const lines: string[] = [];
  for (const result of results) {
    const where = result.namespace ? `${result.namespace}/${result.name}` : result.name;
    const label = `${result.kind} ${where} (${result.origin})`;
    if (result.verdict === 'skipped') {
      lines.push(`SKIPPED ${label}: imagegate does not review ${result.kind}`);
      continue;
    }
    const note = result.exempt ? ' (namespace excluded)' : '';
    lines.push(`${result.verdict === 'allowed' ? 'ALLOWED' : 'DENIED '} ${label}${note}`);
    // In the order the API server applies them: mutation first, then validation.
    for (const mutation of result.mutations) lines.push(`  mutated: ${mutation}`);
    for (const reason of result.reasons) lines.push(`  denied:  ${reason}`);
    for (const warning of result.warnings) lines.push(`  warning: ${warning}`);
    for (const image of result.unverified ?? []) lines.push(`  unverified: ${image} (--offline)`);
    // The violations are the lines above; the rest says what else gets audited.
    for (const [key, value] of Object.entries(result.auditAnnotations ?? {})) {
      if (key !== 'violations') lines.push(`  audited: ${key}: ${value}`);
    }
  }
  const s = summarize(results);
  lines.push(
    `${s.objects} object(s): ${s.denied} denied, ${s.allowed} allowed, ${s.skipped} skipped${s.unverified > 0 ? `, ${s.unverified} with unverified images` : ''}`,
  );
  return `${lines.join('\n')}\n`;
}
