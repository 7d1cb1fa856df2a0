/**
 * What a signature must carry besides itself, per `signatures` entry (`require`):
 *
 * - `tlog`: a transparency-log entry verified against the trust root's logs — a Rekor v1
 *   entry's signed entry timestamp or inclusion proof, a Rekor v2 entry's checkpoint and
 *   inclusion proof;
 * - `timestamp`: an RFC 3161 timestamp from one of the root's timestamp authorities;
 * - `either`, `both`: one of them, or both;
 * - `none`: the signature alone (keys only; what cosign's `--insecure-ignore-tlog` allows).
 *
 * The defaults are cosign's: `cosign verify` checks the transparency log unless told not
 * to, for keys and certificates alike, so an entry with a trust root requires `tlog`. A
 * key entry with no trust root has no log to check against and requires `none` (imagegate's
 * behaviour before keyless existed; cosign would reach for the public instance's TUF
 * repository instead, which imagegate never does). Whatever is required, a keyless
 * signature also needs a verified signing time — a Rekor v1 entry's integrated time or an
 * RFC 3161 timestamp — because a Fulcio certificate is valid for ten minutes and is
 * checked at that time, never at the time of the review (cosign's observer timestamps).
 * SCTs are required of certificates when the root names CT logs, unless `sct: false`
 * (cosign's `--insecure-ignore-sct`).
 */
import type { UnverifiedReason } from './reasons.ts';

export const REQUIREMENTS = ['tlog', 'timestamp', 'either', 'both', 'none'] as const;
export type Requirement = (typeof REQUIREMENTS)[number];

export const isRequirement = (value: unknown): value is Requirement =>
  typeof value === 'string' && (REQUIREMENTS as readonly string[]).includes(value);

/** cosign's default for an entry: the log when there is a root to check it against. */
export function defaultRequirement(hasTrustRoot: boolean): Requirement {
  return hasTrustRoot ? 'tlog' : 'none';
}

export const needsLog = (r: Requirement) => r === 'tlog' || r === 'both';
export const needsTimestamp = (r: Requirement) => r === 'timestamp' || r === 'both';

/** What an artifact carries that the root can verify, counted before verifying anything. */
export interface Present {
  readonly logEntries: number;
  readonly timestamps: number;
}

/** Why a requirement is not met by what is present; undefined when it is (so far). */
export function unmet(requirement: Requirement, present: Present): UnverifiedReason | undefined {
  const log = present.logEntries > 0;
  const time = present.timestamps > 0;
  if (needsLog(requirement) && !log) return 'no transparency-log entry';
  if (needsTimestamp(requirement) && !time) return 'no timestamp';
  if (requirement === 'either' && !log && !time) return 'no transparency-log entry or timestamp';
  return undefined;
}
