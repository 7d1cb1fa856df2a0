/**
 * Sigstore trust roots as data: `trustRoots` names `trusted_root.json` files (what
 * `cosign trusted-root create` writes and Sigstore's TUF repository serves: Fulcio CAs,
 * transparency logs, CT logs, timestamp authorities). Read when the configuration loads,
 * and again whenever it or a root file changes; nothing is ever fetched. A `signatures`
 * entry names the root its signatures' log entries are checked against.
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

export interface LoadedTrustRoot {
  readonly name: string;
  readonly file: string;
  /** SHA-256 of the file: verified results are cached per root content. */
  readonly fingerprint: string;
  /** Everything but public keys, which a `signatures` entry brings itself. */
  readonly material: Omit<TrustMaterial, 'publicKey'>;
  /** What /readyz shows of it. */
  readonly summary: TrustRootSummary;
}

export interface TrustRootSummary {
  readonly file: string;
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
}

type Authorities = Omit<TrustMaterial, 'publicKey'>;

function summarize(file: string, fingerprint: string, material: Authorities): TrustRootSummary {
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
      `trust root ${name}: ${file} is not a Sigstore trusted_root.json: ${describeThrown(error)}`,
      { cause: error },
    );
  }
  const { publicKey: _keys, ...rest } = material;
  const fingerprint = createHash('sha256').update(text).digest('hex').slice(0, 16);
  return { name, file, fingerprint, material: rest, summary: summarize(file, fingerprint, rest) };
}
