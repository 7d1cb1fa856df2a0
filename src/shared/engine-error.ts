import { describeThrown } from './describe-thrown.ts';

/**
 * Policy evaluation failed. The wasm SDK throws strings and plain objects
 * (npm-opa-wasm `src/opa.js`), so every throw that crosses the engine boundary is
 * normalised into this class by `EngineError.from`. Shared: the engine throws it, and so
 * does the narrowing of the policy's result into a decision (review/decision.ts).
 */
export class EngineError extends Error {
  override readonly name = 'EngineError';

  static from(thrown: unknown, context: string): EngineError {
    if (thrown instanceof EngineError) return thrown;
    return new EngineError(`${context}: ${describeThrown(thrown)}`, { cause: thrown });
  }
}
