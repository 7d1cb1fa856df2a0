/**
 * Standard output is written asynchronously (shared/logger.ts): lines logged just before
 * the process exits — a fatal error, `process.exit` — still reach stdout, in order.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { ROOT } from '../helpers/cli.ts';

const run = promisify(execFile);

test('lines logged right before process.exit are written, in order', async (t) => {
  const logger = join(ROOT, 'src', 'shared', 'logger.ts');
  const script = `
    const { createLogger } = await import(${JSON.stringify(logger)});
    const log = createLogger('info');
    for (let i = 0; i < 2000; i++) log.info({ i }, 'line');
    log.fatal('last words');
    process.exit(3);
  `;
  const child = await run(
    process.execPath,
    ['--import=tsx/esm', '--input-type=module', '-e', script],
    {
      cwd: ROOT,
      maxBuffer: 64 << 20,
    },
  ).catch((error: { stdout: string; code: number }) => error);
  t.is((child as { code?: number }).code, 3);
  const lines = child.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { i?: number; msg: string });
  t.is(lines.length, 2001);
  t.deepEqual(
    lines.slice(0, 2000).map((l) => l.i),
    Array.from({ length: 2000 }, (_, i) => i),
  );
  t.is(lines.at(-1)?.msg, 'last words');
});
