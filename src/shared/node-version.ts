/**
 * The Node.js imagegate runs on. Checked by the entry point before anything else is
 * imported: on an older Node, a dependency fails at import time with a stack trace that
 * says nothing about the version (undici 8 needs zstd, new in Node 22.15 / 23.8).
 */

/** The oldest major version supported: package.json `engines` says the same. */
export const MIN_NODE_MAJOR = 26;

/** Why this Node.js cannot run imagegate; undefined when it can. */
export function nodeVersionProblem(version: string): string | undefined {
  const major = Number(/^v?(\d+)\./.exec(version)?.[1] ?? Number.NaN);
  if (Number.isInteger(major) && major >= MIN_NODE_MAJOR) return undefined;
  return `imagegate needs Node.js ≥ ${MIN_NODE_MAJOR}; this is Node.js ${version}. Install Node.js ${MIN_NODE_MAJOR} (the active LTS), or run \`make node\` in a clone, which fetches it into .tools/node.`;
}
