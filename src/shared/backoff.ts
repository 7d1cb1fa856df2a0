/**
 * When to ask a remote service again (a bundle source, a collector). Steady state: the poll interval, spread by ±10% so a
 * fleet started together does not poll in step. After failures: exponential from a short
 * first retry up to a cap, with "equal jitter" (half fixed, half random), so a registry
 * coming back from an outage is not met by every gateway in the same second.
 */

export interface PollTiming {
  readonly intervalMs: number;
  /** The longest wait after failures. */
  readonly maxBackoffMs: number;
}

/** The first retry after a failure waits about this long, at most (or the interval, if shorter). */
export const FIRST_RETRY_MS = 1_000;

export function nextDelay(
  timing: PollTiming,
  consecutiveFailures: number,
  random: () => number = Math.random,
): number {
  if (consecutiveFailures <= 0) {
    return Math.round(timing.intervalMs * (0.9 + 0.2 * random()));
  }
  const first = Math.min(FIRST_RETRY_MS, timing.intervalMs);
  const exponent = Math.min(consecutiveFailures - 1, 30);
  const ceiling = Math.min(timing.maxBackoffMs, first * 2 ** exponent);
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}
