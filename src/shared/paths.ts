/** Locations inside the installed package, the same from src/ (tsx) and dist/src/ (tsc). */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function packageRoot(from: string = fileURLToPath(import.meta.url)): string {
  let dir = dirname(from);
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${from}`);
    dir = parent;
  }
  return dir;
}

export function defaultBundlePath(): string {
  return join(packageRoot(), 'bundles', 'imagegate.tar.gz');
}
