/** A policy bundle that cannot be read, verified or loaded; the previous one keeps serving. */
export class BundleError extends Error {
  override readonly name = 'BundleError';
}
