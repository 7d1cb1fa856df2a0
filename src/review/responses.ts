/**
 * Decision → review. Pure translators, one per protocol; the HTTP layer only serialises.
 */
import type { AdmissionApiVersion } from './admission-api-version.ts';
import type { MutateDecision, ValidateDecision } from './decision.ts';
import { IMAGE_REVIEW_API_VERSION } from './image-review.ts';
import { apiServerWarnings } from './warnings.ts';

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

/**
 * The most bytes one text in an answer may take: the message kubectl shows, the ImageReview
 * reason, an audit annotation (warnings have the API server's own, smaller budget:
 * warnings.ts). A pod with thousands of bad
 * containers would otherwise send hundreds of kilobytes through the API server, into the
 * client's error and every audit event. The decision log keeps every violation.
 */
export const MAX_TEXT_BYTES = 16 * 1024;
/** Room kept for the note that says what was left out. */
const NOTE_BYTES = 160;
const SEPARATOR = '; ';

const bytes = (text: string) => Buffer.byteLength(text);

/** The longest prefix of `text` within `limit` UTF-8 bytes, never splitting a character. */
function cut(text: string, limit: number): string {
  let used = 0;
  let end = 0;
  for (const char of text) {
    used += bytes(char);
    if (used > limit) break;
    end += char.length;
  }
  return text.slice(0, end);
}

/** The leading items that fit in `limit` bytes joined by `separatorBytes`; at least one, cut. */
function leading(items: readonly string[], limit: number, separatorBytes: number): string[] {
  const kept: string[] = [];
  let used = 0;
  for (const item of items) {
    const size = bytes(item) + (kept.length > 0 ? separatorBytes : 0);
    if (used + size > limit) break;
    kept.push(item);
    used += size;
  }
  const [first] = items;
  return kept.length === 0 && first !== undefined ? [`${cut(first, limit)}…`] : kept;
}

const leftOut = (shown: number, total: number) => `… and ${total - shown} more (${total} in all)`;

/**
 * Every reason, one line: kubectl shows it after "denied the request: ". Bounded.
 * `total`: how many violations there are, when the policy gave only the first of them
 * (it ends its reasons with "… and N more violations", which a cut replaces).
 */
export function joinReasons(
  reasons: readonly string[],
  limit = MAX_TEXT_BYTES,
  total = reasons.length,
): string {
  const all = reasons.join(SEPARATOR);
  if (bytes(all) <= limit) return all;
  const own = total > reasons.length ? reasons.slice(0, -1) : reasons;
  const kept = leading(own, limit - NOTE_BYTES, bytes(SEPARATOR));
  return [...kept, leftOut(kept.length, Math.max(total, reasons.length))].join(SEPARATOR);
}

/** How many reasons a denial has in all: the policy may give only the first of many. */
const reasonsInAll = (decision: ValidateDecision) =>
  decision.reasons.length < decision.violations.length
    ? decision.violations.length
    : decision.reasons.length;

/** An audit annotation's value (the policy joins the violations itself), bounded. */
function boundedAnnotation(value: string, limit = MAX_TEXT_BYTES): string {
  if (bytes(value) <= limit) return value;
  const head = cut(value, limit - NOTE_BYTES);
  const boundary = head.lastIndexOf(SEPARATOR);
  return `${boundary > 0 ? head.slice(0, boundary) : head}${SEPARATOR}… (cut at ${limit} bytes)`;
}

function withAudit(annotations: Readonly<Record<string, string>>): {
  auditAnnotations?: Record<string, string>;
} {
  const entries = Object.entries(annotations);
  return entries.length > 0
    ? {
        auditAnnotations: Object.fromEntries(
          entries.map(([key, value]) => [key, boundedAnnotation(value)]),
        ),
      }
    : {};
}

export function validationResponse(
  apiVersion: AdmissionApiVersion,
  uid: string,
  decision: ValidateDecision,
): AdmissionResponseBody {
  const warnings =
    decision.warnings.length > 0 ? { warnings: apiServerWarnings(decision.warnings, uid) } : {};
  const status = decision.allowed
    ? {}
    : {
        status: {
          code: 403,
          reason: 'Forbidden',
          message: joinReasons(decision.reasons, MAX_TEXT_BYTES, reasonsInAll(decision)),
        },
      };
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
  const reason = decision.allowed
    ? {}
    : { reason: joinReasons(decision.reasons, MAX_TEXT_BYTES, reasonsInAll(decision)) };
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
