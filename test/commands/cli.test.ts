/**
 * The command line as a user meets it: every command answers --help and -h with its own
 * usage (exit 0), its usage names every flag it takes, an unknown flag is bad input
 * (exit 2) that points at --help, and an unsupported Node.js is told so in one line.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import type { Command } from '../../src/commands/command.ts';
import { MIN_NODE_MAJOR } from '../../src/shared/node-version.ts';
import { imagegate, ROOT } from '../helpers/cli.ts';

const COMMANDS: Record<string, () => Promise<{ command: Command }>> = {
  serve: () => import('../../src/commands/serve.ts'),
  check: () => import('../../src/commands/check.ts'),
  audit: () => import('../../src/commands/audit.ts'),
  certs: () => import('../../src/commands/certs.ts'),
  bundle: () => import('../../src/commands/bundle.ts'),
};

for (const [name, load] of Object.entries(COMMANDS)) {
  test(`imagegate ${name} --help and -h print its own usage and exit 0`, async (t) => {
    const { command } = await load();
    for (const flag of ['--help', '-h']) {
      const result = await imagegate([name, flag]);
      t.is(result.code, 0, `${flag}: ${result.stderr}`);
      t.is(result.stdout, command.usage);
      t.true(result.stdout.startsWith(`usage: imagegate ${name}`), result.stdout);
      t.is(result.stderr, '');
    }
  });

  test(`imagegate ${name}: the usage names every flag of its table`, async (t) => {
    const { command } = await load();
    for (const [flag, option] of Object.entries(command.flags)) {
      t.true(command.usage.includes(`--${flag}`), `--${flag} is not in the usage`);
      if (option.short !== undefined)
        t.true(command.usage.includes(`-${option.short}, --${flag}`), `-${option.short}`);
    }
  });
}

test('--help after other flags still prints the usage; after -- it is an argument', async (t) => {
  const help = await imagegate(['check', '-f', 'x.yaml', '--help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /^usage: imagegate check/);
  const inspect = await imagegate(['bundle', 'inspect', '--', '--help']);
  t.is(inspect.code, 2);
  t.regex(inspect.stderr, /--help/);
});

test('an unknown flag is bad input (exit 2) and says where the flags are', async (t) => {
  const result = await imagegate(['serve', '--prot', '8443']);
  t.is(result.code, 2);
  t.is(result.stdout, '');
  t.regex(result.stderr, /^imagegate: Unknown option '--prot'.*imagegate serve --help/);
});

test('imagegate --help lists every command; no command is a usage error', async (t) => {
  const help = await imagegate(['--help']);
  t.is(help.code, 0);
  for (const name of Object.keys(COMMANDS)) t.regex(help.stdout, new RegExp(`^  ${name} `, 'm'));
  const none = await imagegate([]);
  t.is(none.code, 2);
});

/** An older Node.js than the one supported, if this machine has one (Debian's is 20). */
async function olderNode(): Promise<string | undefined> {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node']) {
    const version = await promisify(execFile)(candidate, ['--version'])
      .then((r) => r.stdout.trim())
      .catch(() => '');
    if (/^v\d+\./.test(version) && Number(version.slice(1).split('.')[0]) < MIN_NODE_MAJOR)
      return candidate;
  }
  return undefined;
}

test('an unsupported Node.js gets one clear line, not a dependency’s stack trace', async (t) => {
  const node = await olderNode();
  if (node === undefined) {
    t.log(`no Node.js older than ${MIN_NODE_MAJOR} here: nothing to run it on`);
    t.pass();
    return;
  }
  for (const args of [['serve'], ['check', '-f', '-'], ['--help']]) {
    const result = await promisify(execFile)(
      node,
      ['--import=tsx/esm', join(ROOT, 'src', 'cli.ts'), ...args],
      { cwd: ROOT },
    ).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    t.is(result.code, 2, args.join(' '));
    t.regex(
      result.stderr,
      new RegExp(`^imagegate needs Node\\.js ≥ ${MIN_NODE_MAJOR}; this is Node\\.js v\\d+`),
    );
    t.notRegex(result.stderr, /at .*node_modules|TypeError/);
  }
});
