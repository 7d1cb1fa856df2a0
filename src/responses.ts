/**
 * Decision → review. Pure translators, one per protocol; the HTTP layer only serialises.
 */
import type { AdmissionApiVersion } from './admission-review.ts';
import type { MutateDecision, ValidateDecision } from './decision.ts';
import { IMAGE_REVIEW_API_VERSION } from './image-review.ts';

export interface AdmissionResponseBody {
  apiVersion: AdmissionApiVersion;
  kind: 'AdmissionReview';
  response: {
    uid: string;
    allowed: boolean;
    status?: { code: number; reason?: string; message: string };
    warnings?: string[];
    auditAnnotations?: Record<string, string>;
    patchType?: 'JSONPatch';
    patch?: string;
  };
}

export interface ImageReviewBody {
  apiVersion: typeof IMAGE_REVIEW_API_VERSION;
  kind: 'ImageReview';
  status: { allowed: boolean; reason?: string; auditAnnotations?: Record<string, string> };
}

/** Every reason, one line: kubectl shows it after "denied the request: ". */
export function joinReasons(reasons: readonly string[]): string {
  return reasons.join('; ');
}

function withAudit(annotations: Readonly<Record<string, string>>): {
  auditAnnotations?: Record<string, string>;
} {
  return Object.keys(annotations).length > 0 ? { auditAnnotations: { ...annotations } } : {};
}

export function validationResponse(
  apiVersion: AdmissionApiVersion,
  uid: string,
  decision: ValidateDecision,
): AdmissionResponseBody {
  const warnings = decision.warnings.length > 0 ? { warnings: [...decision.warnings] } : {};
  const status = decision.allowed
    ? {}
    : { status: { code: 403, reason: 'Forbidden', message: joinReasons(decision.reasons) } };
  return {
    apiVersion,
    kind: 'AdmissionReview',
    response: {
      uid,
      allowed: decision.allowed,
      ...status,
      ...warnings,
      ...withAudit(decision.auditAnnotations),
    },
  };
}

/** No patch at all when nothing changes: the API server then skips re-decoding the object. */
export function mutationResponse(
  apiVersion: AdmissionApiVersion,
  uid: string,
  decision: MutateDecision,
): AdmissionResponseBody {
  const patch =
    decision.patch.length === 0
      ? {}
      : {
          patchType: 'JSONPatch' as const,
          patch: Buffer.from(JSON.stringify(decision.patch)).toString('base64'),
        };
  return { apiVersion, kind: 'AdmissionReview', response: { uid, allowed: true, ...patch } };
}

/**
 * Fail closed: the request could not be decided, so it is denied — code 500 when the
 * policy failed, 400 when the request itself was malformed.
 */
export function admissionFailure(
  apiVersion: AdmissionApiVersion,
  uid: string,
  message: string,
  code: 400 | 500 = 500,
): AdmissionResponseBody {
  const reason = code === 400 ? 'BadRequest' : 'InternalError';
  return {
    apiVersion,
    kind: 'AdmissionReview',
    response: { uid, allowed: false, status: { code, reason, message: `imagegate: ${message}` } },
  };
}

/**
 * ImageReview has no warnings field: warn, dryrun and break-glass answer allowed and carry
 * the violations in auditAnnotations (the policy puts them there).
 */
export function imageReviewResponse(decision: ValidateDecision): ImageReviewBody {
  const reason = decision.allowed ? {} : { reason: joinReasons(decision.reasons) };
  return {
    apiVersion: IMAGE_REVIEW_API_VERSION,
    kind: 'ImageReview',
    status: { allowed: decision.allowed, ...reason, ...withAudit(decision.auditAnnotations) },
  };
}

export function imageReviewFailure(message: string): ImageReviewBody {
  return {
    apiVersion: IMAGE_REVIEW_API_VERSION,
    kind: 'ImageReview',
    status: { allowed: false, reason: `imagegate: ${message}` },
  };
}
