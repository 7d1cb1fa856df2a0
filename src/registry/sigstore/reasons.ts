/**
 * Why a digest is not verified: one reason per failure, in the facts (`signature.reason`)
 * and in the denial kubectl shows. When several signatures fail differently, the reason
 * shown is the one closest to passing — the order of UNVERIFIED_REASONS: a signature by a
 * configured signer whose evidence failed says more than one by a stranger, which says more
 * than none at all.
 */
export const UNVERIFIED_REASONS = [
  'too few signers',
  'signature for another digest',
  'transparency-log entry invalid',
  'timestamp invalid',
  'certificate expired at signing time',
  'no SCT',
  'no verified signing time',
  'no transparency-log entry',
  'no timestamp',
  'no transparency-log entry or timestamp',
  'certificate not issued by the trust root',
  'signed by another identity',
  'signed by another key',
  'malformed signature',
  'no signature',
  'no attestation',
] as const;

export type UnverifiedReason = (typeof UNVERIFIED_REASONS)[number];

/** A failure with what exactly failed, where there is more to say. */
export interface Failure {
  readonly reason: UnverifiedReason;
  readonly detail?: string;
}

/** The most telling of several failures (UNVERIFIED_REASONS order); "no signature" for none. */
export function mostTelling(failures: readonly Failure[]): Failure {
  let best: Failure = { reason: 'no signature' };
  for (const failure of failures) {
    if (UNVERIFIED_REASONS.indexOf(failure.reason) < UNVERIFIED_REASONS.indexOf(best.reason)) {
      best = failure;
    }
  }
  return best;
}
