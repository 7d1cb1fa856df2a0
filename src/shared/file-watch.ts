/**
 * Watches files by content, not by inotify: a mounted Secret or ConfigMap is swapped by
 * kubelet through a `..data` symlink, which file watchers miss or report twice. Polling the
 * SHA-256 of what a path resolves to sees every real change once and ignores touches.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

export interface Watch {
  stop(): void;
}

export async function fingerprint(paths: readonly string[]): Promise<string> {
  const hash = createHash('sha256');
  for (const path of paths) {
    try {
      hash.update(await readFile(path));
    } catch {
      hash.update(`missing:${path}`);
    }
    hash.update('\0');
  }
  return hash.digest('hex');
}

/**
 * Calls `onChange` (never concurrently) when the content of `paths` changes and then stays
 * the same for one more interval — a debounce against half-written files.
 */
export function watchContent(
  paths: () => Promise<readonly string[]>,
  initial: string,
  intervalMs: number,
  onChange: (digest: string) => Promise<void>,
): Watch {
  let current = initial;
  let pending: string | undefined;
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    (async () => {
      const digest = await fingerprint(await paths());
      if (digest === current) {
        pending = undefined;
      } else if (digest !== pending) {
        pending = digest;
      } else {
        pending = undefined;
        current = digest;
        await onChange(digest);
      }
    })()
      .catch(() => undefined)
      .finally(() => {
        busy = false;
      });
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
