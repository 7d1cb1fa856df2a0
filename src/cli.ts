#!/usr/bin/env node
/**
 * The entry point, and the only module with process-wide side effects: the Node.js
 * version check, the environment, standard streams, signals, exit codes. Each command
 * lives in commands/ with its own flags and usage text, imported only when it runs, so
 * an unsupported Node.js is told so before any dependency loads.
 */
import { text } from 'node:stream/consumers';
import type { Command, CommandContext } from './commands/command.ts';
import { BundleError } from './policy/bundle-error.ts';
import { ConfigError } from './policy/config-error.ts';
import { describeThrown } from './shared/describe-thrown.ts';
import { InputError } from './shared/input-error.ts';
import { nodeVersionProblem } from './shared/node-version.ts';

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ command: Command }> }> = {
  serve: {
    summary: 'run the gateway (HTTPS reviews, plain-HTTP health port)',
    load: () => import('./commands/serve.ts'),
  },
  check: {
    summary: 'evaluate Kubernetes manifests offline (mutate, then validate)',
    load: () => import('./commands/check.ts'),
  },
  audit: {
    summary: 'judge what the cluster already runs; publish PolicyReports',
    load: () => import('./commands/audit.ts'),
  },
  certs: {
    summary: 'a CA, serving and client certificates, and the files deploy/ needs',
    load: () => import('./commands/certs.ts'),
  },
  bundle: {
    summary: 'ship a bundle as a ConfigMap (configmap), or say what it is (inspect)',
    load: () => import('./commands/bundle.ts'),
  },
};

const USAGE = `usage: imagegate <command> [flags]

commands:
${Object.entries(COMMANDS)
  .map(([name, { summary }]) => `  ${name.padEnd(8)}${summary}`)
  .join('\n')}

imagegate <command> --help prints a command's flags. Every flag can also be given as
IMAGEGATE_<FLAG> (e.g. IMAGEGATE_BUNDLE).
`;

/** `imagegate <command> -h` and `--help`, wherever they are before a `--`. */
function asksForHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

const context: CommandContext = {
  env: process.env,
  write: (out) => process.stdout.write(out),
  tell: (out) => process.stderr.write(out),
  stdin: () => text(process.stdin),
  stopSignal: () =>
    new Promise<string>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    }),
};

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (entry === undefined) {
    process.stderr.write(`imagegate: unknown command ${JSON.stringify(name)}\n\n${USAGE}`);
    return 2;
  }
  const { command } = await entry.load();
  if (asksForHelp(rest)) {
    process.stdout.write(command.usage);
    return 0;
  }
  return command.run(rest, context);
}

/** Errors of the user's making exit 2 with one clear line; anything else is a bug. */
function exitCodeFor(error: unknown): number {
  const known =
    error instanceof InputError || error instanceof ConfigError || error instanceof BundleError;
  process.stderr.write(`imagegate: ${describeThrown(error)}\n`);
  return known ? 2 : 3;
}

const unsupported = nodeVersionProblem(process.version);
if (unsupported !== undefined) {
  process.stderr.write(`${unsupported}\n`);
  process.exitCode = 2;
} else {
  // `imagegate ... | head` closes the pipe early: that is the reader's choice, not an error.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
  main(process.argv.slice(2))
    .then(
      (code) => code,
      (error: unknown) => exitCodeFor(error),
    )
    .then((code) => {
      process.exitCode = code;
      // A command that returned has closed what it opened; should anything still hold the
      // event loop, the process exits all the same (an audit that gave up must not linger).
      setTimeout(() => process.exit(code), 10_000).unref();
    });
}
