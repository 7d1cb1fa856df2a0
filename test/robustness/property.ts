/**
 * fast-check under ava, bounded for CI: a fixed seed (FC_SEED overrides it to explore), a
 * run count and a time limit per property, and on failure the seed, the counterexample path
 * and the shrunk counterexample in the assertion message, so a CI failure replays locally
 * (FC_SEED=… FC_PATH=… npx ava <file> --match '<title>').
 */
import type { ExecutionContext } from 'ava';
import * as fc from 'fast-check';

const DEFAULT_SEED = 20_250_603;

function seedFromEnvironment(): number {
  const raw = process.env.FC_SEED;
  if (raw === undefined || raw === '') return DEFAULT_SEED;
  const seed = Number(raw);
  if (!Number.isSafeInteger(seed)) throw new TypeError(`FC_SEED=${raw} is not an integer`);
  return seed;
}

export const SEED = seedFromEnvironment();

export interface Budget {
  readonly runs: number;
  /** Interrupts generation and shrinking alike; what ran by then still counts. */
  readonly timeLimitMs?: number;
  /** Prefer the file-wide SEED; a property may pin its own to decorrelate from others. */
  readonly seed?: number;
}

type AnyProperty<Ts> = fc.IAsyncProperty<Ts> | fc.IProperty<Ts>;

/** Runs the property and turns its verdict into one ava assertion. */
export async function holds<Ts>(
  t: ExecutionContext,
  property: AnyProperty<Ts>,
  budget: Budget,
): Promise<void> {
  const seed = budget.seed ?? SEED;
  const path = process.env.FC_PATH;
  const details = await fc.check(property as fc.IRawProperty<Ts>, {
    seed,
    numRuns: budget.runs,
    plugins: [fc.interruptAfterTimeLimit(budget.timeLimitMs ?? 20_000)],
    ...(path === undefined || path === '' ? {} : { path }),
  });
  if (!details.failed) {
    t.log(`${details.numRuns} runs, seed ${seed}${details.interrupted ? ' (time limit)' : ''}`);
    t.pass();
    return;
  }
  const replay = `replay: FC_SEED=${seed} FC_PATH=${details.counterexamplePath ?? ''}`;
  const error = details.errorInstance instanceof Error ? details.errorInstance.message : '';
  const report = fc.defaultReportMessage(details) ?? '';
  t.fail(`property failed with seed ${seed}; ${replay}\n${error}\n${report}`);
}
