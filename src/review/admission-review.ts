/**
 * Narrowing of an AdmissionReview body (`admission.k8s.io/v1` and `v1beta1`, which share
 * the wire shape). Everything a client can get wrong becomes an InputError (400) that says
 * what was wrong; fields the gateway does not need are kept untouched in `raw`.
 */
import { InputError } from '../shared/input-error.ts';
import { isRecord, type JsonObject, recordField, stringField } from '../shared/json.ts';
import {
  ADMISSION_API_VERSIONS,
  type AdmissionApiVersion,
  isAdmissionApiVersion,
} from './admission-api-version.ts';
import { RequestError } from './request-error.ts';

export interface GroupVersionKind {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
}

export interface GroupVersionResource {
  readonly group: string;
  readonly version: string;
  readonly resource: string;
}

export interface AdmissionRequest {
  readonly uid: string;
  readonly kind: GroupVersionKind;
  readonly resource: GroupVersionResource;
  readonly subResource: string;
  readonly operation: string;
  readonly namespace: string;
  readonly name: string;
  readonly dryRun: boolean;
  readonly object: unknown;
  readonly oldObject: unknown;
  /** The request exactly as sent. */
  readonly raw: JsonObject;
}

export interface AdmissionReview {
  readonly apiVersion: AdmissionApiVersion;
  readonly request: AdmissionRequest;
}

const OPERATIONS = new Set(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']);

export function parseAdmissionReview(body: unknown): AdmissionReview {
  if (!isRecord(body)) throw new InputError('the body is not a JSON object');
  const apiVersion = stringField(body, 'apiVersion');
  if (!isAdmissionApiVersion(apiVersion)) {
    throw new InputError(
      `unsupported apiVersion ${JSON.stringify(apiVersion)}: expected ${ADMISSION_API_VERSIONS.join(' or ')}`,
    );
  }
  const kind = stringField(body, 'kind');
  if (kind !== 'AdmissionReview') {
    throw new InputError(`unsupported kind ${JSON.stringify(kind)}: expected AdmissionReview`);
  }
  const request = recordField(body, 'request');
  if (request === undefined) throw new InputError('the AdmissionReview has no request');
  return { apiVersion, request: parseRequest(apiVersion, request) };
}

function parseRequest(apiVersion: AdmissionApiVersion, request: JsonObject): AdmissionRequest {
  const uid = stringField(request, 'uid');
  if (uid === '') throw new InputError('request.uid is missing or not a string');
  // From here on the uid is known, so a mistake is answered with a denying review.
  const refuse = (message: string) => new RequestError(apiVersion, uid, message);
  const operation = stringField(request, 'operation');
  if (!OPERATIONS.has(operation)) {
    throw refuse(
      `request.operation ${JSON.stringify(operation)} is not one of CREATE, UPDATE, DELETE, CONNECT`,
    );
  }
  const kind = recordField(request, 'kind');
  if (kind === undefined || stringField(kind, 'kind') === '') {
    throw refuse('request.kind is missing or has no kind');
  }
  // CREATE and UPDATE always carry the object; one that is missing or not an object would
  // otherwise read as "no images" and be let through.
  if ((operation === 'CREATE' || operation === 'UPDATE') && !isRecord(request.object)) {
    throw refuse(`request.object is missing or not an object on ${operation}`);
  }
  const resource = recordField(request, 'resource') ?? {};
  return {
    uid,
    kind: {
      group: stringField(kind, 'group'),
      version: stringField(kind, 'version'),
      kind: stringField(kind, 'kind'),
    },
    resource: {
      group: stringField(resource, 'group'),
      version: stringField(resource, 'version'),
      resource: stringField(resource, 'resource'),
    },
    subResource: stringField(request, 'subResource'),
    operation,
    namespace: stringField(request, 'namespace'),
    name: stringField(request, 'name'),
    dryRun: request.dryRun === true,
    object: request.object ?? null,
    oldObject: request.oldObject ?? null,
    raw: request,
  };
}
