/**
 * Reading what a remote server sends, bounded: a response body read whole only up to a
 * size, and a token file read fresh for each request (a projected token rotates).
 */
import { readFile } from 'node:fs/promises';
import { describeThrown } from './describe-thrown.ts';

/** The body, whole; past `maxBytes` the stream is destroyed and `tooLarge()` is thrown. */
export async function readAtMost(
  body: AsyncIterable<Buffer> & { destroy(error?: Error): unknown },
  maxBytes: number,
  tooLarge: () => Error,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > maxBytes) {
      body.destroy();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/** A bearer token file's content, trimmed; undefined without a file; `failed(why)` if unreadable. */
export async function readTokenFile(
  file: string | undefined,
  failed: (why: string) => Error,
): Promise<string | undefined> {
  if (file === undefined) return undefined;
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (error) {
    throw failed(describeThrown(error));
  }
}
