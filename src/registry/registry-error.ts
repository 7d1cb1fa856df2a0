/** A registry could not give a fact: unreachable, refused, malformed, out of time. */
export class RegistryError extends Error {
  override readonly name = 'RegistryError';
  /** Seconds the registry asked us to wait (429 Retry-After), when it did. */
  readonly retryAfterS: number | undefined;

  constructor(message: string, options: { cause?: unknown; retryAfterS?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.retryAfterS = options.retryAfterS;
  }
}
