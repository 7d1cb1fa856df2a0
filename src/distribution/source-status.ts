/**
 * What is known of a remote bundle source: which bundle serves and where it came from
 * (fetched now, or the last good one kept on disk), when the source last answered, and
 * how it fails. Shown on /readyz, in metrics and in status reports; plain data.
 */

export type Origin = 'remote' | 'persisted';

export interface SourceStatus {
  readonly kind: 'oci' | 'http';
  /** The --bundle value, as shown to people. */
  readonly location: string;
  /** Where the bundle serving now came from; undefined while none does. */
  readonly origin: Origin | undefined;
  /** The manifest digest or ETag of the bundle serving now. */
  readonly version: string | undefined;
  readonly activatedAt: string | undefined;
  readonly lastRequest: string | undefined;
  readonly lastSuccessfulRequest: string | undefined;
  readonly lastSuccessfulDownload: string | undefined;
  readonly consecutiveFailures: number;
  readonly lastError: string | undefined;
  /** Bundle service only: the server holds requests until the bundle changes. */
  readonly longPolling: boolean;
  /** What verified the artifact's cosign signature, when one is required. */
  readonly artifactSignature: string | undefined;
}
