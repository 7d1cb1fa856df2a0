/**
 * What one `signatures` entry asks of the images it covers, compiled once per policy load:
 * its keys, keyless identities and trust roots, how many of them must have signed, what
 * evidence a signature needs, which attestations are read or required.
 *
 * The policy names an entry by `id`, a digest of the entry's own words (everything but the
 * images it covers): the facts request stays a short string, equal entries in different
 * namespaces are one verification, and a result is cached by the id together with the
 * content of the keys and trust roots it was made with (`fingerprint`), so a rotated key
 * or root is asked about afresh.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { canonicalJson, type JsonObject } from '../../shared/json.ts';
import type { PublicKeyRef } from '../keys.ts';
import { type LoadedTrustRoot, unusable } from '../trust-roots.ts';
import { type AttestationRequirement, predicateType } from './attestations.ts';
import { compileIdentity, type Identity, type IdentityConfig } from './identities.ts';
import { defaultRequirement, needsLog, needsTimestamp, type Requirement } from './requirements.ts';

/** An entry's settings, as the configuration writes them (validated by policy/config.ts). */
export interface VerificationConfig {
  readonly keys: readonly string[];
  readonly identities: readonly IdentityConfig[];
  readonly trustRoot?: string;
  readonly threshold?: number;
  readonly require?: Requirement;
  readonly sct?: boolean;
  readonly attestations: readonly (string | { type: string; required?: boolean })[];
  readonly acceptIndexSignature?: boolean;
}

export interface Verification {
  readonly id: string;
  readonly keys: readonly PublicKeyRef[];
  readonly identities: readonly Identity[];
  /** The entry's root: for its keys' log entries, and its identities' by default. */
  readonly trustRoot: LoadedTrustRoot | undefined;
  /** Every root an identity chains to, by name. */
  readonly roots: ReadonlyMap<string, LoadedTrustRoot>;
  /** Distinct signers (keys and identities) that must each have signed. */
  readonly threshold: number;
  readonly requirement: Requirement;
  readonly sct: boolean;
  readonly attestations: readonly AttestationRequirement[];
  /** A platform manifest may be verified by a signed index that lists it. */
  readonly acceptIndexSignature: boolean;
  /** The id and the content of every key and root it uses: what results are cached by. */
  readonly fingerprint: string;
}

/** The id of an entry: a digest of everything it says but which images it covers. */
export function verificationId(entry: JsonObject): string {
  const { images: _images, id: _id, ...rest } = entry;
  return `v-${createHash('sha256').update(canonicalJson(rest)).digest('hex').slice(0, 16)}`;
}

/** SHA-256 of a key's SPKI, once per key object (exporting one costs tens of µs). */
const fingerprints = new WeakMap<KeyObject, string>();
export function keyFingerprint(key: KeyObject): string {
  let found = fingerprints.get(key);
  if (found === undefined) {
    found = createHash('sha256')
      .update(key.export({ type: 'spki', format: 'der' }))
      .digest('hex')
      .slice(0, 16);
    fingerprints.set(key, found);
  }
  return found;
}

/**
 * Compiles an entry. `keys` and `roots` are what the configuration loaded (by reference and
 * by name); a name the entry uses that is missing there throws (the loader reports it).
 */
export function buildVerification(
  id: string,
  config: VerificationConfig,
  keys: ReadonlyMap<string, PublicKeyRef>,
  roots: ReadonlyMap<string, LoadedTrustRoot>,
): Verification {
  const key = (ref: string) => {
    const found = keys.get(ref);
    if (found === undefined) throw new TypeError(`signature key ${ref} is not loaded`);
    return found;
  };
  const root = (name: string) => {
    const found = roots.get(name);
    if (found === undefined) throw new TypeError(`no trust root named ${JSON.stringify(name)}`);
    return found;
  };
  const trustRoot = config.trustRoot === undefined ? undefined : root(config.trustRoot);
  const identities = config.identities.map((identity) =>
    compileIdentity(identity, config.trustRoot ?? ''),
  );
  const used = new Map<string, LoadedTrustRoot>();
  for (const identity of identities) used.set(identity.trustRoot, root(identity.trustRoot));
  const resolvedKeys = config.keys.map(key);
  const requirement =
    config.require ?? defaultRequirement(trustRoot !== undefined || used.size > 0);
  checkRequirement(
    requirement,
    resolvedKeys.length > 0 ? trustRoot : undefined,
    resolvedKeys.length > 0,
    [...used.values()],
  );
  const fingerprint = [
    id,
    ...resolvedKeys.map((k) => keyFingerprint(k.key)),
    trustRoot?.fingerprint ?? '',
    ...[...used.values()].map((r) => r.fingerprint),
  ].join(',');
  return {
    id,
    keys: resolvedKeys,
    identities,
    trustRoot,
    roots: used,
    threshold: config.threshold ?? 1,
    requirement,
    sct: config.sct ?? true,
    attestations: config.attestations.map((a) =>
      typeof a === 'string'
        ? { type: predicateType(a), required: true }
        : { type: predicateType(a.type), required: a.required ?? true },
    ),
    acceptIndexSignature: config.acceptIndexSignature ?? false,
    fingerprint,
  };
}

/**
 * What a requirement needs must be there to check it with: a log for `tlog`, a timestamp
 * authority for `timestamp`, in every root the entry's signers use; keyless signatures
 * need a signed time, so never `none`.
 */
function checkRequirement(
  requirement: Requirement,
  keyRoot: LoadedTrustRoot | undefined,
  hasKeys: boolean,
  identityRoots: readonly LoadedTrustRoot[],
): void {
  if (identityRoots.length > 0 && requirement === 'none') {
    throw new TypeError(
      'require: none: a keyless signature needs a signed time (require tlog, timestamp, either or both)',
    );
  }
  if (requirement === 'none') return;
  if (hasKeys && keyRoot === undefined) {
    throw new TypeError(
      `require: ${requirement} needs the entry's trustRoot, whose logs and timestamp authorities check its keys' signatures`,
    );
  }
  const roots = [...(keyRoot === undefined ? [] : [keyRoot]), ...identityRoots];
  // An unavailable root names nothing yet; the entry fails closed on it when asked.
  for (const root of roots.filter((r) => r.unavailable === undefined)) {
    const { tlogs, timestampAuthorities } = root.material;
    if (needsLog(requirement) && tlogs.length === 0) {
      throw new TypeError(
        `require: ${requirement} needs a transparency log, and trust root ${root.name} names none (require: timestamp checks its timestamp authorities instead)`,
      );
    }
    if (needsTimestamp(requirement) && timestampAuthorities.length === 0) {
      throw new TypeError(
        `require: ${requirement} needs a timestamp authority, and trust root ${root.name} names none`,
      );
    }
    if (requirement === 'either' && tlogs.length + timestampAuthorities.length === 0) {
      throw new TypeError(
        `require: either: trust root ${root.name} names no log and no timestamp authority`,
      );
    }
  }
}

/** Why the entry cannot be judged now (a root it uses is unavailable), if it cannot. */
export function unusableRoot(entry: Verification, now = Date.now()): string | undefined {
  for (const root of [entry.trustRoot, ...entry.roots.values()]) {
    const why = root === undefined ? undefined : unusable(root, now);
    if (why !== undefined) return why;
  }
  return undefined;
}

/** A verification for keys alone (what tests and older callers ask for). */
export function keysOnly(
  id: string,
  keys: readonly PublicKeyRef[],
  trustRoot?: LoadedTrustRoot,
): Verification {
  const refs = new Map(keys.map((k) => [k.name, k]));
  const roots = new Map(trustRoot === undefined ? [] : [[trustRoot.name, trustRoot]]);
  return buildVerification(
    id,
    {
      keys: [...refs.keys()],
      identities: [],
      attestations: [],
      ...(trustRoot === undefined ? {} : { trustRoot: trustRoot.name }),
    },
    refs,
    roots,
  );
}
