/**
 * A request body's JSON, made safe to use without recursion on its depth: lone surrogate
 * escapes read as Go reads them, and nesting bounded. Both are linear and iterative, so
 * nothing the client controls sets how deep the gateway's own stack goes.
 */

/**
 * How deep a body may nest. The deepest review the API server sends for the kinds the
 * webhooks see is about 20 levels (a CronJob's managedFields); V8's JSON.stringify and
 * structuredClone, which the wasm SDK and the patch code use, throw past a few thousand.
 */
export const MAX_JSON_DEPTH = 100;

const SURROGATE_ESCAPE = /(\\+)u([dD][89a-fA-F][0-9a-fA-F]{2})/g;
const LOW_ESCAPE = /^\\u[dD][c-fC-F][0-9a-fA-F]{2}/;
const HIGH_ESCAPE = /\\u[dD][89abAB][0-9a-fA-F]{2}$/;

/** The number of backslashes ending just before `end` in `text`. */
function backslashesBefore(text: string, end: number): number {
  let n = 0;
  while (end - n - 1 >= 0 && text.charCodeAt(end - n - 1) === 0x5c) n++;
  return n;
}

/**
 * The JSON text with every lone surrogate escape (`\uD800`–`\uDFFF` not part of a pair)
 * replaced by `\uFFFD`: Go's encoding/json, and so the API server, reads one as U+FFFD,
 * while the wasm SDK refuses it. A lone surrogate can only arrive as an escape: raw UTF-8
 * cannot carry one and the body's decoder is fatal. An escaped backslash before `u`
 * (an even run of backslashes) is text, not an escape.
 */
export function fixLoneSurrogateEscapes(text: string): string {
  return text.replace(SURROGATE_ESCAPE, (match, slashes: string, hex: string, offset: number) => {
    if (slashes.length % 2 === 0) return match;
    const escapeAt = offset + slashes.length - 1;
    const code = Number.parseInt(hex, 16);
    if (code <= 0xdbff) {
      if (LOW_ESCAPE.test(text.slice(offset + match.length, offset + match.length + 6))) {
        return match;
      }
    } else {
      const before = text.slice(Math.max(0, escapeAt - 6), escapeAt);
      if (HIGH_ESCAPE.test(before) && backslashesBefore(text, escapeAt - 5) % 2 === 1) {
        return match;
      }
    }
    return `${slashes.slice(0, -1)}\\uFFFD`;
  });
}

/**
 * How deep a parsed JSON value nests (a scalar is 0, `[]` is 1), counted with an
 * explicit stack, stopping as soon as it passes `limit`.
 */
export function depthExceeds(value: unknown, limit: number): boolean {
  const values: unknown[] = [value];
  const depths: number[] = [0];
  while (values.length > 0) {
    const node = values.pop();
    const depth = (depths.pop() ?? 0) + 1;
    if (typeof node !== 'object' || node === null) continue;
    if (depth > limit) return true;
    const children = Array.isArray(node) ? node : Object.values(node);
    for (const child of children) {
      if (typeof child === 'object' && child !== null) {
        values.push(child);
        depths.push(depth);
      }
    }
  }
  return false;
}
