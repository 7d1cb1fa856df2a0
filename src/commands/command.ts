/**
 * What a command module gives the entry point: its usage text, its flag table and what it
 * runs. The entry point (cli.ts) owns what is process-wide — the environment, standard
 * streams, signals, exit codes — and hands the command the parts it needs.
 */
import type { FlagTable } from './flags.ts';

export interface CommandContext {
  /** The environment, for IMAGEGATE_<FLAG> settings. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Standard output: what the command answers. */
  readonly write: (text: string) => void;
  /** Standard error: what a person should read (never machine output). */
  readonly tell: (text: string) => void;
  readonly stdin: () => Promise<string>;
  /** Resolves with the signal's name at the first SIGTERM or SIGINT. */
  readonly stopSignal: () => Promise<string>;
}

export interface Command {
  /** Printed by `imagegate <command> --help`: what it does, every flag, exit codes. */
  readonly usage: string;
  readonly flags: FlagTable;
  /** The exit code; errors of the user's making are thrown as InputError (exit 2). */
  run(args: readonly string[], context: CommandContext): Promise<number>;
}
