/**
 * The serving certificate, its key and the optional client CA, read together: the client
 * CA rotates with the pair, so a kube-apiserver client certificate from a new CA is
 * accepted without a restart.
 */
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { clientCaProblem, validityProblem } from './certificate-checks.ts';

export interface ServingFiles {
  readonly cert: string;
  readonly key: string;
  readonly clientCa: string | undefined;
}

export type ServingMaterial =
  | { readonly cert: Buffer; readonly key: Buffer }
  | { readonly cert: Buffer; readonly key: Buffer; readonly ca: Buffer };

export async function readServingMaterial(files: ServingFiles): Promise<ServingMaterial> {
  const pair = { cert: await readFile(files.cert), key: await readFile(files.key) };
  return files.clientCa === undefined ? pair : { ...pair, ca: await readFile(files.clientCa) };
}

/** The files to watch: a change to any of them is a rotation. */
export function watchedServingFiles(files: ServingFiles): string[] {
  return [files.cert, files.key, ...(files.clientCa ? [files.clientCa] : [])];
}

/**
 * Why rotated material must not replace what serves: a key that does not match its
 * certificate (createSecureContext throws), an expired pair, or a client CA without a
 * certificate would fail every new connection (the API server's).
 */
export function rotationProblem(material: ServingMaterial): string | undefined {
  createSecureContext(material);
  return (
    validityProblem(material.cert) ?? ('ca' in material ? clientCaProblem(material.ca) : undefined)
  );
}
