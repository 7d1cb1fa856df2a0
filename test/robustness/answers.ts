/**
 * What every answer must look like, whatever was sent: a well-formed review when the body
 * parses as one, else a 4xx with JSON `{error}`; never a 5xx, never a policy failure (with
 * the default bundle the policy has no reason to fail). Each check returns the problems it
 * finds, so a property can report all of them with the body that caused them.
 */
import { ADMISSION_API_VERSIONS } from '../../src/review/admission-api-version.ts';
import { IMAGE_REVIEW_API_VERSION } from '../../src/review/image-review.ts';
import { isRecord, type JsonObject } from '../../src/shared/json.ts';
import type { HttpResult, LogCapture } from '../helpers/gateway.ts';

export type Endpoint = '/v1/validate' | '/v1/mutate' | '/v1/imagereview';

const CLIENT_ERRORS = new Set([400, 413, 415]);

function own(object: JsonObject, key: string): unknown {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

function isStringMap(value: unknown): boolean {
  return isRecord(value) && Object.values(value).every((v) => typeof v === 'string');
}

/** Would the gateway's narrowing accept this body as a review (SPEC: 400 otherwise)? */
export function parsesAsReview(endpoint: Endpoint, sent: unknown): boolean {
  if (!isRecord(sent)) return false;
  if (endpoint === '/v1/imagereview') {
    const spec = own(sent, 'spec');
    if (own(sent, 'apiVersion') !== IMAGE_REVIEW_API_VERSION) return false;
    if (own(sent, 'kind') !== 'ImageReview' || !isRecord(spec)) return false;
    const containers = own(spec, 'containers');
    if (Object.hasOwn(spec, 'containers') && !Array.isArray(containers)) return false;
    if (Array.isArray(containers) && !containers.every(isRecord)) return false;
    const annotations = own(spec, 'annotations');
    return !isRecord(annotations) || isStringMap(annotations);
  }
  const apiVersion = own(sent, 'apiVersion');
  const request = own(sent, 'request');
  return (
    (ADMISSION_API_VERSIONS as readonly unknown[]).includes(apiVersion) &&
    own(sent, 'kind') === 'AdmissionReview' &&
    isRecord(request) &&
    typeof own(request, 'uid') === 'string' &&
    own(request, 'uid') !== ''
  );
}

function errorProblems(result: HttpResult): string[] {
  const problems: string[] = [];
  if (!CLIENT_ERRORS.has(result.status)) problems.push(`status ${result.status}`);
  if (!String(result.headers['content-type']).startsWith('application/json')) {
    problems.push(`content-type ${String(result.headers['content-type'])}`);
  }
  const body = result.body;
  if (!isRecord(body) || Object.keys(body).join() !== 'error' || typeof body.error !== 'string') {
    problems.push(`error body is not {error: string}: ${result.text.slice(0, 200)}`);
  }
  return problems;
}

function patchProblems(response: JsonObject): string[] {
  if (!Object.hasOwn(response, 'patch')) return [];
  if (response.patchType !== 'JSONPatch' || typeof response.patch !== 'string') {
    return ['patch without patchType JSONPatch or not a string'];
  }
  let ops: unknown;
  try {
    ops = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8'));
  } catch {
    return ['patch is not base64 JSON'];
  }
  const wellFormed =
    Array.isArray(ops) &&
    ops.length > 0 &&
    ops.every((op) => isRecord(op) && typeof op.op === 'string' && typeof op.path === 'string');
  return wellFormed ? [] : [`patch is not a list of operations: ${JSON.stringify(ops)}`];
}

function admissionProblems(endpoint: Endpoint, sent: JsonObject, body: JsonObject): string[] {
  const problems: string[] = [];
  if (body.kind !== 'AdmissionReview') problems.push(`kind ${String(body.kind)}`);
  if (body.apiVersion !== sent.apiVersion) problems.push(`apiVersion ${String(body.apiVersion)}`);
  const response = body.response;
  if (!isRecord(response)) return [...problems, 'no response object'];
  const request = isRecord(sent.request) ? sent.request : {};
  if (!echoes(request.uid, response.uid)) problems.push('response.uid is not request.uid');
  if (typeof response.allowed !== 'boolean') return [...problems, 'allowed is not a boolean'];
  const status = response.status;
  if (response.allowed) {
    if (status !== undefined) problems.push('allowed with a status');
  } else if (!isRecord(status) || typeof status.message !== 'string') {
    problems.push('denied without status.message');
  } else {
    // 500 means the policy failed: with the default bundle that is a gateway bug.
    const codes = endpoint === '/v1/mutate' ? [400] : [400, 403];
    if (!codes.includes(Number(status.code))) {
      problems.push(`status.code ${String(status.code)}: ${status.message.slice(0, 300)}`);
    }
  }
  if (response.warnings !== undefined) {
    const warnings = response.warnings;
    if (!Array.isArray(warnings) || !warnings.every((w) => typeof w === 'string')) {
      problems.push('warnings is not a list of strings');
    }
  }
  if (response.auditAnnotations !== undefined && !isStringMap(response.auditAnnotations)) {
    problems.push('auditAnnotations is not a map of strings');
  }
  return [...problems, ...patchProblems(response)];
}

function imageReviewProblems(body: JsonObject): string[] {
  const problems: string[] = [];
  if (body.apiVersion !== IMAGE_REVIEW_API_VERSION) problems.push('apiVersion');
  if (body.kind !== 'ImageReview') problems.push('kind');
  const status = body.status;
  if (!isRecord(status) || typeof status.allowed !== 'boolean') {
    return [...problems, 'status.allowed is not a boolean'];
  }
  if (!status.allowed && (typeof status.reason !== 'string' || status.reason === '')) {
    problems.push('denied without a reason');
  }
  if (status.auditAnnotations !== undefined && !isStringMap(status.auditAnnotations)) {
    problems.push('auditAnnotations is not a map of strings');
  }
  return problems;
}

/** Every way `result` breaks the contract for the body `sent` (parsed, or raw if not JSON). */
export function answerProblems(endpoint: Endpoint, sent: unknown, result: HttpResult): string[] {
  if (!parsesAsReview(endpoint, sent) || !isRecord(sent)) {
    return result.status === 200 ? ['a review for a body that is not one'] : errorProblems(result);
  }
  if (result.status !== 200) return [`status ${result.status}: ${result.text.slice(0, 300)}`];
  if (!isRecord(result.body)) return ['200 without a JSON object'];
  return endpoint === '/v1/imagereview'
    ? imageReviewProblems(result.body)
    : admissionProblems(endpoint, sent, result.body);
}

/**
 * Error-level log lines that mean a policy failure or an unexpected error, logged since the
 * last call (parsing only the new lines keeps long runs linear). A decision line refusing a
 * malformed review is the client's mistake, whatever its level: only an evaluation error
 * ("evaluating …", "no policy is loaded") counts.
 */
export function failureWatch(logs: LogCapture): () => JsonObject[] {
  let seen = 0;
  return () => {
    const fresh = logs.raw.slice(seen);
    seen += fresh.length;
    return fresh
      .map((line) => JSON.parse(line) as unknown)
      .filter(isRecord)
      .filter((line) => typeof line.level === 'number' && line.level >= 50)
      .filter(
        (line) => line.msg !== 'decision' || /^(?:evaluating |no policy)/.test(String(line.error)),
      );
  };
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * The uid a review must echo: as sent, or with lone surrogates read as U+FFFD, as Go's
 * encoding/json (and so the API server) reads them.
 */
export function echoes(sent: unknown, answered: unknown): boolean {
  return (
    typeof sent === 'string' &&
    (answered === sent || answered === sent.replace(LONE_SURROGATE, '\uFFFD'))
  );
}
