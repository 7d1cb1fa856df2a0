/**
 * One stored object judged as the validating webhook would judge its creation now, with
 * the same engine and registry facts: no mutation first, because what is audited is what
 * runs (a Pod admitted before the policy changed carries the images it carries).
 *
 * What is not audited: objects in excluded namespaces; Pods that finished (Succeeded,
 * Failed: they run nothing); templates a controller owns (a Deployment's ReplicaSets, a
 * CronJob's Jobs), whose owner is audited and whose pods are.
 */
import { decisionWith, type PolicyEngine, type WithFacts } from '../policy/engine.ts';
import { toValidateDecision } from '../review/decision.ts';
import { admissionInput, imageCount, type PolicyInput } from '../review/policy-input.ts';
import { createRequestFor } from '../review/synthetic.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import { isRecord, type JsonObject } from '../shared/json.ts';

export type ResultKind = 'pass' | 'fail' | 'warn' | 'skip' | 'error';

export interface AuditResult {
  readonly rule: string;
  readonly result: ResultKind;
  readonly message: string;
  readonly image?: string;
  readonly container?: string;
  readonly path?: string;
  /** What admission does with it now: deny, warn, dryrun, or break-glass. */
  readonly enforcement?: string;
}

export interface AuditedObject {
  readonly uid: string;
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly results: readonly AuditResult[];
}

export interface AuditedKind {
  readonly apiVersion: string;
  readonly kind: string;
  /** The collection across namespaces. */
  readonly path: string;
}

/** Pods and every kind with a pod template (review/workloads.ts lists the same). */
export const AUDITED_KINDS: readonly AuditedKind[] = [
  { apiVersion: 'v1', kind: 'Pod', path: '/api/v1/pods' },
  { apiVersion: 'v1', kind: 'ReplicationController', path: '/api/v1/replicationcontrollers' },
  { apiVersion: 'apps/v1', kind: 'Deployment', path: '/apis/apps/v1/deployments' },
  { apiVersion: 'apps/v1', kind: 'ReplicaSet', path: '/apis/apps/v1/replicasets' },
  { apiVersion: 'apps/v1', kind: 'StatefulSet', path: '/apis/apps/v1/statefulsets' },
  { apiVersion: 'apps/v1', kind: 'DaemonSet', path: '/apis/apps/v1/daemonsets' },
  { apiVersion: 'batch/v1', kind: 'Job', path: '/apis/batch/v1/jobs' },
  { apiVersion: 'batch/v1', kind: 'CronJob', path: '/apis/batch/v1/cronjobs' },
];

/** Puts the registry facts the validating decision needs on the input. */
export type AuditFacts = (engine: PolicyEngine, input: PolicyInput) => Promise<WithFacts>;

const TERMINAL_PHASES = new Set(['Succeeded', 'Failed']);

function metadataOf(object: JsonObject): JsonObject {
  return isRecord(object.metadata) ? object.metadata : {};
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** The object is audited at all (see the module comment). */
export function audited(object: JsonObject, kind: string): boolean {
  if (kind === 'Pod') {
    const status = isRecord(object.status) ? object.status : {};
    return !TERMINAL_PHASES.has(text(status.phase));
  }
  const owners = metadataOf(object).ownerReferences;
  const controlled =
    Array.isArray(owners) && owners.some((o) => isRecord(o) && o.controller === true);
  return !controlled;
}

/**
 * The results for one object; undefined when it is not audited (excluded namespace,
 * finished pod, a controller's template, a kind imagegate does not review).
 */
export async function auditObject(
  engine: PolicyEngine,
  object: JsonObject,
  identity: { apiVersion: string; kind: string },
  facts?: AuditFacts,
): Promise<AuditedObject | undefined> {
  const metadata = metadataOf(object);
  const subject = {
    uid: text(metadata.uid),
    apiVersion: identity.apiVersion,
    kind: identity.kind,
    namespace: text(metadata.namespace),
    name: text(metadata.name),
  };
  if (!audited(object, identity.kind)) return undefined;
  const request = createRequestFor(object, { ...subject, uid: `imagegate-audit-${subject.uid}` });
  if (request === undefined) return undefined;
  const images = imageCount(request);
  if (images > engine.config.maxImages) {
    return {
      ...subject,
      results: [
        {
          rule: 'max-images',
          result: 'fail',
          message: `the object has ${images} images; a review may have at most ${engine.config.maxImages} (maxImages)`,
        },
      ],
    };
  }
  const input = admissionInput('admission.k8s.io/v1', request);
  const withFacts = facts === undefined ? { input } : await facts(engine, input);
  const decision = toValidateDecision(decisionWith(engine, withFacts, 'validate'));
  if (decision.exempt) return undefined;
  // A violation fails whatever the namespace's enforcement (the report is what turning
  // `deny` on would refuse; Kyverno's background scan reports Audit policies the same
  // way); one whose denial break-glass waives is a warning.
  const results: AuditResult[] = decision.violations.map((v) => ({
    rule: v.rule,
    result: decision.breakGlass ? 'warn' : 'fail',
    message: v.message,
    enforcement: decision.breakGlass ? 'break-glass' : decision.enforcement,
    ...(v.image === '' ? {} : { image: v.image }),
    ...(v.container === '' ? {} : { container: v.container }),
    ...(v.path === '' ? {} : { path: v.path }),
  }));
  const exempted = decision.auditAnnotations['exempt-images'];
  if (exempted !== undefined) {
    for (const image of exempted.split(', ')) {
      results.push({
        rule: 'exempt-images',
        result: 'skip',
        message: `image "${image}" is exempt (exemptImages)`,
        image,
      });
    }
  }
  if (decision.violations.length === 0) {
    results.push({ rule: 'images', result: 'pass', message: 'every image passes the policy' });
  }
  return { ...subject, results };
}

/** auditObject, with a policy that fails (or none loaded) as an error result, never a pass. */
export async function auditOrError(
  engine: PolicyEngine | undefined,
  object: JsonObject,
  identity: { apiVersion: string; kind: string },
  facts?: AuditFacts,
): Promise<AuditedObject | undefined> {
  try {
    if (engine === undefined) throw new Error('no policy is loaded');
    return await auditObject(engine, object, identity, facts);
  } catch (error) {
    const metadata = metadataOf(object);
    return {
      uid: text(metadata.uid),
      apiVersion: identity.apiVersion,
      kind: identity.kind,
      namespace: text(metadata.namespace),
      name: text(metadata.name),
      results: [{ rule: 'evaluation', result: 'error', message: describeThrown(error) }],
    };
  }
}
