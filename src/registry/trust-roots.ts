/**
 * Sigstore trust roots as data: `trustRoots` names `trusted_root.json` files (what
 * `cosign trusted-root create` writes and Sigstore's TUF repository serves: Fulcio CAs,
 * transparency logs, CT logs, timestamp authorities). Read when the configuration loads,
 * and again whenever it or a root file changes. A root may instead be kept in a TUF
 * repository the configuration names (tuf-mirror.ts): nothing else is ever fetched. A
 * `signatures` entry names the root its signatures' log entries are checked against.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { type TrustMaterial, toTrustMaterial } from '@sigstore/verify';
import { describeThrown } from '../shared/describe-thrown.ts';
import { isRecord } from '../shared/json.ts';
import { RegistryError } from './registry-error.ts';

const MEDIA_TYPE = 'application/vnd.dev.sigstore.trustedroot+json';
const LISTS = ['tlogs', 'certificateAuthorities', 'ctlogs', 'timestampAuthorities'] as const;

/**
 * `trustRoots.<name>` as a map: the root is the target `target` of the TUF repository at
 * `mirror`, trusted from the pinned `root` (a root.json) on; `network: private` when the
 * configuration's `registries` lets the mirror's host live on a private network.
 */
export interface TufRootSpec {
  readonly mirror: string;
  readonly root: string;
  readonly target: string;
  readonly network: 'public' | 'private';
}

/** Where the loader gets a TUF-kept root: the one in force now, or an unavailable one. */
export type TufRootSource = (name: string, spec: TufRootSpec) => Promise<LoadedTrustRoot>;

export interface LoadedTrustRoot {
  readonly name: string;
  /**
   * The file the configuration names, watched: the trusted_root.json itself, or a TUF-kept
   * root's pinned root.json.
   */
  readonly file: string;
  /** SHA-256 of the trusted_root.json: verified results are cached per root content. */
  readonly fingerprint: string;
  /** Everything but public keys, which a `signatures` entry brings itself. */
  readonly material: Omit<TrustMaterial, 'publicKey'>;
  /** What /readyz shows of it. */
  readonly summary: TrustRootSummary;
  /** The TUF repository it is kept in; undefined for a file. */
  readonly tuf?: TufRootSpec;
  /**
   * Why it cannot be used (a TUF-kept root never verified, or its metadata expired): an
   * entry that needs it fails closed with this reason.
   */
  readonly unavailable?: string;
  /** When its TUF metadata expires (ms since the epoch): from then on it is unavailable. */
  readonly usableUntil?: number;
}

/** Why `root` cannot be used now, if it cannot: an entry needing it fails closed. */
export function unusable(root: LoadedTrustRoot, now = Date.now()): string | undefined {
  if (root.unavailable !== undefined)
    return `trust root ${root.name} is unavailable: ${root.unavailable}`;
  if (root.usableUntil !== undefined && now >= root.usableUntil) {
    return `trust root ${root.name} is unavailable: its TUF metadata expired at ${new Date(root.usableUntil).toISOString()}`;
  }
  return undefined;
}

export interface TrustRootSummary {
  /** The trusted_root.json in force (a TUF-kept root's copy in the cache); null: none. */
  readonly file: string | null;
  readonly fingerprint: string;
  /** How many of each authority it names. */
  readonly certificateAuthorities: number;
  readonly tlogs: number;
  readonly ctlogs: number;
  readonly timestampAuthorities: number;
  /**
   * When the last of its authorities stops being valid (ISO 8601), or null when one is
   * open-ended; an operator rotating a root sees here when the old one runs out.
   */
  readonly validUntil: string | null;
  /** Why it cannot be used now, when it cannot. */
  readonly unavailable?: string;
  /** A TUF-kept root: its mirror and how refreshing it goes (read when shown). */
  readonly tuf?: TufStatus;
}

/** What /readyz shows of a TUF-kept root's repository. */
export interface TufStatus {
  readonly mirror: string;
  /** The pinned root.json the repository is trusted from. */
  readonly root: string;
  readonly target: string;
  /** Where the verified metadata and target are kept. */
  readonly cache: string;
  /** The last refresh that verified (this process's, or the cached copy's). */
  readonly refreshedAt: string | null;
  readonly lastAttempt: string | null;
  readonly lastError: string | null;
  readonly consecutiveFailures: number;
  /** The verified metadata's versions and expiry times, by role. */
  readonly metadata: Readonly<Record<string, { version: number; expires: string }>> | null;
  /** When the first of them expires: the root is unavailable from then on, unless refreshed. */
  readonly usableUntil: string | null;
}

type Authorities = Omit<TrustMaterial, 'publicKey'>;

function summarize(
  file: string | null,
  fingerprint: string,
  material: Authorities,
): TrustRootSummary {
  const all = [
    ...material.certificateAuthorities,
    ...material.tlogs,
    ...material.ctlogs,
    ...material.timestampAuthorities,
  ];
  // toTrustMaterial gives an open-ended authority the far future as its end.
  const ends = all.map((a) => a.validFor.end.getTime());
  const last = Math.max(...ends);
  const open = ends.length === 0 || !Number.isFinite(last) || last >= 8.64e15;
  return {
    file,
    fingerprint,
    certificateAuthorities: material.certificateAuthorities.length,
    tlogs: material.tlogs.length,
    ctlogs: material.ctlogs.length,
    timestampAuthorities: material.timestampAuthorities.length,
    validUntil: open ? null : new Date(last).toISOString(),
  };
}

export async function loadTrustRoot(name: string, file: string): Promise<LoadedTrustRoot> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new RegistryError(`trust root ${name}: cannot read ${file}: ${describeThrown(error)}`, {
      cause: error,
    });
  }
  return parseTrustRoot(name, file, text);
}

/** A trusted_root.json's text as a root named `name`; `file` is where it was read (messages). */
export function parseTrustRoot(
  name: string,
  file: string,
  text: string,
  about: string = file,
): LoadedTrustRoot {
  let material: TrustMaterial;
  try {
    const json: unknown = JSON.parse(text);
    // fromJSON takes anything and leaves out what it does not know: check the shape first.
    if (
      !isRecord(json) ||
      typeof json.mediaType !== 'string' ||
      !json.mediaType.startsWith(MEDIA_TYPE)
    ) {
      throw new RegistryError(`its mediaType is not ${MEDIA_TYPE}`);
    }
    for (const list of LISTS) {
      if (json[list] !== undefined && !Array.isArray(json[list])) {
        throw new RegistryError(`${list} is not a list`);
      }
    }
    if (LISTS.every((list) => !Array.isArray(json[list]) || json[list].length === 0)) {
      throw new RegistryError('it names no transparency log, certificate or timestamp authority');
    }
    const root = TrustedRoot.fromJSON(json);
    material = toTrustMaterial(root, () => {
      throw new RegistryError('no public keys in a trust root');
    });
  } catch (error) {
    throw new RegistryError(
      `trust root ${name}: ${about} is not a Sigstore trusted_root.json: ${describeThrown(error)}`,
      { cause: error },
    );
  }
  const { publicKey: _keys, ...rest } = material;
  const fingerprint = createHash('sha256').update(text).digest('hex').slice(0, 16);
  return { name, file, fingerprint, material: rest, summary: summarize(file, fingerprint, rest) };
}

/**
 * A root that cannot be used (a TUF-kept root with no verified copy, or an expired one): it
 * names no authority, so nothing verifies against it, and `unusable` says why.
 */
export function unavailableTrustRoot(
  name: string,
  file: string,
  reason: string,
  tuf?: TufRootSpec,
): LoadedTrustRoot {
  const material: Authorities = {
    certificateAuthorities: [],
    timestampAuthorities: [],
    tlogs: [],
    ctlogs: [],
  };
  return {
    name,
    file,
    fingerprint: 'unavailable',
    material,
    summary: { ...summarize(null, 'unavailable', material), unavailable: reason },
    ...(tuf === undefined ? {} : { tuf }),
    unavailable: reason,
  };
}
