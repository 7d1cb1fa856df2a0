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
  return destination === undefined ? pino(options) : pino(options, destination);
}
