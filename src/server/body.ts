/**
 * Reads a JSON request body with the checks SPEC fixes: 415 for anything but JSON, 413
 * past the limit (before reading, when Content-Length says so), 400 for bytes that are
 * not UTF-8, not JSON or nested deeper than MAX_JSON_DEPTH. Nothing here can throw anything
 * but an InputError, and nothing here recurses on the body's depth.
 */
import type { IncomingMessage } from 'node:http';
import { InputError } from '../shared/input-error.ts';
import { depthExceeds, fixLoneSurrogateEscapes, MAX_JSON_DEPTH } from './json-text.ts';

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

export function checkContentType(header: string | undefined): void {
  if (header === undefined || header === '') {
    throw new InputError('Content-Type is missing: send application/json', { status: 415 });
  }
  if (!JSON_TYPE.test(header)) {
    throw new InputError(
      `Content-Type ${JSON.stringify(header)} is not supported: send application/json`,
      {
        status: 415,
      },
    );
  }
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(header)?.[1];
  if (
    charset !== undefined &&
    charset.toLowerCase() !== 'utf-8' &&
    charset.toLowerCase() !== 'utf8'
  ) {
    throw new InputError(`charset ${charset} is not supported: send UTF-8 JSON`, { status: 415 });
  }
}

/** Stateless between calls (no `stream` option), so one serves every request. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The body's bytes, refusing past `limit`. Plain stream events: the async iterator and a
 * decoder made per request were the costliest part of the hot path (docs/BENCHMARKS.md).
 */
function readBytes(request: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer | string) => {
      const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      size += buffer.length;
      if (size > limit) {
        request.off('data', onData);
        request.resume(); // drain what is left; the answer is already decided
        reject(new InputError(`the body is larger than ${limit} bytes`, { status: 413 }));
        return;
      }
      chunks.push(buffer);
    };
    request.on('data', onData);
    request.once('end', () =>
      resolve(chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks, size)),
    );
    request.once('error', reject);
    request.once('aborted', () => reject(new InputError('the client aborted the request')));
  });
}

/** A JSON body, read and parsed (what runs on one thread; the pool splits the two). */
export async function readJsonBody(request: IncomingMessage, limit: number): Promise<unknown> {
  return parseJsonBytes(await readBodyBytes(request, limit));
}

/**
 * The body's bytes with the checks that need the request: content type and encoding
 * (415), size (413). What they say is judged by parseJsonBytes, wherever it runs.
 */
export async function readBodyBytes(request: IncomingMessage, limit: number): Promise<Buffer> {
  checkContentType(request.headers['content-type']);
  const encoding = request.headers['content-encoding'];
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
    throw new InputError(`Content-Encoding ${encoding} is not supported`, { status: 415 });
  }
  const declared = Number(request.headers['content-length'] ?? Number.NaN);
  if (Number.isFinite(declared) && declared > limit) {
    throw new InputError(`the body is ${declared} bytes; at most ${limit} are accepted`, {
      status: 413,
    });
  }
  return readBytes(request, limit);
}

/** Bytes → JSON: 400 for empty, not UTF-8, not JSON, or nested deeper than MAX_JSON_DEPTH. */
export function parseJsonBytes(bytes: Uint8Array): unknown {
  if (bytes.length === 0) throw new InputError('the body is empty: send a review as JSON');
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch (error) {
    throw new InputError('the body is not valid UTF-8', { cause: error });
  }
  // Only bodies with a surrogate escape pay for the rewrite.
  if (/\\u[dD][89a-fA-F]/.test(text)) text = fixLoneSurrogateEscapes(text);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text) as unknown;
  } catch (error) {
    // V8's message quotes the body around the error; only its position is repeated here,
    // since the message reaches logs and the body may hold secrets.
    const message = error instanceof Error ? error.message : '';
    const position = /position (\d+)/.exec(message)?.[1];
    const where = position === undefined ? '' : ` at byte ${position}`;
    throw new InputError(`the body is not valid JSON${where}`, { cause: error });
  }
  // V8 parses any depth without recursion; what comes after (the wasm SDK's stringify,
  // structuredClone) does recurse, so depth is bounded here, once, without recursion.
  if (depthExceeds(parsed, MAX_JSON_DEPTH)) {
    throw new InputError(`the body nests deeper than ${MAX_JSON_DEPTH} levels`);
  }
  return parsed;
}
