/**
 * The policy's answers (docs/policy-input.md "Decisions"), narrowed from what the wasm
 * returns. A result of the wrong shape is a policy bug and fails closed upstream.
 */
import { EngineError } from '../shared/engine-error.ts';
import { arrayField, isRecord, type JsonObject, recordField, stringField } from '../shared/json.ts';

export type Enforcement = 'deny' | 'warn' | 'dryrun';

export interface Violation {
  readonly rule: string;
  readonly image: string;
  readonly container: string;
  readonly path: string;
  readonly message: string;
}

export interface ValidateDecision {
  readonly allowed: boolean;
  readonly enforcement: Enforcement;
  readonly exempt: boolean;
  readonly breakGlass: boolean;
  readonly violations: readonly Violation[];
  readonly reasons: readonly string[];
  readonly warnings: readonly string[];
  readonly auditAnnotations: Readonly<Record<string, string>>;
}

export interface PatchOperation {
  readonly op: 'add' | 'replace' | 'remove';
  readonly path: string;
  readonly value?: unknown;
}

export interface MutateDecision {
  readonly patch: readonly PatchOperation[];
  readonly messages: readonly string[];
}

function strings(object: JsonObject, key: string): string[] {
  const values = arrayField(object, key);
  if (values === undefined || !values.every((v) => typeof v === 'string')) {
    throw new EngineError(`policy result: ${key} is not a list of strings`);
  }
  return values as string[];
}

function stringMap(object: JsonObject, key: string): Record<string, string> {
  const value = recordField(object, key) ?? {};
  if (!Object.values(value).every((v) => typeof v === 'string')) {
    throw new EngineError(`policy result: ${key} is not a map of strings`);
  }
  return value as Record<string, string>;
}

export function toValidateDecision(result: unknown): ValidateDecision {
  if (!isRecord(result) || typeof result.allowed !== 'boolean') {
    throw new EngineError('policy result: validate decision has no boolean "allowed"');
  }
  const enforcement = stringField(result, 'enforcement');
  if (enforcement !== 'deny' && enforcement !== 'warn' && enforcement !== 'dryrun') {
    throw new EngineError(`policy result: unknown enforcement ${JSON.stringify(enforcement)}`);
  }
  const violations = (arrayField(result, 'violations') ?? []).map((v): Violation => {
    if (!isRecord(v)) throw new EngineError('policy result: a violation is not an object');
    return {
      rule: stringField(v, 'rule'),
      image: stringField(v, 'image'),
      container: stringField(v, 'container'),
      path: stringField(v, 'path'),
      message: stringField(v, 'message'),
    };
  });
  const reasons = strings(result, 'reasons');
  // Fail closed on a contradiction: a policy that says "allowed" while giving reasons
  // to deny is broken, and broken policies deny.
  if (result.allowed && reasons.length > 0) {
    throw new EngineError('policy result: allowed with reasons to deny');
  }
  return {
    allowed: result.allowed,
    enforcement,
    exempt: result.exempt === true,
    breakGlass: result.breakGlass === true,
    violations,
    reasons,
    warnings: strings(result, 'warnings'),
    auditAnnotations: stringMap(result, 'auditAnnotations'),
  };
}

export function toMutateDecision(result: unknown): MutateDecision {
  if (!isRecord(result)) throw new EngineError('policy result: mutate decision is not an object');
  const patch = (arrayField(result, 'patch') ?? []).map((op): PatchOperation => {
    if (!isRecord(op)) throw new EngineError('policy result: a patch operation is not an object');
    const kind = stringField(op, 'op');
    const path = stringField(op, 'path');
    if ((kind !== 'add' && kind !== 'replace' && kind !== 'remove') || !path.startsWith('/')) {
      throw new EngineError(`policy result: unsupported patch operation ${JSON.stringify(op)}`);
    }
    return kind === 'remove' ? { op: kind, path } : { op: kind, path, value: op.value };
  });
  return { patch, messages: strings(result, 'messages') };
}
