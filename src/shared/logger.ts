/**
 * pino JSON logs. Decision lines carry only what an operator needs (images, reasons, ids),
 * never the reviewed object; the redaction list is a second line of defence in case a
 * review or object is ever logged by mistake.
 */
import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const REDACT = [
  'review',
  'object',
  'oldObject',
  '*.object',
  '*.oldObject',
  '*.env',
  '*.imagePullSecrets',
  'input.review',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level,
    base: { service: 'imagegate' },
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return pino(options, destination ?? stdout());
}

let shared: ReturnType<typeof pino.destination> | undefined;

/**
 * Standard output, written asynchronously: lines that arrive while a write is under way
 * go out together with the next one, so under load a decision line no longer costs a
 * write(2) of its own (the default level kept 0.65–0.93× of `warn`'s throughput,
 * docs/BENCHMARKS.md), and at a trickle each line still leaves at once. What is buffered
 * is written before the process exits, also on a fatal path (process.exit runs 'exit'
 * listeners).
 */
function stdout(): DestinationStream {
  if (shared === undefined) {
    const destination = pino.destination({ dest: 1, sync: false });
    process.once('exit', () => {
      try {
        destination.flushSync();
      } catch {
        // Nothing to flush, or stdout is gone (EPIPE): nothing more can be said.
      }
    });
    shared = destination;
  }
  return shared;
}
