/**
 * The `signatures` entries of a configuration (top level and every namespace override),
 * compiled once per load with the keys and trust roots it loaded, and named by `id`: the
 * configuration the policy sees carries each entry's id, which is all a facts request
 * names (registry/sigstore/verification.ts says why), and its attestation types as
 * predicate type URIs. An entry whose requirement cannot be checked with its roots is
 * refused here, with its path.
 */
import type { PublicKeyRef } from '../registry/keys.ts';
import type { IdentityConfig } from '../registry/sigstore/identities.ts';
import { isRequirement } from '../registry/sigstore/requirements.ts';
import {
  buildVerification,
  type Verification,
  type VerificationConfig,
  verificationId,
} from '../registry/sigstore/verification.ts';
import type { LoadedTrustRoot } from '../registry/trust-roots.ts';
import { describeThrown } from '../shared/describe-thrown.ts';
import { isRecord, type JsonObject } from '../shared/json.ts';
import type { PolicyConfig } from './config.ts';
import { ConfigError } from './config-error.ts';

export interface CompiledSignatures {
  /** The configuration with an `id` on every `signatures` entry. */
  readonly config: PolicyConfig;
  readonly verifications: ReadonlyMap<string, Verification>;
}

const strings = (value: unknown): string[] =>
  Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];

function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function identityOf(value: unknown): IdentityConfig {
  const v = isRecord(value) ? value : {};
  const extensions: Record<string, string> = {};
  if (isRecord(v.extensions)) {
    for (const [name, item] of Object.entries(v.extensions)) {
      if (typeof item === 'string') extensions[name] = item;
    }
  }
  const optional = (key: string) => {
    const found = text(v[key]);
    return found === undefined ? {} : { [key]: found };
  };
  return {
    ...optional('issuer'),
    ...optional('issuerRegExp'),
    ...optional('subject'),
    ...optional('subjectRegExp'),
    ...optional('trustRoot'),
    extensions,
  };
}

/** An entry (already validated by config.ts) as the verifier takes it. */
function settingsOf(entry: JsonObject): VerificationConfig {
  const attestations = (Array.isArray(entry.attestations) ? entry.attestations : []).flatMap(
    (item): VerificationConfig['attestations'][number][] => {
      if (typeof item === 'string') return [item];
      if (isRecord(item) && typeof item.type === 'string') {
        return [
          {
            type: item.type,
            ...(typeof item.required === 'boolean' ? { required: item.required } : {}),
          },
        ];
      }
      return [];
    },
  );
  const trustRoot = text(entry.trustRoot);
  return {
    keys: strings(entry.keys),
    identities: (Array.isArray(entry.identities) ? entry.identities : []).map(identityOf),
    attestations,
    ...(trustRoot === undefined ? {} : { trustRoot }),
    ...(typeof entry.threshold === 'number' ? { threshold: entry.threshold } : {}),
    ...(isRequirement(entry.require) ? { require: entry.require } : {}),
    ...(typeof entry.sct === 'boolean' ? { sct: entry.sct } : {}),
    ...(typeof entry.acceptIndexSignature === 'boolean'
      ? { acceptIndexSignature: entry.acceptIndexSignature }
      : {}),
  };
}

export function compileSignatures(
  config: PolicyConfig,
  keys: ReadonlyMap<string, PublicKeyRef>,
  roots: ReadonlyMap<string, LoadedTrustRoot>,
  source: string,
): CompiledSignatures {
  const verifications = new Map<string, Verification>();
  const compile = (part: JsonObject, at: string): JsonObject => {
    if (!Array.isArray(part.signatures)) return part;
    const signatures = part.signatures.map((entry, i) => {
      if (!isRecord(entry)) return entry;
      const id = verificationId(entry);
      let verification = verifications.get(id);
      if (verification === undefined) {
        try {
          verification = buildVerification(id, settingsOf(entry), keys, roots);
        } catch (error) {
          throw new ConfigError(`${source}: ${at}signatures[${i}]: ${describeThrown(error)}`, {
            cause: error,
          });
        }
        verifications.set(id, verification);
      }
      // The policy compares attestation types with the facts': spelled out, not cosign's names.
      return { ...entry, id, attestations: verification.attestations.map((a) => ({ ...a })) };
    });
    return { ...part, signatures };
  };
  let compiled = compile(config, '');
  if (isRecord(config.namespaces)) {
    const namespaces: JsonObject = {};
    for (const [pattern, part] of Object.entries(config.namespaces)) {
      namespaces[pattern] = isRecord(part)
        ? compile(part, `namespaces[${JSON.stringify(pattern)}].`)
        : part;
    }
    compiled = { ...compiled, namespaces };
  }
  return { config: compiled, verifications };
}
