/**
 * A newcomer's first `make run` (npm ci) prints no warning: every dependency with an
 * install script is reviewed in package.json's allowScripts. esbuild's postinstall only
 * checks and links the platform binary its optional @esbuild/* package already carries,
 * so it is denied rather than run (tsx, which runs every test, works without it).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import test from 'ava';
import { ROOT } from '../helpers/cli.ts';

test('npm knows what to do with every install script (no warning from npm ci)', async (t) => {
  // The npm `make node-deps` runs: the one on PATH.
  const { stdout, stderr } = await promisify(execFile)('npm', ['install-scripts', 'ls'], {
    cwd: ROOT,
  });
  t.notRegex(stdout + stderr, /not yet covered by allowScripts/);
  t.regex(stdout, /No packages with unreviewed install scripts/);
});
