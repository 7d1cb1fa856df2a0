/**
 * Policy evaluation failed. The wasm SDK throws strings and plain objects
 * (npm-opa-wasm `src/opa.js`), so every throw that crosses the engine boundary is
 * normalised into this class by `EngineError.from`.
 */
export class EngineError extends Error {
  override readonly name = 'EngineError';

  static from(thrown: unknown, context: string): EngineError {
    if (thrown instanceof EngineError) return thrown;
    return new EngineError(`${context}: ${describeThrown(thrown)}`, { cause: thrown });
  }
}

export function describeThrown(thrown: unknown): string {
  if (thrown instanceof Error) return thrown.message;
  if (typeof thrown === 'string') return thrown;
  if (typeof thrown === 'object' && thrown !== null) {
    const message = (thrown as { message?: unknown }).message;
    if (typeof message === 'string') return message;
    try {
      return JSON.stringify(thrown);
    } catch {
      return Object.prototype.toString.call(thrown);
    }
  }
  return String(thrown);
}
