/**
 * The caller's own mistake: a body that does not decode, a manifest that does not parse,
 * a review without its request. `status` is the HTTP status it maps to and the message
 * is safe to show to the caller (Koa's `expose` rule for 4xx).
 */
export class InputError extends Error {
  override readonly name: string = 'InputError';
  readonly status: 400 | 413 | 415;
  readonly expose = true;

  constructor(message: string, options: { status?: 400 | 413 | 415; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = options.status ?? 400;
  }
}

/** A review over a bound the configuration sets (maxImages, maxLookups): refused, 400 inside. */
export class LimitError extends InputError {
  override readonly name: string = 'LimitError';
  /** The metric's label: images, lookups. */
  readonly limit: string;

  constructor(message: string, limit: string) {
    super(message);
    this.limit = limit;
  }
}
