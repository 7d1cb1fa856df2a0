/**
 * The one reference to the engine in service. A reload builds a complete engine elsewhere
 * and swaps it in here in one assignment; a refused reload leaves the old one serving and
 * records why, for /readyz and the logs.
 */
import type { PolicyEngine } from './engine.ts';

export interface LoadStatus {
  readonly source: string;
  readonly at: string;
  readonly ok: boolean;
  readonly error?: string;
}

export class PolicyHolder {
  #engine: PolicyEngine | undefined;
  #last: LoadStatus | undefined;

  get engine(): PolicyEngine | undefined {
    return this.#engine;
  }

  get lastLoad(): LoadStatus | undefined {
    return this.#last;
  }

  swap(engine: PolicyEngine, source: string): void {
    this.#engine = engine;
    this.#last = { source, at: new Date().toISOString(), ok: true };
  }

  refuse(source: string, error: string): void {
    this.#last = { source, at: new Date().toISOString(), ok: false, error };
  }
}
