// Fails when the committed bundle differs from a fresh build of rego/: CI's staleness check.
// Compares the unpacked files, not the archive bytes, so gzip metadata cannot cause noise.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

/** Minimal ustar reader: enough for the archives `opa build` writes. */
function untar(path) {
  const tar = gunzipSync(readFileSync(path));
  const files = new Map();
  for (let offset = 0; offset + 512 <= tar.length; ) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const name = header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const prefix = header.subarray(345, 500).toString('utf8').replace(/\0.*$/s, '');
    const size = Number.parseInt(header.subarray(124, 136).toString('utf8').trim() || '0', 8);
    const type = String.fromCharCode(header[156] || 48);
    const body = tar.subarray(offset + 512, offset + 512 + size);
    if (type === '0' || type === '\0') files.set(prefix ? `${prefix}/${name}` : name, body);
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

const [committed, fresh] = process.argv.slice(2);
let a;
try {
  a = untar(committed);
} catch (error) {
  console.error(`bundle-check: cannot read ${committed}: ${error.message}; run \`make bundle\``);
  process.exit(1);
}
const b = untar(fresh);
const names = new Set([...a.keys(), ...b.keys()]);
const stale = [...names].filter((n) => !a.has(n) || !b.has(n) || !a.get(n).equals(b.get(n)));
if (stale.length > 0) {
  console.error(
    `bundle-check: ${committed} is stale (differs in ${stale.join(', ')}); run \`make bundle\` and commit it`,
  );
  process.exit(1);
}
console.log(`bundle-check: ${committed} matches rego/ (${names.size} files)`);
