/**
 * The command line as a user meets it: every command answers --help and -h with its own
 * usage (exit 0), its usage names every flag it takes, an unknown flag is bad input
 * (exit 2) that points at --help.
 */
import test from 'ava';
import type { Command } from '../../src/commands/command.ts';
import { imagegate } from '../helpers/cli.ts';

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
