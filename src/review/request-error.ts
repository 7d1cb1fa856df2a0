import { InputError } from '../shared/input-error.ts';
import type { AdmissionApiVersion } from './admission-api-version.ts';

/**
 * A malformed AdmissionReview request whose uid is known: the caller's mistake, yet still
 * answered with a review (allowed: false, code 400) so the API server sees a denial, not a
 * failed call it might be configured to ignore.
 */
export class RequestError extends InputError {
  override readonly name = 'RequestError';
  readonly apiVersion: AdmissionApiVersion;
  readonly uid: string;

  constructor(apiVersion: AdmissionApiVersion, uid: string, message: string) {
    super(message);
    this.apiVersion = apiVersion;
    this.uid = uid;
  }
}
