/**
 * A stored or written object reviewed as if it were being created now: the CREATE
 * AdmissionRequest the API server would send for it. `imagegate check` reviews manifests
 * this way, `imagegate audit` what the cluster already runs.
 */
import type { JsonObject } from '../shared/json.ts';
import type { AdmissionRequest } from './admission-review.ts';
import { coveredKind, splitApiVersion } from './workloads.ts';

export interface SyntheticOptions {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
}

/** The CREATE request for `object`; undefined for a kind imagegate does not review. */
export function createRequestFor(
  object: JsonObject,
  o: SyntheticOptions,
): AdmissionRequest | undefined {
  const { group, version } = splitApiVersion(o.apiVersion);
  const covered = coveredKind(group, o.kind);
  if (covered === undefined) return undefined;
  return {
    uid: o.uid,
    kind: { group, version, kind: o.kind },
    resource: { group, version, resource: covered.resource },
    subResource: '',
    operation: 'CREATE',
    namespace: o.namespace,
    name: o.name,
    dryRun: true,
    object,
    oldObject: null,
    raw: { operation: 'CREATE', namespace: o.namespace, object },
  };
}
