/** deploy/Dockerfile passes BuildKit's linter, and the linter does catch what it should. */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { packageRoot } from '../../src/shared/paths.ts';
import { tempDir } from '../helpers/gateway.ts';

const run = promisify(execFile);
const LINT = join(packageRoot(), '.tools', 'bin', 'dockerfile-lint');

async function lint(file: string): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await run(LINT, [file]);
    return { code: 0, stdout };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '' };
  }
}

test('deploy/Dockerfile has no lint warnings', async (t) => {
  const result = await lint(join(packageRoot(), 'deploy', 'Dockerfile'));
  t.is(result.code, 0, result.stdout);
});

test('the linter flags casing, shell-form ENTRYPOINT and secrets in ENV', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'Dockerfile');
  await writeFile(
    file,
    'FROM node:26.12.1-slim as Build\nENV NPM_TOKEN=secret\nENTRYPOINT node dist/src/cli.js serve\n',
  );
  const result = await lint(file);
  t.is(result.code, 1);
  for (const rule of [
    'StageNameCasing',
    'FromAsCasing',
    'SecretsUsedInArgOrEnv',
    'JSONArgsRecommended',
  ]) {
    t.regex(result.stdout, new RegExp(`: ${rule}: `));
  }
});
